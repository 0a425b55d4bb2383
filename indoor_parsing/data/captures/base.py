"""The Capture interface: RGB-D recordings in their own on-disk format, read as frames with metric depth and poses.

A reader (``scannet.py``, ``sens.py``, ``sevenscenes.py``, ``tum.py``, ``folder.py``) turns one format into
:class:`Recording` s of :class:`CaptureFrame` s: colour and depth files (or a .sens record), the depth encoding
(:class:`DepthCodec`), the intrinsics of the colour (and, when it is a separate camera, of the depth) image, and a
camera-to-world pose in OpenCV camera axes (x right, y down, z forward). Frames a reader cannot use are listed in
``Recording.skipped`` with the reason. ``data/capture.py`` turns recordings into the prepared layout.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
from PIL import Image

from indoor_parsing.io import DataFileError, load_rgb

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
POSE_CONVENTIONS = ("camera-to-world", "world-to-camera")


class RegistrationError(DataFileError):
    """Colour and depth images do not describe the same pixels (sizes or intrinsics disagree)."""


class NonRigidPoseError(DataFileError):
    """A pose is not a rotation plus a translation (scaled, sheared or reflected rotation, bad last row)."""


class PoseConventionError(DataFileError):
    """The poses align the depth of neighbouring frames far better when read in the other convention."""


@dataclass(frozen=True)
class DepthCodec:
    """Raw depth values -> metres: ``raw / scale``; raw 0 and the ``invalid`` values are missing.

    Args:
        scale: raw units per metre (1000 for millimetres, 5000 for TUM RGB-D).
        invalid: raw values that mean "no measurement" besides 0 (7-Scenes: 65535).
    """

    scale: float = 1000.0
    invalid: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise ValueError(f"depth scale must be > 0 (raw units per metre), got {self.scale}")

    def decode(self, raw: np.ndarray) -> np.ndarray:
        """(H, W) raw integers -> (H, W) float32 metres, 0 = missing."""
        depth = raw.astype(np.float32) / np.float32(self.scale)
        missing = raw <= 0
        if self.invalid:
            missing |= np.isin(raw, np.asarray(self.invalid, raw.dtype))
        depth[missing] = 0.0
        return depth

    @property
    def is_layout_encoding(self) -> bool:
        """True when the raw PNG already is the layout's depth (uint16 millimetres, 0 = missing)."""
        return self.scale == 1000.0 and not set(self.invalid) - {0}


@dataclass(frozen=True)
class CaptureOptions:
    """What a format does not say, given by the user (None = the format's own convention or default).

    Args:
        depth_scale: raw depth units per metre.
        depth_invalid: raw depth values meaning "no measurement" (besides 0).
        intrinsics: colour intrinsics: a file (3x3, 4x4, or ``fx fy cx cy``) or ``"fx,fy,cx,cy"``.
        depth_intrinsics: intrinsics of a depth camera that is not registered to the colour one (same form);
            the depth is then reprojected into the colour camera, assuming both share one centre and orientation.
        poses: a pose file or folder (generic folders; see folder.py).
        pose_convention: ``"camera-to-world"`` or ``"world-to-camera"``: how the pose files are meant.
        colour_dir, depth_dir: sub-folders of a generic folder.
        camera: TUM RGB-D camera (``fr1``, ``fr2``, ``fr3``); None = from the sequence name.
        max_time_diff: seconds within which TUM timestamps are associated.
    """

    depth_scale: float | None = None
    depth_invalid: tuple[int, ...] | None = None
    intrinsics: str | None = None
    depth_intrinsics: str | None = None
    poses: str | None = None
    pose_convention: str | None = None
    colour_dir: str | None = None
    depth_dir: str | None = None
    camera: str | None = None
    max_time_diff: float = 0.02

    def __post_init__(self) -> None:
        if self.pose_convention not in (None, *POSE_CONVENTIONS):
            raise DataFileError(f"pose convention: expected one of {POSE_CONVENTIONS}, got {self.pose_convention!r}")
        if self.max_time_diff <= 0:
            raise DataFileError(f"max_time_diff: must be > 0 seconds, got {self.max_time_diff}")

    def codec(self, scale: float, invalid: tuple[int, ...] = ()) -> DepthCodec:
        """The format's depth encoding with the user's overrides applied."""
        scale = scale if self.depth_scale is None else self.depth_scale
        if not scale > 0:
            raise DataFileError(f"depth scale: must be > 0 raw units per metre, got {scale}")
        return DepthCodec(scale, tuple(invalid if self.depth_invalid is None else self.depth_invalid))


def image_size(path: Path) -> tuple[int, int]:
    """(W, H) from the image header."""
    try:
        with Image.open(path) as im:
            return im.size
    except OSError as err:
        raise DataFileError(f"{path}: cannot decode image ({err})") from err


DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I")


def check_depth_png(path: Path) -> None:
    """DataFileError unless the file is a 16-bit single-channel image (read from its header)."""
    try:
        with Image.open(path) as im:
            mode = im.mode
    except OSError as err:
        raise DataFileError(f"{path}: cannot decode depth image ({err})") from err
    if mode not in DEPTH_MODES:
        raise DataFileError(f"{path}: expected a 16-bit single-channel depth PNG, got mode {mode}")


def read_depth_png(path: Path) -> np.ndarray:
    """(H, W) raw integer depth of a 16-bit single-channel PNG."""
    check_depth_png(path)
    try:
        with Image.open(path) as im:
            raw = np.asarray(im)
    except OSError as err:
        raise DataFileError(f"{path}: cannot decode depth image ({err})") from err
    return raw.astype(np.int32) if raw.dtype != np.uint16 else raw


@dataclass
class CaptureFrame:
    """One frame of a recording.

    Args:
        name: the input frame's name (file stem or timestamp); output files are named after it.
        rgb: colour file (or the container file, for messages, when ``read_rgb`` is overridden).
        depth: depth file.
        pose: (4, 4) camera-to-world, None when the frame has no usable pose (then ``no_pose`` says why).
        no_pose: why ``pose`` is None.
    """

    name: str
    rgb: Path
    depth: Path
    pose: np.ndarray | None = None
    no_pose: str | None = None

    def read_rgb(self) -> np.ndarray:
        """(H, W, 3) uint8."""
        return load_rgb(self.rgb)

    def read_depth_raw(self) -> np.ndarray:
        """(H, W) raw integer depth."""
        return read_depth_png(self.depth)

    def colour_size(self) -> tuple[int, int]:
        return image_size(self.rgb)

    def depth_size(self) -> tuple[int, int]:
        return image_size(self.depth)

    def encoded_rgb(self) -> tuple[bytes, str] | None:
        """Already-encoded colour bytes and their suffix to store as they are (containers), else None."""
        return None

    @property
    def in_place(self) -> bool:
        """Whether the layout may reference ``rgb`` and ``depth`` as files."""
        return True


@dataclass
class Recording:
    """One continuous recording (one trajectory, one world frame) of a capture.

    Args:
        name: recording name (the sequence name in the layout).
        source: its folder or file (for messages).
        frames: usable frames, in recording order.
        K_colour: (3, 3) intrinsics of the colour images at their stored size; None = registered to the depth.
        K_depth: (3, 3) intrinsics of the depth images when given; None = the depth is registered to the colour.
        intrinsics_source: where the intrinsics come from (for messages).
        depth: the depth encoding.
        reproject_depth: the depth camera is separate (same centre, other intrinsics): reproject it into the colour
            camera instead of refusing when K_colour and K_depth disagree.
        skipped: (frame name, reason) of the frames left out.
        notes: facts the user should know (printed and kept in the manifest).
        inputs: every input file (their names and sizes decide when the capture is indexed again).
    """

    name: str
    source: Path
    frames: list[CaptureFrame]
    K_colour: np.ndarray | None
    K_depth: np.ndarray | None
    intrinsics_source: str
    depth: DepthCodec
    reproject_depth: bool = False
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    inputs: list[Path] = field(default_factory=list)


class Capture(ABC):
    """A capture on disk in one format: one or several recordings.

    Args:
        path: the capture (a folder, or a file for containers such as .sens).
        options: the user's settings for what the format leaves open.
    """

    format: ClassVar[str]
    description: ClassVar[str]

    def __init__(self, path: str | Path, options: CaptureOptions | None = None) -> None:
        self.path = Path(path).expanduser()
        self.options = options or CaptureOptions()

    @abstractmethod
    def matches(self) -> bool:
        """True when the path (or its immediate sub-folders) looks like this format."""

    @abstractmethod
    def recordings(self) -> list[Recording]:
        """Every recording of the capture, in a stable order; raises DataFileError naming the file on bad input."""

    def default_layout(self) -> Path:
        """Where the prepared layout goes unless the user says: the capture folder itself."""
        return self.path


def sub_folders(path: Path, accept) -> list[Path]:
    """``[path]`` when ``accept(path)``, else its immediate sub-folders that ``accept`` (sorted)."""
    if accept(path):
        return [path]
    return sorted(d for d in path.iterdir() if d.is_dir() and accept(d)) if path.is_dir() else []


class StemIndex:
    """Files of one folder looked up by frame name: the same stem, else the same number (``000012`` = ``12``).

    Two candidates for one frame are an error: zero-padded and unpadded copies of a frame would make the read
    depend on the order of a directory listing.

    Args:
        folder: the folder (for messages).
        files: its files of the wanted kind.
        strip: a suffix removed from the stem before matching (7-Scenes: ``.depth``).
    """

    def __init__(self, folder: Path, files: list[Path], strip: str = "") -> None:
        self.folder = folder
        self.by_stem: dict[str, list[Path]] = {}
        self.by_number: dict[int, list[Path]] = {}
        for p in files:
            stem = p.stem[: -len(strip)] if strip and p.stem.endswith(strip) else p.stem
            self.by_stem.setdefault(stem, []).append(p)
            if stem.isdigit():
                self.by_number.setdefault(int(stem), []).append(p)

    def get(self, name: str) -> Path | None:
        found = set(self.by_stem.get(name, []))
        if name.isdigit():
            found |= set(self.by_number.get(int(name), []))
        if len(found) > 1:
            raise DataFileError(f"{self.folder}: several files for frame {name!r}: {sorted(p.name for p in found)}")
        return found.pop() if found else None


def frame_sort_key(name: str) -> tuple:
    """Numeric names in numeric order (``2`` before ``10``), others by name."""
    return (0, int(name), name) if name.isdigit() else (1, 0, name)

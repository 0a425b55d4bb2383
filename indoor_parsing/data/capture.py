"""Your own RGB-D capture as a prepared layout (no labels): the target sequence of S4-Net auto-labelling.

A capture folder follows ScanNet's export (``indoor-parsing prepare scannet-export`` / ScanNet's SensReader)::

    capture/color/<n>.jpg            colour (.jpg or .png), n = frame number
    capture/depth/<n>.png            uint16 millimetres, 0 = missing
    capture/pose/<n>.txt             4x4 camera-to-world (OpenCV camera axes); -inf / nan where tracking was lost
    capture/intrinsic/intrinsic_color.txt and/or intrinsic_depth.txt   3x3 or 4x4

or a folder of several such sequences (``capture/<sequence>/color/...``). Indexing writes ``manifest.json`` and
``index.json`` into the capture folder and references the files in place; where colour and depth sizes differ the
colour is resized to the depth size (intrinsics scaled, pixel centres at integers) into ``<sequence>/color_depthsize/``.
Frames without a depth or pose file are skipped and counted in the manifest; non-finite poses are indexed without a
pose, so a DataModule with poses drops and counts them (``skipped_invalid_pose``).
"""

import argparse
import hashlib
import math
from pathlib import Path

import numpy as np
from PIL import Image

from indoor_parsing.data.base import IndoorDataModule
from indoor_parsing.data.layout import MANIFEST, Frame, write_layout
from indoor_parsing.data.prepare import resize_image, scale_intrinsics
from indoor_parsing.io import DataFileError, load_rgb, read_json, save_image

SPLIT = "capture"
RESIZED = "color_depthsize"


def _matrix(path: Path, rows: int) -> np.ndarray:
    try:
        m = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except (OSError, ValueError) as err:
        raise DataFileError(f"{path}: cannot read a matrix ({err})") from err
    if m.shape not in ((3, 3), (4, 4)) or m.shape[0] < rows:
        raise DataFileError(f"{path}: expected a {rows}x{rows} matrix, got shape {m.shape}")
    return m


def _size(path: Path) -> tuple[int, int]:
    """(W, H) from the image header."""
    try:
        with Image.open(path) as im:
            return im.size
    except OSError as err:
        raise DataFileError(f"{path}: cannot decode image ({err})") from err


def find_sequences(capture: Path) -> list[Path]:
    """The capture itself when it has ``color/``, else its sub-folders that have one."""
    if (capture / "color").is_dir():
        return [capture]
    found = sorted(d for d in capture.iterdir() if (d / "color").is_dir()) if capture.is_dir() else []
    if not found:
        raise DataFileError(f"{capture}: no color/ folder here or in its sub-folders (expected a ScanNet-style export)")
    return found


def _colour_files(seq: Path) -> dict[int, Path]:
    files = [p for p in (seq / "color").iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png") and p.stem.isdigit()]
    return {int(p.stem): p for p in sorted(files)}


def _signature(capture: Path, sequences: list[Path]) -> str:
    """Hash of every input file's name and size: a changed capture is indexed again."""
    h = hashlib.sha1()
    for seq in sequences:
        for sub in ("color", "depth", "pose", "intrinsic"):
            if (seq / sub).is_dir():
                for p in sorted((seq / sub).iterdir()):
                    h.update(f"{p.relative_to(capture)}:{p.stat().st_size}\n".encode())
    return h.hexdigest()[:16]


def _intrinsics(seq: Path, colour_size: tuple[int, int], depth_size: tuple[int, int]) -> np.ndarray:
    """K of the colour image at the depth size (the size the layout stores)."""
    colour_K, depth_K = seq / "intrinsic" / "intrinsic_color.txt", seq / "intrinsic" / "intrinsic_depth.txt"
    if colour_K.is_file():
        K = _matrix(colour_K, 3)[:3, :3]
        (Wc, Hc), (Wd, Hd) = colour_size, depth_size
        return K if (Wc, Hc) == (Wd, Hd) else scale_intrinsics(K, Wd / Wc, Hd / Hc)
    if depth_K.is_file():
        return _matrix(depth_K, 3)[:3, :3]  # colour assumed registered to depth
    raise DataFileError(f"{seq / 'intrinsic'}: neither intrinsic_color.txt nor intrinsic_depth.txt found")


def index_capture(capture: str | Path) -> Path:
    """Index (or re-index when its files changed) a capture folder as a prepared layout; returns the folder."""
    capture = Path(capture).expanduser()
    sequences = find_sequences(capture)
    signature = _signature(capture, sequences)
    if (capture / MANIFEST).is_file() and read_json(capture / MANIFEST).get("signature") == signature:
        return capture
    frames, skipped = [], {"missing_depth": 0, "missing_pose": 0}
    for seq in sequences:
        colour = _colour_files(seq)
        if not colour:
            raise DataFileError(f"{seq / 'color'}: no <n>.jpg / <n>.png colour frames")
        K, sizes = None, None
        for n, rgb_path in colour.items():
            depth_path, pose_path = seq / "depth" / f"{n}.png", seq / "pose" / f"{n}.txt"
            if not depth_path.is_file() or not pose_path.is_file():
                skipped["missing_depth" if not depth_path.is_file() else "missing_pose"] += 1
                continue
            if sizes is None:
                sizes = (_size(rgb_path), _size(depth_path))
                K = _intrinsics(seq, *sizes)
            if _size(rgb_path) != sizes[0] or _size(depth_path) != sizes[1]:
                raise DataFileError(f"{rgb_path}: colour/depth sizes differ from the sequence's first frame {sizes}")
            with Image.open(depth_path) as im:
                if im.mode not in ("I;16", "I;16B", "I"):
                    raise DataFileError(f"{depth_path}: expected a 16-bit depth PNG (millimetres), got mode {im.mode}")
            rgb_rel = rgb_path.relative_to(capture).as_posix()
            (Wd, Hd) = sizes[1]
            if sizes[0] != sizes[1]:
                rgb_rel = (seq / RESIZED / f"{n}.jpg").relative_to(capture).as_posix()
                if not (capture / rgb_rel).is_file():
                    save_image(capture / rgb_rel, resize_image(load_rgb(rgb_path), (Wd, Hd), nearest=False))
            pose = _matrix(pose_path, 4)
            finite = pose.shape == (4, 4) and all(math.isfinite(v) for v in pose.ravel())
            frames.append(Frame(
                split=SPLIT, scene=capture.name, sequence=seq.name, index=n, rgb=rgb_rel, height=Hd, width=Wd,
                intrinsics=tuple(K.ravel().tolist()), depth=depth_path.relative_to(capture).as_posix(),
                pose=tuple(pose.ravel().tolist()) if finite else None,
            ))  # fmt: skip
    if not frames:
        raise DataFileError(f"{capture}: no frame has colour, depth and pose ({skipped})")
    manifest = {"dataset": "capture", "label_space": "nyu40", "signature": signature, "skipped": skipped,
                "sequences": [s.name for s in sequences]}  # fmt: skip
    write_layout(capture, manifest, frames)
    return capture


class CaptureDataModule(IndoorDataModule):
    """An RGB-D capture folder (see module docstring), indexed on first use; every frame is in split "capture".

    Args:
        root: the capture folder (the layout is written into it).
        class_set: the class set predictions are in (must match the source data of the trained model).
        **kwargs: IndoorDataModule options (batch_size, image_size, with_pose, ...).
    """

    dataset_name = "capture"

    def __init__(self, root: str, class_set: str = "nyu40", **kwargs) -> None:
        for key in ("train_split", "val_split", "test_split", "predict_split"):
            kwargs.setdefault(key, SPLIT)
        super().__init__(root=root, class_set=class_set, **kwargs)

    def prepare_data(self) -> None:
        index_capture(self.root)

    def setup(self, stage: str | None = None) -> None:
        if self._frames is None:
            index_capture(self.root)
        super().setup(stage)


def main(argv: list[str]) -> None:
    """``indoor-parsing index-capture <folder>``: index a capture and print what was found."""
    parser = argparse.ArgumentParser(prog="indoor-parsing index-capture", description=__doc__.splitlines()[0])
    parser.add_argument("capture", help="capture folder (color/, depth/, pose/, intrinsic/) or a folder of them")
    args = parser.parse_args(argv)
    root = index_capture(args.capture)
    manifest = read_json(root / MANIFEST)
    print(f"{root}: {manifest['num_frames']} frames in {manifest['sequences']}, skipped {manifest['skipped']}")

"""Your own RGB-D capture as a prepared layout (no labels): the target sequences of S4-Net auto-labelling.

A capture is read by one of the readers in ``data/captures/`` (ScanNet export, ScanNet .sens, 7-Scenes, TUM RGB-D,
or a generic folder with explicit options; detected, or named with ``format``). Every recording becomes a sequence
of the layout (scene = the capture's name, split "capture"); each frame keeps its input name (``Frame.extra["name"]``)
so labels are written under it. Indexing writes ``manifest.json`` and ``index.json`` into the layout folder (default:
the capture folder) and references the input files in place where they already are the layout's encoding (RGB;
uint16 millimetre depth, 0 = missing, registered to the colour). Otherwise it writes converted frames into
``converted/<recording>/{color,depth}/<name>``: depth in another scale or with other invalid values (TUM ÷ 5000,
7-Scenes' 65535), colour resized to the depth size, depth reprojected into the colour camera, .sens frames.

Checks, each a DataFileError naming the file: colour and depth sizes and intrinsics must register
(checks.RegistrationError), poses must be rigid (poses.NonRigidPoseError), and a probe compares the view overlap of
neighbouring frames with the poses as given and inverted (checks.PoseConventionError when the given convention is
far worse). Frames without depth are skipped, frames without a usable pose are indexed without one (S4-Net drops
them); both are listed by name and reason in the manifest (``skipped``, ``no_pose``).
"""

import argparse
import errno
import hashlib
import json
import os
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from indoor_parsing.data.base import IndoorDataModule
from indoor_parsing.data.captures import FORMATS, open_capture
from indoor_parsing.data.captures.base import CaptureOptions, Recording, RegistrationError, check_depth_png
from indoor_parsing.data.captures.checks import probe_convention, raise_or_note, registration, reproject_depth
from indoor_parsing.data.layout import MANIFEST, Frame, write_layout
from indoor_parsing.data.prepare.common import resize_image
from indoor_parsing.io import DataFileError, atomic_path, load_depth, read_json, save_depth, save_image

SPLIT = "capture"
CONVERTED = "converted"
PROBE_WIDTH = 80  # the probe's depth maps are subsampled to about this width


def _ref(path: Path, root: Path) -> str:
    """Layout path of an input file: relative when it lies inside the layout folder, else absolute."""
    path = path.resolve()
    try:
        return path.relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def _signature(fmt: str, options: CaptureOptions, recordings: list[Recording]) -> str:
    """Hash of the reader, its options and every input file's name and size: a changed capture is indexed again."""
    h = hashlib.sha1(json.dumps([fmt, asdict(options)], default=str).encode())
    for rec in recordings:
        for p in rec.inputs:
            h.update(f"{p}:{p.stat().st_size if p.is_file() else -1}\n".encode())
    return h.hexdigest()[:16]


def _index_recording(rec: Recording, root: Path, scene: str, convention: str) -> tuple[list[Frame], dict]:
    """Frames of one recording in the layout (converted where needed) and its manifest entry."""
    first = rec.frames[0]
    colour_size, depth_size = first.colour_size(), first.depth_size()
    reg = registration(rec, colour_size, depth_size)
    W, H = reg.size
    convert_depth = not (first.in_place and rec.depth.is_layout_encoding and reg.reproject_depth is None)
    out = root / CONVERTED / rec.name
    frames = []
    for k, f in enumerate(tqdm(rec.frames, desc=rec.name, unit="frame", disable=None, leave=False)):
        if f.colour_size() != colour_size or f.depth_size() != depth_size:
            raise RegistrationError(f"{f.rgb} / {f.depth}: colour {f.colour_size()} / depth {f.depth_size()} differ "
                                    f"from the recording's first frame ({colour_size} / {depth_size})")  # fmt: skip
        encoded = f.encoded_rgb()
        if f.in_place and not reg.resize_colour:
            rgb = _ref(f.rgb, root)
        elif encoded is not None and not reg.resize_colour:
            rgb = f"{CONVERTED}/{rec.name}/color/{f.name}{encoded[1]}"
            with atomic_path(root / rgb) as tmp:
                tmp.write_bytes(encoded[0])
        else:
            suffix = ".png" if f.rgb.suffix.lower() == ".png" else ".jpg"
            rgb = f"{CONVERTED}/{rec.name}/color/{f.name}{suffix}"
            save_image(root / rgb, resize_image(f.read_rgb(), reg.size, nearest=False))
        if convert_depth:
            raw = f.read_depth_raw()
            if raw.shape != (depth_size[1], depth_size[0]):
                raise RegistrationError(f"{f.depth}: depth is {raw.shape[1]}x{raw.shape[0]}, the header said "
                                        f"{depth_size[0]}x{depth_size[1]}")  # fmt: skip
            metres = rec.depth.decode(raw)
            if reg.reproject_depth is not None:
                metres = reproject_depth(metres, reg.reproject_depth, reg.K, reg.size)
            depth = f"{out.relative_to(root).as_posix()}/depth/{f.name}.png"
            save_depth(root / depth, metres)
        else:
            check_depth_png(f.depth)  # an 8-bit PNG would otherwise be read as millimetres without complaint
            depth = _ref(f.depth, root)
        frames.append(Frame(
            split=SPLIT, scene=scene, sequence=rec.name, index=k, rgb=rgb, height=H, width=W,
            intrinsics=tuple(reg.K.ravel().tolist()), depth=depth,
            pose=None if f.pose is None else tuple(f.pose.ravel().tolist()), extra={"name": f.name},
        ))  # fmt: skip
    notes = list(rec.notes)
    probe = _probe(frames, root)
    note = raise_or_note(probe, str(rec.source), convention) if probe is not None else None
    notes += [note] if note else []
    entry = {
        "source": str(rec.source), "frames": len(frames), "size": [W, H], "intrinsics_source": rec.intrinsics_source,
        "depth_scale": rec.depth.scale, "depth_invalid": list(rec.depth.invalid),
        "converted_depth": convert_depth, "reprojected_depth": reg.reproject_depth is not None,
        "skipped": [{"frame": n, "reason": r} for n, r in rec.skipped],
        "no_pose": [{"frame": f.name, "reason": f.no_pose} for f in rec.frames if f.pose is None],
        "pose_probe": None if probe is None else asdict(probe), "notes": notes,
    }  # fmt: skip
    return frames, entry


def _probe(frames: list[Frame], root: Path):
    """The pose-convention probe on a recording's indexed frames (None with fewer than two posed frames)."""
    posed = [f for f in frames if f.pose is not None]
    if len(posed) < 2:
        return None
    s = max(1, posed[0].width // PROBE_WIDTH)
    K = np.diag([1.0 / s, 1.0 / s, 1.0]) @ posed[0].K
    return probe_convention(lambda i: load_depth(root / posed[i].depth)[::s, ::s], K, [f.T for f in posed])


def index_capture(capture: str | Path, format: str = "auto", layout: str | Path | None = None,
                  options: CaptureOptions | None = None) -> Path:  # fmt: skip
    """Index (or re-index when its files or options changed) a capture as a prepared layout; returns its folder."""
    options = options or CaptureOptions()
    cap = open_capture(capture, format, options)
    root = Path(layout).expanduser() if layout else cap.default_layout()
    recordings = cap.recordings()
    names = [r.name for r in recordings]
    if len(set(names)) != len(names):
        raise DataFileError(f"{cap.path}: two recordings share a name ({names}); rename one")
    signature = _signature(cap.format, options, recordings)
    if (root / MANIFEST).is_file() and read_json(root / MANIFEST).get("signature") == signature:
        return root
    try:
        root.mkdir(parents=True, exist_ok=True)
        if not os.stat(root).st_mode & 0o222:  # read-only by its mode bits (root could write, but must not)
            raise PermissionError(errno.EACCES, "the folder is read-only")
        tempfile.TemporaryFile(dir=root).close()
    except OSError as err:
        raise DataFileError(f"{root}: cannot write the capture index here ({err.strerror}); pass --layout DIR") from err
    scene = cap.path.stem if cap.path.is_file() else cap.path.name
    frames, entries = [], {}
    for rec in recordings:
        if not rec.frames:
            entries[rec.name] = {"source": str(rec.source), "frames": 0, "skipped": [
                {"frame": n, "reason": r} for n, r in rec.skipped], "notes": rec.notes}  # fmt: skip
            continue
        rec_frames, entries[rec.name] = _index_recording(rec, root, scene, options.pose_convention or "camera-to-world")
        frames += rec_frames
    if not frames:
        reasons = sorted({r for rec in recordings for _, r in rec.skipped[:3]})
        raise DataFileError(f"{cap.path}: no frame has both colour and depth ({'; '.join(reasons) or 'no frames'})")
    manifest = {"dataset": "capture", "label_space": "nyu40", "signature": signature, "format": cap.format,
                "capture": str(cap.path), "sequences": names, "recordings": entries}  # fmt: skip
    write_layout(root, manifest, frames)
    return root


class CaptureDataModule(IndoorDataModule):
    """An RGB-D capture (see module docstring), indexed on first use; every frame is in split "capture".

    Args:
        root: the capture (folder, or a .sens file).
        class_set: the class set predictions are in (must match the source data of the trained model).
        format: reader (``auto``, ``scannet``, ``sens``, ``7scenes``, ``tum``, ``folder``).
        layout: folder of the prepared layout; None = the capture folder (a .sens file: beside it, without suffix).
        depth_scale, depth_invalid, intrinsics, depth_intrinsics, poses, pose_convention, colour_dir, depth_dir,
            camera, max_time_diff: what the format leaves open (captures.base.CaptureOptions).
        **kwargs: IndoorDataModule options (batch_size, image_size, with_pose, ...).
    """

    dataset_name = "capture"

    def __init__(self, root: str, class_set: str = "nyu40", format: str = "auto", layout: str | None = None,
                 depth_scale: float | None = None, depth_invalid: list[int] | None = None,
                 intrinsics: str | None = None, depth_intrinsics: str | None = None, poses: str | None = None,
                 pose_convention: str | None = None, colour_dir: str | None = None, depth_dir: str | None = None,
                 camera: str | None = None, max_time_diff: float = 0.02, **kwargs) -> None:  # fmt: skip
        for key in ("train_split", "val_split", "test_split", "predict_split"):
            kwargs.setdefault(key, SPLIT)
        capture = Path(root).expanduser()
        default = capture.with_suffix("") if capture.suffix == ".sens" else capture
        super().__init__(root=str(layout or default), class_set=class_set, **kwargs)
        self.capture, self.format = capture, format
        self.options = CaptureOptions(
            depth_scale, None if depth_invalid is None else tuple(depth_invalid), intrinsics, depth_intrinsics, poses,
            pose_convention, colour_dir, depth_dir, camera, max_time_diff,
        )  # fmt: skip

    def _index(self) -> None:
        self.root = index_capture(self.capture, self.format, self.root, self.options)

    def prepare_data(self) -> None:
        self._index()

    def setup(self, stage: str | None = None) -> None:
        if self._frames is None:
            self._index()
        super().setup(stage)

    def labelling_report(self) -> dict:
        """Per recording: frames, and the frames left out or without a pose, by name and reason."""
        self.setup()
        return {"capture": str(self.capture), "recordings": self.manifest.get("recordings", {})}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The capture options of ``index-capture`` (also the CaptureDataModule arguments of the same names)."""
    add = parser.add_argument
    add("capture", help="capture folder (or .sens file); a folder of recordings is one capture")
    add("--format", default="auto", choices=["auto", *FORMATS], help="reader; auto detects it")
    add("--layout", default=None, help="where the index goes (default: the capture folder)")
    add("--depth-scale", type=float, default=None, help="raw depth units per metre (default: the format's)")
    add("--depth-invalid", type=int, nargs="+", default=None, help="raw depth values meaning no measurement")
    add("--intrinsics", default=None, help="colour intrinsics: file (3x3, 4x4, fx fy cx cy) or fx,fy,cx,cy")
    add("--depth-intrinsics", default=None, help="intrinsics of an unregistered depth camera (same forms)")
    add("--poses", default=None, help="pose file or folder (generic folders)")
    add("--pose-convention", default=None, choices=["camera-to-world", "world-to-camera"], help="how poses are meant")
    add("--colour-dir", default=None, help="colour sub-folder (generic folders)")
    add("--depth-dir", default=None, help="depth sub-folder (generic folders; default depth)")
    add("--camera", default=None, choices=["fr1", "fr2", "fr3"], help="TUM RGB-D camera (default: from the name)")
    add("--max-time-diff", type=float, default=0.02, help="TUM timestamp association tolerance (seconds)")


def options_from_args(args: argparse.Namespace) -> CaptureOptions:
    return CaptureOptions(
        args.depth_scale, None if args.depth_invalid is None else tuple(args.depth_invalid), args.intrinsics,
        args.depth_intrinsics, args.poses, args.pose_convention, args.colour_dir, args.depth_dir, args.camera,
        args.max_time_diff,
    )  # fmt: skip


def summary(manifest: dict, root: Path, limit: int = 10) -> str:
    """What was indexed, and every frame left out or without a pose, by name and reason (the first ``limit``)."""
    lines = [f"{root}: {manifest['num_frames']} frames of {manifest['format']} capture {manifest['capture']}"]
    for name, rec in manifest["recordings"].items():
        probe = rec.get("pose_probe")
        checked = "" if not probe or not probe["pairs"] else (
            f"; poses as given align neighbouring depth on {probe['given']:.0%} of the pixels, inverted on "
            f"{probe['inverse']:.0%}")  # fmt: skip
        lines.append(f"  {name}: {rec['frames']} frames{checked}")
        for key, what in (("skipped", "skipped"), ("no_pose", "indexed without a pose (not used for adaptation)")):
            items = rec.get(key, [])
            if items:
                lines.append(f"    {len(items)} {what}:")
                lines += [f"      {i['frame']}: {i['reason']}" for i in items[:limit]]
                if len(items) > limit:
                    lines.append(f"      ... and {len(items) - limit} more (all in {root / MANIFEST})")
        lines += [f"    {note}" for note in rec.get("notes", [])]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """``indoor-parsing index-capture <capture> [options]``: index a capture and say what was found and left out.

    Errors are DataFileErrors; the ``indoor-parsing`` entry point prints them as one line (errors.exit_cleanly).
    """
    parser = argparse.ArgumentParser(prog="indoor-parsing index-capture", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    root = index_capture(args.capture, args.format, args.layout, options_from_args(args))
    print(summary(read_json(root / MANIFEST), root), file=sys.stderr)
    return 0

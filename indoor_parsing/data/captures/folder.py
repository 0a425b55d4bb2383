"""A generic RGB-D folder, with explicit options for what such a folder does not say::

    <recording>/<colour dir>/<name>.jpg|png   colour (colour dir: --colour-dir, else color, colour, rgb, images, image)
    <recording>/<depth dir>/<name>.png        16-bit depth (--depth-dir, default depth), metres = raw / --depth-scale
                                              (default 1000), raw 0 and --depth-invalid values = no measurement
    intrinsics (--intrinsics FILE or fx,fy,cx,cy; else K.txt, intrinsics.txt or intrinsic.txt in the folder)
    poses (--poses, else pose/ or poses/ or poses.txt), camera-to-world unless --pose-convention world-to-camera:
      a folder of <name>.txt (16, 12 or 7 numbers: 4x4, 3x4 or tx ty tz qx qy qz qw), or one file with a line per
      frame: "<name> <numbers>" (the name with or without suffix), or bare numbers, one line per colour frame in
      sorted order (then the line count must equal the frame count)

Depth is matched to colour by name, or by number (``000012`` = ``12``). The capture is one such folder or a folder
of them (one per recording). ``--depth-intrinsics`` marks a depth camera that is not registered to the colour one.
"""

from pathlib import Path

import numpy as np

from indoor_parsing.data.captures.base import (
    IMAGE_SUFFIXES,
    Capture,
    CaptureFrame,
    Recording,
    StemIndex,
    frame_sort_key,
    sub_folders,
)
from indoor_parsing.data.captures.poses import checked_pose, parse_intrinsics, pose_from_numbers, read_numbers
from indoor_parsing.io import DataFileError

COLOUR_DIRS = ("color", "colour", "rgb", "images", "image")
INTRINSICS_FILES = ("K.txt", "intrinsics.txt", "intrinsic.txt")
POSE_SOURCES = ("pose", "poses", "poses.txt")


def _images(d: Path, suffixes) -> list[Path]:
    return [p for p in d.iterdir() if p.suffix.lower() in suffixes and not p.name.startswith(".")] if d.is_dir() else []


def read_pose_list(path: Path, names: list[str]) -> dict[str, tuple[np.ndarray, str]]:
    """``{frame name: (4x4 as written, "<file> line n")}`` from a one-line-per-frame pose file."""
    lines = [(n, line.split()) for n, line in enumerate(path.read_text().splitlines(), 1)
             if line.strip() and not line.lstrip().startswith("#")]  # fmt: skip
    named = all(_is_name(parts[0]) for _, parts in lines) if lines else False
    if not named and len(lines) != len(names):
        raise DataFileError(f"{path}: {len(lines)} unnamed pose lines for {len(names)} colour frames; write one "
                            "line per frame, or '<frame name> <numbers>' lines")  # fmt: skip
    out = {}
    for k, (n, parts) in enumerate(lines):
        where = f"{path} line {n}"
        key = Path(parts[0]).stem if named else names[k]
        try:
            values = np.asarray([float(v) for v in (parts[1:] if named else parts)], np.float64)
        except ValueError as err:
            raise DataFileError(f"{where}: expected numbers ({err})") from err
        if key in out:
            raise DataFileError(f"{where}: a second pose for frame {key!r}")
        out[key] = (pose_from_numbers(values, where), where)
    return out


def _is_name(token: str) -> bool:
    try:
        float(token)
        return False
    except ValueError:
        return True


class FolderCapture(Capture):
    """A generic RGB-D folder (see module docstring)."""

    format = "folder"
    description = "generic folder: colour + 16-bit depth images, intrinsics and poses given by files or options"

    def _colour_dir(self, d: Path) -> Path | None:
        names = (self.options.colour_dir,) if self.options.colour_dir else COLOUR_DIRS
        return next((d / n for n in names if (d / n).is_dir()), None)

    def _accept(self, d: Path) -> bool:
        return self._colour_dir(d) is not None and (d / (self.options.depth_dir or "depth")).is_dir()

    def matches(self) -> bool:
        return bool(sub_folders(self.path, self._accept))

    def recordings(self) -> list[Recording]:
        folders = sub_folders(self.path, self._accept)
        if not folders:
            raise DataFileError(
                f"{self.path}: no colour folder ({', '.join(COLOUR_DIRS)} or --colour-dir) with a "
                f"{self.options.depth_dir or 'depth'}/ folder beside it, here or in its sub-folders"
            )
        return [self._recording(d) for d in folders]

    def _intrinsics(self, d: Path) -> tuple[np.ndarray, str]:
        if self.options.intrinsics:
            return parse_intrinsics(self.options.intrinsics, d)
        for name in INTRINSICS_FILES:
            for base in (d, self.path):
                if (base / name).is_file():
                    return parse_intrinsics(str(base / name), d)
        raise DataFileError(f"{d}: no intrinsics ({', '.join(INTRINSICS_FILES)}); pass --intrinsics FILE or "
                            "--intrinsics fx,fy,cx,cy")  # fmt: skip

    def _poses(self, d: Path, names: list[str]) -> tuple[dict[str, tuple[np.ndarray, str]], list[Path]]:
        spec = self.options.poses
        source = None
        if spec:
            source = Path(spec).expanduser()
            source = source if source.is_absolute() else d / source
            if not source.exists():
                raise DataFileError(f"{source}: pose file or folder not found")
        else:
            source = next((d / n for n in POSE_SOURCES if (d / n).exists()), None)
        if source is None:
            return {}, []
        if source.is_file():
            return read_pose_list(source, names), [source]
        files = [p for p in source.iterdir() if p.suffix == ".txt"]
        index = StemIndex(source, files)
        out = {}
        for name in names:
            p = index.get(name)
            if p is not None:
                out[name] = (pose_from_numbers(read_numbers(p), str(p)), str(p))
        return out, files

    def _recording(self, d: Path) -> Recording:
        opts = self.options
        colour_dir, depth_dir = self._colour_dir(d), d / (opts.depth_dir or "depth")
        colour = sorted(_images(colour_dir, IMAGE_SUFFIXES), key=lambda p: frame_sort_key(p.stem))
        if not colour:
            raise DataFileError(f"{colour_dir}: no .jpg / .png colour images")
        depth_files = _images(depth_dir, (".png",))
        depths = StemIndex(depth_dir, depth_files)
        names = [p.stem for p in colour]
        if len(set(names)) != len(names):
            raise DataFileError(f"{colour_dir}: two colour images share a name (e.g. .jpg and .png of one frame)")
        poses, pose_files = self._poses(d, names)
        convention = opts.pose_convention or "camera-to-world"
        frames, skipped = [], []
        for rgb in colour:
            depth = depths.get(rgb.stem)
            if depth is None:
                skipped.append((rgb.stem, f"no depth image for {rgb.name} in {depth_dir}"))
                continue
            if rgb.stem in poses:
                T, where = poses[rgb.stem]
                pose, why = checked_pose(T, convention, where)
            else:
                pose, why = None, "no pose given" if not pose_files else f"no pose for {rgb.stem}"
            frames.append(CaptureFrame(rgb.stem, rgb, depth, pose, why))
        K, where = self._intrinsics(d)
        K_depth = parse_intrinsics(opts.depth_intrinsics, d)[0] if opts.depth_intrinsics else None
        notes = [] if pose_files else [f"{d}: no poses: frames can be labelled, not adapted on (--poses)"]
        return Recording(
            name=d.name, source=d, frames=frames, K_colour=K, K_depth=K_depth, intrinsics_source=where,
            depth=opts.codec(1000.0), reproject_depth=K_depth is not None, skipped=skipped, notes=notes,
            inputs=[*colour, *depth_files, *pose_files],
        )  # fmt: skip

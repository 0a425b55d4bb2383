"""ScanNet export folders (SensReader / ``indoor-parsing prepare scannet-export``), padded or unpadded frame names.

::

    <recording>/color/<n>.jpg|png       colour; <n> = frame number, zero-padded (``000012``) or not (``12``)
    <recording>/depth/<n>.png           uint16 millimetres, 0 = missing
    <recording>/pose/<n>.txt            4x4 camera-to-world; -inf / nan where tracking was lost
    <recording>/intrinsic/intrinsic_color.txt and/or intrinsic_depth.txt   3x3 or 4x4

The capture is one such folder or a folder of them (one per recording). Depth and pose files are matched to the
colour frame by name, or by number (``000012.png`` is frame ``12``); both spellings of one frame are an error.
"""

from pathlib import Path

from indoor_parsing.data.captures.base import (
    IMAGE_SUFFIXES,
    Capture,
    CaptureFrame,
    Recording,
    StemIndex,
    frame_sort_key,
    sub_folders,
)
from indoor_parsing.data.captures.poses import (
    checked_pose,
    intrinsics_from_numbers,
    parse_intrinsics,
    pose_from_numbers,
    read_numbers,
)
from indoor_parsing.io import DataFileError


def _is_export(d: Path) -> bool:
    return (d / "color").is_dir() and ((d / "depth").is_dir() or (d / "pose").is_dir())


def _files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    return [p for p in folder.iterdir() if p.suffix.lower() in suffixes and not p.name.startswith(".")] \
        if folder.is_dir() else []  # fmt: skip


class ScanNetExportCapture(Capture):
    """ScanNet's exported frames (see module docstring)."""

    format = "scannet"
    description = "ScanNet export: color/ depth/ pose/ intrinsic/ (padded or unpadded frame numbers)"

    def matches(self) -> bool:
        return bool(sub_folders(self.path, _is_export))

    def recordings(self) -> list[Recording]:
        folders = sub_folders(self.path, _is_export)
        if not folders:
            raise DataFileError(f"{self.path}: no color/ with depth/ and pose/ here or in its sub-folders "
                                "(expected a ScanNet export)")  # fmt: skip
        return [self._recording(d) for d in folders]

    def _intrinsics(self, d: Path):
        opts = self.options
        if opts.intrinsics:
            K, where = parse_intrinsics(opts.intrinsics, d)
            K_depth = parse_intrinsics(opts.depth_intrinsics, d)[0] if opts.depth_intrinsics else None
            return K, K_depth, where
        colour, depth = d / "intrinsic" / "intrinsic_color.txt", d / "intrinsic" / "intrinsic_depth.txt"
        K = intrinsics_from_numbers(read_numbers(colour), str(colour)) if colour.is_file() else None
        K_depth = intrinsics_from_numbers(read_numbers(depth), str(depth)) if depth.is_file() else None
        if K is None and K_depth is None:
            raise DataFileError(f"{d / 'intrinsic'}: neither intrinsic_color.txt nor intrinsic_depth.txt found "
                                "(or pass --intrinsics)")  # fmt: skip
        names = [p.name for p, m in ((colour, K), (depth, K_depth)) if m is not None]
        return K, K_depth, f"intrinsic/{' + '.join(names)}"

    def _recording(self, d: Path) -> Recording:
        convention = self.options.pose_convention or "camera-to-world"
        colour = sorted(_files(d / "color", IMAGE_SUFFIXES), key=lambda p: frame_sort_key(p.stem))
        if not colour:
            raise DataFileError(f"{d / 'color'}: no .jpg / .png colour frames")
        depth_files, pose_files = _files(d / "depth", (".png",)), _files(d / "pose", (".txt",))
        depths, poses = StemIndex(d / "depth", depth_files), StemIndex(d / "pose", pose_files)
        K, K_depth, where = self._intrinsics(d)
        frames, skipped = [], []
        seen = set()
        for rgb in colour:
            name = rgb.stem
            key = int(name) if name.isdigit() else name
            if key in seen:  # 12.jpg and 000012.jpg: which one is frame 12 would depend on the listing order
                raise DataFileError(f"{d / 'color'}: several colour files for frame {name!r}")
            seen.add(key)
            depth, pose_path = depths.get(name), poses.get(name)
            if depth is None:
                skipped.append((name, f"no depth file for {rgb.name} in {d / 'depth'}"))
                continue
            if pose_path is None:
                skipped.append((name, f"no pose file for {rgb.name} in {d / 'pose'}"))
                continue
            T = pose_from_numbers(read_numbers(pose_path), str(pose_path))
            pose, why = checked_pose(T, convention, str(pose_path))
            frames.append(CaptureFrame(name, rgb, depth, pose, why))
        return Recording(
            name=d.name, source=d, frames=frames, K_colour=K, K_depth=K_depth, intrinsics_source=where,
            depth=self.options.codec(1000.0), skipped=skipped,
            inputs=[*colour, *depth_files, *pose_files, *sorted((d / "intrinsic").glob("*.txt"))],
        )  # fmt: skip

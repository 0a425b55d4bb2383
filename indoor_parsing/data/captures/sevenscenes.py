"""Microsoft 7-Scenes: a scene folder of ``seq-NN/`` recordings (or one ``seq-NN/`` folder).

::

    seq-01/frame-000000.color.png (or .jpg)   640x480 RGB
    seq-01/frame-000000.depth.png             uint16 millimetres; 0 and 65535 = no measurement
    seq-01/frame-000000.pose.txt              4x4 camera-to-world

7-Scenes ships no calibration; its documented approximations are used unless ``--intrinsics`` /
``--depth-intrinsics`` say otherwise: the depth camera has fx = fy = 585, the colour camera fx = fy = 525, both with
the principal point at (320, 240), and the two are not registered. The depth is therefore reprojected into the colour
camera assuming both share one centre and orientation (checks.reproject_depth); the poses are those of that camera.
"""

import re
from pathlib import Path

import numpy as np

from indoor_parsing.data.captures.base import Capture, CaptureFrame, Recording, StemIndex, sub_folders
from indoor_parsing.data.captures.poses import checked_pose, parse_intrinsics, pose_from_numbers, read_numbers
from indoor_parsing.io import DataFileError

K_COLOUR = np.array([[525.0, 0, 320.0], [0, 525.0, 240.0], [0, 0, 1]])
K_DEPTH = np.array([[585.0, 0, 320.0], [0, 585.0, 240.0], [0, 0, 1]])
INVALID = (65535,)
_COLOUR = re.compile(r"(frame-\d+)\.color\.(png|jpg)$")


def _colour_files(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if _COLOUR.match(p.name)) if d.is_dir() else []


class SevenScenesCapture(Capture):
    """7-Scenes sequences (see module docstring)."""

    format = "7scenes"
    description = "Microsoft 7-Scenes: seq-NN/frame-NNNNNN.{color.png|jpg, depth.png, pose.txt}"

    def matches(self) -> bool:
        return bool(sub_folders(self.path, lambda d: bool(_colour_files(d))))

    def recordings(self) -> list[Recording]:
        folders = sub_folders(self.path, lambda d: bool(_colour_files(d)))
        if not folders:
            raise DataFileError(f"{self.path}: no frame-NNNNNN.color.png here or in its seq-NN/ sub-folders")
        return [self._recording(d) for d in folders]

    def _recording(self, d: Path) -> Recording:
        opts = self.options
        convention = opts.pose_convention or "camera-to-world"
        colour = _colour_files(d)
        depth_files = sorted(d.glob("frame-*.depth.png"))
        pose_files = sorted(d.glob("frame-*.pose.txt"))
        depths, poses = StemIndex(d, depth_files, strip=".depth"), StemIndex(d, pose_files, strip=".pose")
        frames, skipped, names = [], [], set()
        for rgb in colour:
            name = _COLOUR.match(rgb.name).group(1)
            if name in names:
                raise DataFileError(f"{d}: frame {name} has both a .color.png and a .color.jpg")
            names.add(name)
            depth, pose_path = depths.get(name), poses.get(name)
            if depth is None:
                skipped.append((name, f"no {name}.depth.png in {d}"))
                continue
            if pose_path is None:
                skipped.append((name, f"no {name}.pose.txt in {d}"))
                continue
            T = pose_from_numbers(read_numbers(pose_path), str(pose_path))
            pose, why = checked_pose(T, convention, str(pose_path))
            frames.append(CaptureFrame(name, rgb, depth, pose, why))
        K, where = (parse_intrinsics(opts.intrinsics, d) if opts.intrinsics
                    else (K_COLOUR, "7-Scenes colour camera fx=fy=525"))  # fmt: skip
        K_depth = parse_intrinsics(opts.depth_intrinsics, d)[0] if opts.depth_intrinsics else K_DEPTH
        notes = [] if opts.depth_intrinsics or opts.intrinsics else [
            f"{d}: 7-Scenes colour and depth are not registered; depth reprojected from the depth camera (f=585) into "
            "the colour camera (f=525) assuming a shared centre"]  # fmt: skip
        return Recording(
            name=d.name, source=d, frames=frames, K_colour=K, K_depth=K_depth, intrinsics_source=where,
            depth=opts.codec(1000.0, INVALID), reproject_depth=True, skipped=skipped, notes=notes,
            inputs=[*colour, *depth_files, *pose_files],
        )  # fmt: skip

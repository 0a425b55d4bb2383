"""TUM RGB-D sequences (``rgbd_dataset_freiburgN_*``): one folder per recording, or a folder of them.

::

    rgb.txt           "timestamp rgb/<timestamp>.png" per line ('#' lines are comments)
    depth.txt         "timestamp depth/<timestamp>.png"; 16-bit PNG, metres = value / 5000, 0 = missing
    groundtruth.txt   "timestamp tx ty tz qx qy qz qw": camera-to-world of the colour camera's optical centre

Colour and depth are associated one-to-one by nearest timestamp within ``max_time_diff`` (0.02 s), greedily from
the closest pair as TUM's ``associate.py`` does; each colour frame takes the ground-truth pose nearest in time
within the same tolerance. The depth is registered to the colour image; the intrinsics are TUM's calibration of the
Freiburg 1, 2 or 3 colour camera (from the sequence name, or ``--camera``). TUM's images are not undistorted here
(fr3 is distortion-free; fr1 and fr2 have a few pixels of radial distortion at the borders).
"""

import re
from pathlib import Path

import numpy as np

from indoor_parsing.data.captures.base import Capture, CaptureFrame, Recording, sub_folders
from indoor_parsing.data.captures.poses import checked_pose, parse_intrinsics, quaternion_pose
from indoor_parsing.io import DataFileError

DEPTH_SCALE = 5000.0
CAMERAS = {  # fx, fy, cx, cy of the colour cameras (vision.in.tum.de/data/datasets/rgbd-dataset/file_formats)
    "fr1": (517.3, 516.5, 318.6, 255.3),
    "fr2": (520.9, 521.0, 325.1, 249.7),
    "fr3": (535.4, 539.2, 320.1, 247.6),
}


def _is_tum(d: Path) -> bool:
    return (d / "rgb.txt").is_file() and (d / "depth.txt").is_file()


def read_list(path: Path, columns: int) -> list[tuple[float, list[str]]]:
    """Non-comment lines of a TUM list as (timestamp, the other fields); DataFileError names the bad line."""
    if not path.is_file():
        raise DataFileError(f"{path}: file not found")
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.replace(",", " ").split()
        try:
            if len(parts) != columns:
                raise ValueError(f"{len(parts)} fields, expected {columns}")
            out.append((float(parts[0]), parts[1:]))
        except ValueError as err:
            raise DataFileError(f"{path}: line {n}: {err}: {line!r}") from err
    return out


def associate(a: list[float], b: list[float], max_diff: float) -> dict[int, int]:
    """One-to-one ``{index in a: index in b}``: pairs within ``max_diff`` seconds, closest first."""
    b_arr = np.asarray(b)
    cands = []
    for i, t in enumerate(a):
        lo, hi = np.searchsorted(b_arr, [t - max_diff, t + max_diff])
        cands += [(abs(t - b_arr[j]), i, j) for j in range(lo, hi) if abs(t - b_arr[j]) < max_diff]
    pairs, used = {}, set()
    for _, i, j in sorted(cands):
        if i not in pairs and j not in used:
            pairs[i] = j
            used.add(j)
    return pairs


def nearest(a: list[float], b: list[float], max_diff: float) -> dict[int, int]:
    """``{index in a: index of the nearest time in b}`` for the times within ``max_diff`` seconds."""
    b_arr = np.asarray(b)
    out = {}
    for i, t in enumerate(a):
        k = int(np.searchsorted(b_arr, t))
        best = min((j for j in (k - 1, k) if 0 <= j < len(b_arr)), key=lambda j: abs(b_arr[j] - t), default=None)
        if best is not None and abs(b_arr[best] - t) < max_diff:
            out[i] = best
    return out


class TUMCapture(Capture):
    """TUM RGB-D sequences (see module docstring)."""

    format = "tum"
    description = "TUM RGB-D: rgb.txt, depth.txt, groundtruth.txt (depth / 5000, Freiburg 1/2/3 intrinsics)"

    def matches(self) -> bool:
        return bool(sub_folders(self.path, _is_tum))

    def recordings(self) -> list[Recording]:
        folders = sub_folders(self.path, _is_tum)
        if not folders:
            raise DataFileError(f"{self.path}: no rgb.txt and depth.txt here or in its sub-folders (TUM RGB-D)")
        return [self._recording(d) for d in folders]

    def _intrinsics(self, d: Path) -> tuple[np.ndarray, str]:
        if self.options.intrinsics:
            return parse_intrinsics(self.options.intrinsics, d)
        camera = self.options.camera
        if camera is None:
            found = re.search(r"freiburg(\d)", d.name)
            camera = f"fr{found.group(1)}" if found else None
        if camera not in CAMERAS:
            raise DataFileError(f"{d}: which TUM camera recorded this? The folder name has no 'freiburg1/2/3'; pass "
                                f"--camera {'|'.join(CAMERAS)} (or --intrinsics fx,fy,cx,cy)")  # fmt: skip
        fx, fy, cx, cy = CAMERAS[camera]
        return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]]), f"TUM {camera} colour camera"

    def _recording(self, d: Path) -> Recording:
        opts = self.options
        tol = opts.max_time_diff
        rgb = sorted(read_list(d / "rgb.txt", 2))
        depth = sorted(read_list(d / "depth.txt", 2))
        gt_path = d / "groundtruth.txt"
        gt = sorted(read_list(gt_path, 8)) if gt_path.is_file() else []
        to_depth = associate([t for t, _ in rgb], [t for t, _ in depth], tol)
        to_pose = nearest([t for t, _ in rgb], [t for t, _ in gt], tol)
        convention = opts.pose_convention or "camera-to-world"
        frames, skipped = [], []
        for i, (t, (rel,)) in enumerate(rgb):
            name = Path(rel).stem
            if i not in to_depth:
                skipped.append((name, f"no depth image within {tol} s of {t:.6f} in {d / 'depth.txt'}"))
                continue
            colour_path, depth_path = d / rel, d / depth[to_depth[i]][1][0]
            for p in (colour_path, depth_path):
                if not p.is_file():
                    raise DataFileError(f"{p}: listed in {d / ('rgb.txt' if p == colour_path else 'depth.txt')} "
                                        "but missing")  # fmt: skip
            if i in to_pose:
                t_gt, values = gt[to_pose[i]]
                where = f"{gt_path} at {t_gt:.4f}"
                v = np.asarray([float(x) for x in values], np.float64)
                pose, why = checked_pose(quaternion_pose(v[:3], v[3:], where), convention, where)
            else:
                pose, why = None, f"no ground-truth pose within {tol} s in {gt_path}"
            frames.append(CaptureFrame(name, colour_path, depth_path, pose, why))
        K, where = self._intrinsics(d)
        notes = [f"{d}: no groundtruth.txt: frames have no poses (they can be labelled, not adapted on)"] \
            if not gt else []  # fmt: skip
        return Recording(
            name=d.name, source=d, frames=frames, K_colour=K, K_depth=None, intrinsics_source=where,
            depth=opts.codec(DEPTH_SCALE), skipped=skipped, notes=notes,
            inputs=[d / "rgb.txt", d / "depth.txt", *([gt_path] if gt else [])],
        )  # fmt: skip

"""Stanford 2D-3D-S perspective frames (Area-5 test split) and S3DIS room point clouds, label space "s3dis13".

2D (``--src``: the folder of ``area_1 ... area_6`` with ``area_5a``/``area_5b``): ``area_N/data/{rgb,depth,semantic,
pose}/camera_<uuid>_<room>_frame_<j>_domain_<modality>.{png,json}``. Depth is uint16 in 1/512 m (65535 = missing);
semantic is 24-bit RGB, index = R*65536 + G*256 + B into semantic_labels.json (shipped as
tables/s3dis_semantic_classes.txt), class = the name before the first "_" (0x0D0D0D = no data, ``<UNK>`` = 0).
Poses: ``camera_rt_matrix`` (3x4 world-to-camera) inverted to camera-to-world. Train areas 1, 2, 3, 4, 6; test 5a+5b.

3D (``--points``: Stanford3dDataset_v1.2[_Aligned_Version] with ``Area_N/<room>/Annotations/<class>_<n>.txt`` of
"x y z r g b" lines): ``scenes/Area_N/<room>/points.npz`` (xyz float32, rgb uint8, label uint8 s3dis13 ids 1..13;
``stairs`` -> clutter as in Pointcept / mmdetection3d).
"""

import argparse
import functools
import re
from collections import Counter
from importlib import resources
from pathlib import Path

import numpy as np

from indoor_parsing.data.layout import Frame
from indoor_parsing.data.prepare.common import (
    Outcome,
    PrepareReport,
    check_same_size,
    finish,
    frames_of,
    map_labels,
    resize_image,
    run_jobs,
    scale_intrinsics,
)
from indoor_parsing.data.taxonomy import S3DIS13
from indoor_parsing.io import DataFileError, load_rgb, read_json, save_depth, save_image, save_npz

AREAS = ("area_1", "area_2", "area_3", "area_4", "area_5a", "area_5b", "area_6")
TEST_AREAS = ("area_5a", "area_5b")
TEST_POINT_AREA = "Area_5"  # the S3DIS name of the same fold
ROOMS_PER_AREA = {"Area_1": 44, "Area_2": 40, "Area_3": 23, "Area_4": 49, "Area_5": 68, "Area_6": 48}
NO_DATA = 0x0D0D0D
CLASS_ID = {**{name: i + 1 for i, name in enumerate(S3DIS13)}, "stairs": S3DIS13.index("clutter") + 1}
_NAME = re.compile(r"camera_([0-9a-f]+)_(.+)_frame_(\d+)_domain_rgb$")


@functools.lru_cache(maxsize=2)
def semantic_lut(labels_json: str | Path | None = None) -> np.ndarray:
    """(9816,) int64: semantic PNG index -> s3dis13 id (``<UNK>`` -> 0; a class outside the 13 -> -1 = unknown)."""
    if labels_json is None:
        text = resources.files("indoor_parsing.data").joinpath("tables/s3dis_semantic_classes.txt").read_text()
        names = [line for line in text.splitlines() if not line.startswith("#")]
    else:
        labels = read_json(labels_json)
        if not isinstance(labels, list):
            raise DataFileError(f"{labels_json}: expected a JSON list of label strings")
        names = [str(name).split("_")[0] for name in labels]
    return np.asarray([0 if n == "<UNK>" else CLASS_ID.get(n, -1) for n in names], np.int64)


def decode_semantic(rgb: np.ndarray, lut: np.ndarray, unknown: Counter | None = None) -> np.ndarray:
    """(H, W, 3) uint8 semantic PNG -> (H, W) uint8 s3dis13 ids; no-data pixels (0x0D0D0D) -> 0, not counted."""
    index = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]  # (H, W)
    index[index == NO_DATA] = 0
    return map_labels(index, lut, unknown)


def decode_depth(png: np.ndarray) -> np.ndarray:
    """uint16 in 1/512 m (65535 = missing) -> float32 metres, 0 = missing."""
    depth = png.astype(np.float32) / 512.0
    depth[png == 65535] = 0.0
    return depth


def read_pose(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(K (3, 3), camera-to-world (4, 4)) from a ``*_domain_pose.json``."""
    pose = read_json(path)
    try:
        K = np.asarray(pose["camera_k_matrix"], np.float64).reshape(3, 3)
        world_to_cam = np.vstack([np.asarray(pose["camera_rt_matrix"], np.float64).reshape(3, 4), [0, 0, 0, 1]])
    except (KeyError, ValueError) as err:
        raise DataFileError(f"{path}: expected camera_k_matrix (3x3) and camera_rt_matrix (3x4) ({err!r})") from err
    return K, np.linalg.inv(world_to_cam)


def _area_name(area: str) -> str:
    return "Area_" + area.split("_")[1][0]  # area_5a -> Area_5: the S3DIS name, shared with the point clouds


def _prepare_frame(payload: tuple, dst: Path) -> Outcome:
    rgb_path, area, size, labels_json = payload
    rgb_path = Path(rgb_path)
    data = rgb_path.parents[1]
    stem = rgb_path.name[: -len("_rgb.png")]
    uuid, room, j = _NAME.fullmatch(rgb_path.stem).groups()
    rgb = load_rgb(rgb_path)
    depth_path = data / "depth" / f"{stem}_depth.png"
    sem_path = data / "semantic" / f"{stem}_semantic.png"
    depth_png = np.asarray(_load(depth_path))
    semantic = np.asarray(_load(sem_path))
    if depth_png.dtype != np.uint16 or semantic.ndim != 3:
        raise DataFileError(f"{depth_path} / {sem_path}: expected uint16 depth and RGB semantic images")
    check_same_size({"rgb": rgb, "depth": depth_png, "semantic": semantic}, str(sem_path))
    K, pose = read_pose(data / "pose" / f"{stem}_pose.json")
    unknown = Counter()
    label = decode_semantic(semantic[..., :3], semantic_lut(labels_json), unknown)
    depth = decode_depth(depth_png)
    if size:
        H0, W0 = label.shape
        rgb, label = resize_image(rgb, (size, size), nearest=False), resize_image(label, (size, size), nearest=True)
        depth, K = resize_image(depth, (size, size), nearest=True), scale_intrinsics(K, size / W0, size / H0)
    scene = f"{_area_name(area)}/{room}"
    name = f"{room}_{uuid}_{int(j):03d}"
    paths = {k: f"{area}/{k}/{name}.{ext}" for k, ext in (("rgb", "jpg"), ("depth", "png"), ("label", "png"))}
    save_image(dst / paths["rgb"], rgb)
    save_depth(dst / paths["depth"], depth)
    save_image(dst / paths["label"], label)
    H, W = label.shape
    frame = Frame(split="test" if area in TEST_AREAS else "train", scene=scene, sequence=f"{scene}/{uuid}",
                  index=int(j), height=H, width=W, intrinsics=tuple(K.ravel()), pose=tuple(pose.ravel()),
                  extra={"area": area}, **paths)  # fmt: skip
    return Outcome(frame=frame, unknown_ids=dict(unknown))


def _load(path: Path):
    from PIL import Image

    if not path.is_file():
        raise DataFileError(f"{path}: file not found")
    try:
        with Image.open(path) as im:
            return np.asarray(im)
    except OSError as err:
        raise DataFileError(f"{path}: cannot decode image ({err})") from err


def read_points_txt(path: Path) -> tuple[np.ndarray, list[str]]:
    """(N, 6) float64 "x y z r g b"; lines with stray bytes (S3DIS v1.2 Area_5/office_19 has one) are repaired."""
    try:
        return np.loadtxt(path, dtype=np.float64, ndmin=2).reshape(-1, 6), []
    except ValueError:
        pass
    rows, notes = [], []
    with open(path, "rb") as f:
        for k, line in enumerate(f, start=1):
            try:
                values = [float(v) for v in line.split()]
            except ValueError:
                cleaned = bytes(c for c in line if chr(c) in "0123456789.-+eE \t\n")
                values = [float(v) for v in cleaned.split()] if cleaned.strip() else []
                notes.append(f"{path}: line {k}: repaired {line[:60]!r} -> {values}")
            if len(values) != 6:
                notes.append(f"{path}: line {k}: dropped (not 6 numbers)")
                continue
            rows.append(values)
    return np.asarray(rows, np.float64).reshape(-1, 6), notes


def _prepare_room(payload: tuple, dst: Path) -> Outcome:
    room_dir = Path(payload)
    parts, labels, notes, unknown = [], [], [], Counter()
    files = sorted((room_dir / "Annotations").glob("*.txt"))
    if not files:
        raise DataFileError(f"{room_dir / 'Annotations'}: no <class>_<n>.txt files")
    for path in files:
        points, fixed = read_points_txt(path)
        notes += fixed
        name = path.stem.split("_")[0]
        if name not in CLASS_ID:
            unknown[f"points:{name}"] += len(points)
        parts.append(points)
        labels.append(np.full(len(points), CLASS_ID.get(name, 0), np.uint8))
    points = np.concatenate(parts)  # (N, 6)
    scene = f"{room_dir.parent.name}/{room_dir.name}"
    rel = f"scenes/{scene}/points.npz"
    save_npz(dst / rel, xyz=points[:, :3].astype(np.float32), rgb=np.clip(points[:, 3:], 0, 255).astype(np.uint8),
             label=np.concatenate(labels))  # fmt: skip
    return Outcome(unknown_ids=dict(unknown), files=[rel], info={"scene": scene, "points": rel}, notes=notes)


def prepare(
    src: str | Path | None,
    dst: str | Path,
    workers: int = 1,
    overwrite: bool = False,
    points: str | Path | None = None,
    size: int | None = None,
    labels_json: str | Path | None = None,
) -> PrepareReport:
    """Convert 2D-3D-S areas (``src``) and/or S3DIS rooms (``points``) into the prepared layout.

    Args:
        src: folder holding area_1 ... area_6 (2D-3D-S, perspective ``data/``), or None for point clouds only.
        dst: output folder.
        workers: worker processes.
        overwrite: redo frames that a previous run finished.
        points: Stanford3dDataset_v1.2 folder holding Area_1 ... Area_6, or None.
        size: resize the 1080x1080 frames to size x size (intrinsics follow), or None to keep them.
        labels_json: semantic_labels.json; default: the shipped class table derived from it.
    """
    dst = Path(dst)
    report = PrepareReport(dataset="s3dis", src=str(src), dst=str(dst))
    jobs, room_jobs = [], []
    if src is not None:
        areas = [Path(src) / a for a in AREAS if (Path(src) / a / "data" / "rgb").is_dir()]
        if not areas:
            raise DataFileError(f"{src}: no 2D-3D-S areas (area_N/data/rgb) found")
        report.check_count("areas", len(areas), len(AREAS))
        for area in areas:
            for p in sorted((area / "data" / "rgb").glob("*_domain_rgb.png")):
                if _NAME.fullmatch(p.stem):
                    jobs.append((f"{area.name}/{p.stem}", (str(p), area.name, size, labels_json)))
                else:
                    report.problems.append(f"{p}: unexpected name (camera_<uuid>_<room>_frame_<j>_domain_rgb.png)")
    if points is not None:
        for area, n_rooms in ROOMS_PER_AREA.items():
            rooms = sorted(d for d in (Path(points) / area).glob("*") if (d / "Annotations").is_dir())
            room_jobs += [(f"{area}/{d.name}", str(d)) for d in rooms]
            report.check_count(f"{area} rooms", len(rooms), n_rooms)
    if not jobs and not room_jobs:
        raise DataFileError("nothing to prepare: give --src (2D-3D-S areas) and/or --points (S3DIS rooms)")
    frames = frames_of(run_jobs(_prepare_frame, jobs, dst, report, workers, overwrite))
    outcomes = run_jobs(_prepare_room, room_jobs, dst, report, workers, overwrite, desc="rooms")
    manifest = {
        "dataset": "s3dis", "label_space": "s3dis13", "classes": list(S3DIS13),
        "splits": {"train": "area_1, 2, 3, 4, 6", "test": "area_5a + area_5b"}, "size": size,
        "points": {o.info["scene"]: o.info["points"] for o in outcomes if o.info},
        # A cloud's split is its frames' split; a room without frames (``--points`` alone) takes its area's.
        "point_splits": {o.info["scene"]: "test" if o.info["scene"].startswith(TEST_POINT_AREA + "/") else "train"
                         for o in outcomes if o.info},
    }  # fmt: skip
    return finish(dst, manifest, frames, report)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--points", default=None, help="Stanford3dDataset_v1.2 folder holding Area_1 ... Area_6")
    parser.add_argument("--size", type=int, default=None, help="resize frames to SIZE x SIZE (default: 1080)")
    parser.add_argument("--labels-json", default=None, help="semantic_labels.json (default: shipped table)")


def prepare_from_args(args: argparse.Namespace) -> PrepareReport:
    return prepare(args.src, args.dst, args.workers, args.overwrite, args.points, args.size, args.labels_json)

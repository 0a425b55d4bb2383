"""Prepared fixture trees of the four real datasets, built through their official formats and `prepare`.

Used by the config smoke tests so that every real-dataset experiment config runs under fast_dev_run.
"""

from pathlib import Path

import numpy as np

from indoor_parsing.data.prepare import nyudv2, s3dis, scannet, sunrgbd
from tests.fixtures_formats import (
    write_2d3ds_frame,
    write_label_zip,
    write_nyu_mat,
    write_ply,
    write_s3dis_room,
    write_sens,
    write_sunrgbd,
)

H, W = 24, 32
K = np.array([[30.0, 0.0, 15.5], [0.0, 30.0, 11.5], [0.0, 0.0, 1.0]])


def _rgb(rng):
    return rng.integers(0, 256, (H, W, 3), dtype=np.uint8)


def build_nyudv2(root: Path, rng) -> Path:
    # 1-based frames 1, 2 are official test frames; 3..8 are train.
    n = 5
    labels = rng.choice([0, 21, 11, 3, 157, 8, 1], (n, H, W)).astype(np.uint16)
    src = root / "nyu_src"
    src.mkdir(parents=True)
    images = rng.integers(0, 256, (n, H, W, 3), dtype=np.uint8)
    depths = rng.uniform(0.5, 5, (n, H, W)).astype(np.float32)
    write_nyu_mat(src / "nyu_depth_v2_labeled.mat", images, depths, labels, [f"room_{i}" for i in range(n)])
    nyudv2.prepare(src, root / "nyudv2")
    return root / "nyudv2"


def build_sunrgbd(root: Path, rng) -> Path:
    frames = [
        {"key": f"kv1/NYUdata/NYU000{i}", "split": split, "rgb": _rgb(rng), "K": K,
         "depth_mm": rng.integers(500, 5000, (H, W)).astype(np.uint16),
         "label37": rng.integers(0, 38, (H, W)).astype(np.uint8)}
        for i, split in enumerate(("test", "train", "train", "train"), start=1)
    ]  # fmt: skip
    sunrgbd.prepare(write_sunrgbd(root / "sun_src", frames), root / "sunrgbd")
    return root / "sunrgbd"


def build_scannet(root: Path, rng) -> Path:
    src = root / "scannet_src"
    for scan in ("scene0000_00", "scene0000_01", "scene0568_00"):  # official train scans (two of a scene), a val scan
        frames = []
        for i in range(3):
            pose = np.eye(4)
            pose[:3, 3] = [0.05 * i, 0.0, 1.5]
            frames.append({"rgb": _rgb(rng), "depth_mm": rng.integers(500, 4000, (H, W)).astype(np.uint16),
                           "pose": pose, "label": rng.choice([1, 2, 5, 22, 41], (H, W)).astype(np.uint16)})  # fmt: skip
        d = src / "scans" / scan
        write_sens(d / f"{scan}.sens", frames, K, K)
        write_label_zip(d / f"{scan}_2d-label-filt.zip", {i: fr["label"] for i, fr in enumerate(frames)})
        n = 1500  # enough voxels for the sparse U-Net's deepest BatchNorm
        xyz = rng.uniform(0, 3, (n, 3)).astype(np.float32)
        write_ply(d / f"{scan}_vh_clean_2.ply", xyz, np.full((n, 3), 7, np.uint8))
        write_ply(d / f"{scan}_vh_clean_2.labels.ply", xyz, np.zeros((n, 3), np.uint8), rng.choice([1, 5], n))
    scannet.prepare(src, root / "scannet")
    return root / "scannet"


def build_s3dis(root: Path, rng) -> Path:
    src = root / "2d3ds"
    world_to_cam = np.eye(4)
    world_to_cam[:3, 3] = [0.5, 0.2, 2.0]
    sem = rng.choice([1, 357, 973, 2393], (H, W))  # beam, bookcase, ceiling, chair entries of semantic_labels.json
    for area, room, frames in (("area_1", "office_1", (1, 2, 3)), ("area_5a", "office_2", (4,))):
        for j in frames:
            depth = rng.integers(100, 3000, (H, W)).astype(np.uint16)
            write_2d3ds_frame(src / area, "cafe", room, j, _rgb(rng), depth, sem, K, world_to_cam)
    pts = root / "Stanford3dDataset_v1.2"

    def cloud(n=800):  # enough voxels for the sparse U-Net's deepest BatchNorm
        return np.concatenate([rng.uniform(0, 3, (n, 3)), rng.integers(0, 256, (n, 3))], axis=1)

    write_s3dis_room(pts / "Area_1" / "office_1", {"chair_1": cloud(), "ceiling_1": cloud()})
    write_s3dis_room(pts / "Area_5" / "office_2", {"chair_1": cloud(), "floor_1": cloud()})
    s3dis.prepare(src, root / "s3dis", points=pts)
    return root / "s3dis"


def build_capture(root: Path, rng) -> Path:
    """A user's RGB-D capture folder like ScanNet's export (color/depth/pose/intrinsic)."""
    from PIL import Image

    cap = root / "capture"
    for sub in ("color", "depth", "pose", "intrinsic"):
        (cap / sub).mkdir(parents=True)
    K4 = np.eye(4)
    K4[:3, :3] = K
    (cap / "intrinsic" / "intrinsic_color.txt").write_text("\n".join(" ".join(map(str, r)) for r in K4))
    for i in range(4):
        Image.fromarray(_rgb(rng)).save(cap / "color" / f"{i}.jpg")
        Image.fromarray(rng.integers(500, 4000, (H, W)).astype(np.uint16)).save(cap / "depth" / f"{i}.png")
        pose = np.eye(4)
        pose[0, 3] = 0.05 * i
        (cap / "pose" / f"{i}.txt").write_text("\n".join(" ".join(map(str, r)) for r in pose))
    return cap


def build_all(root: Path) -> dict[str, Path]:
    """class_path of each real DataModule -> a prepared fixture tree."""
    rng = np.random.default_rng(0)
    roots = {
        "indoor_parsing.data.nyudv2.NYUDv2DataModule": build_nyudv2(root, rng),
        "indoor_parsing.data.sunrgbd.SUNRGBDDataModule": build_sunrgbd(root, rng),
        "indoor_parsing.data.scannet.ScanNetDataModule": build_scannet(root, rng),
        "indoor_parsing.data.s3dis.S3DISDataModule": build_s3dis(root, rng),
        "indoor_parsing.data.capture.CaptureDataModule": build_capture(root, rng),
    }
    # Generic modules (e.g. the 3D teacher's point clouds) name the prepared folder the docs use.
    for name in ("nyudv2", "sunrgbd", "scannet", "s3dis"):
        roots[f"data/prepared/{name}"] = root / name
    return roots

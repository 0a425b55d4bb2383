r"""``indoor-parsing feature-audit``: does a cell's teacher point belong to what the cell's sample pixel shows?

For every covered cell of the stride-s grid, the class of its teacher point (the point's ground-truth label) is
compared with the frame's label at the cell's sample pixel; the share that differ is printed for the extraction's
sampling (the point visible at the sample pixel, ``extract.sample_cells``) and, for comparison, for the nearest
point anywhere in the s x s cell (what caches of version 1 stored). Cells whose point or pixel is unlabelled are
left out. No teacher is needed: only the layout's point clouds, depth and labels.

    indoor-parsing feature-audit --config configs/experiments/distill3d_resnet18_synthrooms.yaml --stride 8
"""

import argparse
from pathlib import Path

import numpy as np
import torch

from indoor_parsing.data.layout import pose_is_valid, read_layout
from indoor_parsing.data.points import load_points, points_key
from indoor_parsing.data.taxonomy import class_set as get_class_set
from indoor_parsing.distill.extract import sample_cells
from indoor_parsing.geometry.warp import zbuffer_project
from indoor_parsing.io import DataFileError, load_depth, load_label

SAMPLINGS = ("sample_pixel", "cell_nearest")


def label_mismatch(layout_root: str | Path, class_set: str, stride: int = 8, depth_tol: float = 0.1,
                   splits: str = "train", max_frames: int | None = None) -> dict[str, dict]:  # fmt: skip
    """Per sampling of :data:`SAMPLINGS`: ``mismatch`` (share of compared cells), ``compared``, ``covered`` cells.

    Args:
        layout_root: prepared layout with point clouds (``manifest["points"]``), depth and labels.
        class_set: class set both labels are mapped to.
        stride: grid cell size in pixels.
        depth_tol: visibility tolerance in metres (as ``extract-features``).
        splits: comma-separated frame splits.
        max_frames: stop after this many frames (None = all).
    """
    root = Path(layout_root).expanduser().resolve()
    manifest, frames = read_layout(root)
    lut = get_class_set(class_set).lut.astype(np.int64)
    points = manifest.get("points") or {}
    names = {s.strip() for s in splits.split(",")}
    frames = [f for f in frames if f.split in names and points_key(f, points) and f.label and pose_is_valid(f.T)]
    if not frames:
        raise DataFileError(f"{root}: no labelled frames of splits {sorted(names)} in scenes with point clouds")
    counts = {s: np.zeros(3, np.int64) for s in SAMPLINGS}  # differing, compared, covered
    clouds: dict[str, tuple[torch.Tensor, np.ndarray]] = {}
    for frame in frames[:max_frames]:
        key = points_key(frame, points)
        if key not in clouds:
            clouds.clear()  # frames come scene by scene: keep one cloud in memory
            cloud = load_points(root / points[key])
            clouds[key] = torch.from_numpy(cloud["xyz"]), lut[cloud["label"]]
        xyz, point_class = clouds[key]
        pixel_class = lut[load_label(root / frame.label)]  # (H, W)
        h, w = frame.height // stride, frame.width // stride
        sample = pixel_class[stride // 2 :: stride, stride // 2 :: stride][:h, :w]  # (h, w) label at sample pixels
        K, T = torch.from_numpy(frame.K).float(), torch.from_numpy(frame.T).float()
        kw = {"depth": torch.from_numpy(load_depth(root / frame.depth)) if frame.depth else None,
              "depth_tol": depth_tol}  # fmt: skip
        full, _ = zbuffer_project(xyz, K, T, frame.height, frame.width, **kw)  # (H, W), as extract-features
        nearest, _ = zbuffer_project(xyz, K, T, frame.height, frame.width, stride=stride, **kw)  # (h, w)
        for name, index in (("sample_pixel", sample_cells(full, stride)), ("cell_nearest", nearest)):
            index = index.numpy()
            covered = index >= 0
            cls = np.where(covered, point_class[index.clip(min=0)], 255)
            compared = covered & (cls != 255) & (sample != 255)
            counts[name] += [int((cls != sample)[compared].sum()), int(compared.sum()), int(covered.sum())]
    total = sum(f.height // stride * (f.width // stride) for f in frames[:max_frames])
    return {s: {"mismatch": float(c[0] / max(c[1], 1)), "compared": int(c[1]), "covered": int(c[2]),
                "cell_coverage": float(c[2] / max(total, 1))} for s, c in counts.items()}  # fmt: skip


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="indoor-parsing feature-audit", description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--layout", help="prepared layout with point clouds, depth and labels")
    src.add_argument("--config", help="experiment config whose data block names the layout")
    p.add_argument("--class-set", default=None, help="class set (default: the config's)")
    p.add_argument("--stride", type=int, default=8)
    p.add_argument("--depth-tol", type=float, default=0.1)
    p.add_argument("--splits", default="train")
    p.add_argument("--max-frames", type=int, default=None)
    args = p.parse_args(argv)
    layout, class_set = args.layout, args.class_set
    if args.config:
        from indoor_parsing.distill.depth_probe import load_datamodule

        dm = load_datamodule(args.config)
        dm.prepare_data()  # SynthRooms generates its layout here
        layout, class_set = dm.root, class_set or dm.classes.name
    if not class_set:
        p.error("--class-set is needed with --layout")
    result = label_mismatch(layout, class_set, args.stride, args.depth_tol, args.splits, args.max_frames)
    for name, r in result.items():
        print(f"{name:>13}: {100 * r['mismatch']:.1f}% of {r['compared']} compared cells differ from the label at "
              f"the sample pixel (cell coverage {100 * r['cell_coverage']:.1f}%)")  # fmt: skip

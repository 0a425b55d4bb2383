r"""``indoor-parsing extract-features``: project frozen 3D-teacher point features into every frame (Sec. 3.1).

Per scene: run the teacher once on the scene's points (penultimate per-point features); per frame: keep the nearest
visible point per pixel at full resolution (z-buffer, ``geometry.zbuffer_project``) after rejecting points whose
depth disagrees with the frame's depth map by more than ``depth_tol``; a cell of the coarse grid (``stride`` 8 in the
paper) takes the feature of the point visible at its sample pixel (:func:`sample_cells`), as the paper samples the
projected feature map; the grid is stored with a coverage mask (data/features.py). The cache manifest gets the
teacher checkpoint's sha256, the per-channel global mean / std of the point features (DN1) and the coverage;
``bank.npz`` gets features sampled per category (unpaired distillation).

Resumable: a scene is finished when its ``progress/<scene>.npz`` exists (written after its frames); a re-run skips
finished scenes and refuses an output folder made with other settings. Every file is written atomically.

    indoor-parsing extract-features --layout data/prepared/scannet --teacher runs/teacher3d/best.ckpt \
        --class-set scannet20 --out data/features/scannet_teacher3d
    indoor-parsing extract-features --config configs/experiments/distill3d_resnet18_synthrooms.yaml \
        --teacher runs/teacher3d_synthrooms/checkpoints/best.ckpt   # layout, class set, out from the config
"""

import argparse
import hashlib
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from indoor_parsing.data.features import BANK, CACHE_FORMAT, CACHE_VERSION, MANIFEST, frame_path
from indoor_parsing.data.layout import Frame, pose_is_valid, read_layout
from indoor_parsing.data.points import load_points, points_key
from indoor_parsing.data.taxonomy import class_set as get_class_set
from indoor_parsing.geometry.warp import zbuffer_project
from indoor_parsing.io import DataFileError, load_depth, read_json, save_npz, write_json

PointFeatures = Callable[[dict[str, np.ndarray]], np.ndarray]  # cloud (xyz, rgb, label) -> (N, C) float32


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def teacher_point_features(checkpoint: str | Path, device: str = "cpu") -> PointFeatures:
    """Per-point penultimate features of a fitted :class:`Teacher3DModule` checkpoint."""
    from indoor_parsing.methods.teacher3d import Teacher3DModule
    from indoor_parsing.models.teacher3d import point_inputs

    module = Teacher3DModule.load_from_checkpoint(checkpoint, map_location=device).eval()

    @torch.no_grad()
    def features(cloud: dict[str, np.ndarray]) -> np.ndarray:
        xyz = torch.from_numpy(cloud["xyz"]).to(device)
        coords = torch.cat([torch.zeros_like(xyz[:, :1]), xyz], 1)  # (N, 4), one scene = batch 0
        _, feats = module(coords, point_inputs(torch.from_numpy(cloud["rgb"]).to(device)))
        return feats.float().cpu().numpy()

    return features


def sample_cells(index: torch.Tensor, stride: int) -> torch.Tensor:
    """The point visible at each cell's sample pixel: a full-resolution (H, W) z-buffer -> (H // s, W // s) indices.

    Cell (i, j) covers pixels ``i s .. i s + s - 1`` (rows) and samples the pixel ``(i s + s // 2, j s + s // 2)``:
    the pixel nearest the cell centre, the one the student's cell is compared with (``sample_fake`` reads the label
    there too). -1 where no point is visible at that pixel.
    """
    H, W = index.shape
    h, w = H // stride, W // stride
    return index[stride // 2 :: stride, stride // 2 :: stride][:h, :w]


def frame_index(points: torch.Tensor, frame: Frame, root: Path, depth_tol: float) -> torch.Tensor:
    """Full-resolution z-buffer of one frame: (H, W) index of the visible point per pixel, -1 where none."""
    depth = torch.from_numpy(load_depth(root / frame.depth)) if frame.depth else None
    K, T = torch.from_numpy(frame.K).float(), torch.from_numpy(frame.T).float()
    index, _ = zbuffer_project(points, K, T, frame.height, frame.width, depth=depth, depth_tol=depth_tol)
    return index


def project_frame(points: torch.Tensor, feats: np.ndarray, frame: Frame, root: Path, stride: int,
                  depth_tol: float) -> tuple[np.ndarray, np.ndarray, int]:  # fmt: skip
    """(C, h, w) float16 features and (h, w) mask of one frame, plus its covered pixel count (stride 1)."""
    pixel_index = frame_index(points, frame, root, depth_tol)  # (H, W)
    index = sample_cells(pixel_index, stride).numpy()  # (h, w)
    mask = index >= 0
    grid = feats[index.clip(min=0)].transpose(2, 0, 1) * mask[None]  # (C, h, w)
    return grid.astype(np.float16), mask, int((pixel_index >= 0).sum())


def _scene_rng(seed: int, scene: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(scene.encode())])


def _process_scene(scene: str, frames: list[Frame], root: Path, points_rel: str, out: Path, fn: PointFeatures,
                   cfg: dict, lut: np.ndarray, bar: tqdm) -> dict:  # fmt: skip
    cloud = load_points(root / points_rel)
    feats = np.asarray(fn(cloud), np.float32)  # (N, C)
    if feats.ndim != 2 or feats.shape[0] != len(cloud["xyz"]):
        raise ValueError(f"teacher returned features {feats.shape} for {len(cloud['xyz'])} points of {scene}")
    points = torch.from_numpy(cloud["xyz"])
    covered_px = total_px = covered_cells = total_cells = skipped = 0
    for frame in frames:
        bar.update()
        if not pose_is_valid(frame.T):
            skipped += 1
            continue
        grid, mask, px = project_frame(points, feats, frame, root, cfg["stride"], cfg["depth_tol"])
        save_npz(frame_path(out, frame.key), feat=grid, mask=mask)
        covered_px, total_px = covered_px + px, total_px + frame.height * frame.width
        covered_cells, total_cells = covered_cells + int(mask.sum()), total_cells + mask.size
    label = lut[cloud["label"]].astype(np.int64)  # (N,) class-set ids, 255 = none
    rng, bank_rows = _scene_rng(cfg["seed"], scene), []
    for c in np.unique(label[label != 255]):
        rows = np.flatnonzero(label == c)
        bank_rows.append(rng.choice(rows, min(len(rows), cfg["bank_per_class"]), replace=False))
    bank_rows = np.sort(np.concatenate(bank_rows)) if bank_rows else np.zeros(0, np.int64)
    f64 = feats.astype(np.float64)
    result = {"sum": f64.sum(0), "sumsq": (f64**2).sum(0), "count": np.int64(len(feats)),
              "px": np.array([covered_px, total_px, covered_cells, total_cells, skipped], np.int64),
              "bank_features": feats[bank_rows].astype(np.float16), "bank_labels": label[bank_rows]}  # fmt: skip
    save_npz(out / "progress" / f"{scene}.npz", **result)
    return result


def extract_features(layout_root: str | Path, out_dir: str | Path, fn: PointFeatures, teacher: dict, class_set: str,
                     splits: str = "train", stride: int = 8, depth_tol: float = 0.1, bank_per_class: int = 2000,
                     seed: int = 0, progress: bool = True) -> dict:  # fmt: skip
    """Write (or finish) a feature cache; returns its manifest.

    Args:
        layout_root: prepared layout with poses, depth and ``manifest["points"]``.
        out_dir: cache folder.
        fn: cloud -> (N, C) per-point features (the frozen teacher).
        teacher: identity of the teacher for the manifest (``checkpoint``, ``sha256``).
        class_set: class set of the bank labels (names matched against the 2D classes when unpaired).
        splits: comma-separated frame splits to extract (training frames for paired distillation).
        stride: grid cell size in pixels.
        depth_tol: visibility tolerance in metres.
        bank_per_class: bank features per category (0 = no bank).
        seed: bank sampling seed.
        progress: tqdm bar.
    """
    root, out = Path(layout_root).expanduser().resolve(), Path(out_dir).expanduser()
    manifest, frames = read_layout(root)
    classes = get_class_set(class_set)
    if manifest.get("label_space") != classes.space:
        raise DataFileError(f"{root}: label space {manifest.get('label_space')!r}, class set {class_set!r} reads "
                            f"{classes.space!r}")  # fmt: skip
    points = manifest.get("points") or {}
    names = {s.strip() for s in splits.split(",")}
    by_scene: dict[str, list[Frame]] = {}
    for f in frames:
        key = points_key(f, points)
        if f.split in names and key is not None:
            by_scene.setdefault(key, []).append(f)
    if not by_scene:
        raise DataFileError(f"{root}: no frames of splits {sorted(names)} in scenes with point clouds")
    cfg = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "layout": str(root), "teacher": teacher,
           "class_set": class_set, "splits": sorted(names), "stride": stride, "depth_tol": depth_tol,
           "bank_per_class": bank_per_class, "seed": seed}  # fmt: skip
    settings_path = out / "settings.json"
    if settings_path.is_file() and read_json(settings_path) != cfg:
        old = read_json(settings_path)
        diff = sorted(k for k in set(old) | set(cfg) if old.get(k) != cfg.get(k))
        raise DataFileError(f"{out}: a cache made with other settings (differing: {', '.join(diff)}); "
                            "choose another --out or delete it")  # fmt: skip
    write_json(settings_path, cfg)
    results = []
    bar = tqdm(total=sum(map(len, by_scene.values())), desc="extract-features", disable=not progress)
    for scene in sorted(by_scene):
        done = out / "progress" / f"{scene}.npz"
        if done.is_file():
            with np.load(done) as data:
                results.append({k: data[k] for k in data.files})
            bar.update(len(by_scene[scene]))
            continue
        results.append(_process_scene(scene, by_scene[scene], root, points[scene], out, fn, cfg, classes.lut, bar))
    bar.close()
    count = sum(int(r["count"]) for r in results)
    mean = sum(r["sum"] for r in results) / count
    std = np.sqrt(np.maximum(sum(r["sumsq"] for r in results) / count - mean**2, 0.0))
    px = sum(r["px"] for r in results)
    bank = None
    if bank_per_class > 0:
        feats = np.concatenate([r["bank_features"] for r in results])
        labels = np.concatenate([r["bank_labels"] for r in results])
        rng, keep = np.random.default_rng(seed), []
        for c in np.unique(labels):
            rows = np.flatnonzero(labels == c)
            keep.append(rng.choice(rows, min(len(rows), bank_per_class), replace=False))
        keep = np.sort(np.concatenate(keep)) if keep else np.zeros(0, np.int64)
        save_npz(out / BANK, features=feats[keep], labels=labels[keep], class_names=np.array(classes.names))
        bank = BANK
    result = {**cfg, "channels": int(len(mean)), "mean": mean.tolist(), "std": std.tolist(), "points": count,
              "frames": int(sum(map(len, by_scene.values())) - px[4]), "skipped_invalid_pose": int(px[4]),
              "pixel_coverage": float(px[0] / max(px[1], 1)), "cell_coverage": float(px[2] / max(px[3], 1)),
              "bank": bank, "class_names": list(classes.names)}  # fmt: skip
    write_json(out / MANIFEST, result)  # last: its presence marks a complete cache
    return result


def build_test_cache(layout_root: str | Path, out_dir: str | Path, channels: int = 16, stride: int = 8,
                     class_set: str = "synthrooms", splits: str = "train", seed: int = 0,
                     bank_per_class: int = 64) -> Path:  # fmt: skip
    """A cache from a fixed random projection of point position and colour (no training, no MinkowskiEngine).

    For smoke tests of configs that need ``feature_cache``: same format as a real cache, features carry little.
    """
    W = np.random.default_rng(seed).standard_normal((6, channels)).astype(np.float32)

    def fn(cloud: dict[str, np.ndarray]) -> np.ndarray:
        x = np.concatenate([cloud["xyz"], cloud["rgb"].astype(np.float32) / 255.0], 1)  # (N, 6)
        return np.logaddexp(0.0, x @ W)  # softplus: non-negative like a U-Net's last ReLU, without dead channels

    teacher = {"checkpoint": None, "sha256": f"random-projection-{channels}-{seed}"}
    extract_features(layout_root, out_dir, fn, teacher, class_set, splits, stride, bank_per_class=bank_per_class,
                     seed=seed, progress=False)  # fmt: skip
    return Path(out_dir)


def build_bank_cache(out_dir: str | Path, class_set: str, channels: int = 16, per_class: int = 32,
                     seed: int = 0) -> Path:  # fmt: skip
    """A cache holding only statistics and a random bank (unpaired smoke tests of layouts without point clouds)."""
    out, names = Path(out_dir), list(get_class_set(class_set).names)
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(names)), per_class)
    feats = np.abs(rng.standard_normal((len(labels), channels)) + labels[:, None] % 3).astype(np.float16)
    save_npz(out / BANK, features=feats, labels=labels, class_names=np.array(names))
    f64 = feats.astype(np.float64)
    manifest = {"format": CACHE_FORMAT, "version": CACHE_VERSION, "teacher": {"sha256": "random-bank"},
                "class_set": class_set, "stride": 8, "channels": channels, "mean": f64.mean(0).tolist(),
                "std": f64.std(0).tolist(), "frames": 0, "bank": BANK, "class_names": names}  # fmt: skip
    write_json(out / MANIFEST, manifest)
    return out


def build_smoke_cache(config: dict, out_dir: str | Path) -> str | None:
    """For config smoke tests: a :func:`build_test_cache` for the (already shrunk) ``data`` block of ``config``.

    Returns the cache folder to put into ``data.init_args.feature_cache``, or None when the config needs no cache.
    Paired: projected from the layout the data block serves (generated first for SynthRooms; it needs point
    clouds). Unpaired (``paired: false``): statistics and a random bank only. Channels follow ``feat_channels``.
    """
    from indoor_parsing.distill.depth_probe import datamodule_from_block

    data = config.get("data") or {}
    if not (data.get("init_args") or {}).get("feature_cache"):
        return None
    dm = datamodule_from_block({**data, "init_args": {**data["init_args"], "feature_cache": None}})
    channels = int(config.get("model", {}).get("init_args", {}).get("feat_channels", 96))
    if not dm.paired:
        return str(build_bank_cache(out_dir, dm.classes.name, channels))
    dm.prepare_data()
    return str(build_test_cache(dm.root, out_dir, channels=channels, class_set=dm.classes.name))


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="indoor-parsing extract-features", description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--layout", help="prepared layout (frames with depth and poses, manifest['points'])")
    src.add_argument("--config", help="experiment config whose data block names the layout (and feature_cache)")
    p.add_argument("--teacher", required=True, help="Teacher3DModule checkpoint (.ckpt)")
    p.add_argument("--out", default=None, help="cache folder to write or finish (default: the config's feature_cache)")
    p.add_argument("--class-set", default=None, help="class set of the bank labels (default: the config's)")
    p.add_argument("--splits", default="train", help="comma-separated frame splits (default: train)")
    p.add_argument("--stride", type=int, default=8, help="grid cell in pixels (8 = PSPNet's output stride)")
    p.add_argument("--depth-tol", type=float, default=0.1, help="visibility tolerance against frame depth (m)")
    p.add_argument("--bank-per-class", type=int, default=2000, help="bank features per category (0 = none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    layout, class_set, out = args.layout, args.class_set, args.out
    if args.config:
        from indoor_parsing.distill.depth_probe import load_datamodule

        dm = load_datamodule(args.config)
        dm.prepare_data()  # SynthRooms generates its layout here
        layout, class_set = dm.root, class_set or dm.classes.name
        out = out or getattr(dm, "feature_cache", None)
    if not class_set or not out:
        p.error("--class-set and --out are needed (or a --config whose data block provides them)")
    if not Path(args.teacher).is_file():
        raise DataFileError(f"{args.teacher}: teacher checkpoint not found")
    teacher = {"checkpoint": str(Path(args.teacher).resolve()), "sha256": file_sha256(args.teacher)}
    fn = teacher_point_features(args.teacher, args.device)
    m = extract_features(layout, out, fn, teacher, class_set, args.splits, args.stride, args.depth_tol,
                         args.bank_per_class, args.seed)  # fmt: skip
    print(
        f"{out}: {m['frames']} frames, {m['channels']} channels, pixel coverage {100 * m['pixel_coverage']:.1f}% "
        f"(grid cells {100 * m['cell_coverage']:.1f}%), {m['skipped_invalid_pose']} frames without a valid pose"
    )

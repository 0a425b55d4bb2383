"""ScanNet v2 (1201 / 312 / 100 scans) from raw scans (.sens), exported frames or scannet_frames_25k.

Detected per scan folder ``scene%04d_%02d`` under ``--src`` (or ``--src/scans``, ``--src/scans_test``):

* raw scan: ``<scan>.sens``, labels from ``<scan>_2d-label-filt.zip`` (16-bit raw ids, colour resolution);
* exported frames (``scannet-export`` or ScanNet's SensReader): ``color/<i>.jpg``, ``depth/<i>.png`` (mm),
  ``pose/<i>.txt``, ``intrinsic/intrinsic_{color,depth}.txt``, ``label-filt/<i>.png`` (raw ids);
* scannet_frames_25k: ``color/%06d.jpg``, ``depth/%06d.png``, ``pose/%06d.txt``, ``label/%06d.png`` (NYU-40 ids),
  ``intrinsics_{color,depth}.txt``.

Raw ids go through scannetv2-labels.combined.tsv (raw id -> nyu40id); ids missing from it are stored as 0 and
counted. Frames whose pose is invalid (``-inf`` where tracking was lost) are skipped and counted. Colour (1296x968)
and depth (640x480) are reconciled by resizing colour+label to the depth size (``--resolution depth``, default) or
depth to the colour size (``--resolution color``); intrinsics follow with pixel centres at integers. Point clouds
(``_vh_clean_2.ply`` + ``_vh_clean_2.labels.ply``) become ``scenes/<scan>/points.npz`` for the 3D teacher.
"""

import argparse
import functools
import re
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from indoor_parsing.data.formats.sens import SensFile
from indoor_parsing.data.layout import Frame, pose_is_valid
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
from indoor_parsing.data.prepare.scannet_labels import (
    SPLIT_SIZES,
    export_points,
    mesh_files,
    nyu40_identity,
    official_scan_splits,
    read_label_map,
)
from indoor_parsing.io import DataFileError, atomic_path, save_image

SCAN_RE = re.compile(r"scene\d{4}_\d{2}")
COLOR_SIZE = (1296, 968)  # (W, H) of the colour stream of most scans: what 25k intrinsics_color.txt refers to


def _matrix(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DataFileError(f"{path}: file not found")
    try:
        m = np.loadtxt(path, dtype=np.float64)
    except ValueError as err:
        raise DataFileError(f"{path}: cannot read a 4x4 matrix ({err})") from err
    if m.shape != (4, 4):
        raise DataFileError(f"{path}: expected a 4x4 matrix, got shape {m.shape}")
    return m


def _image(path: Path, dtype=None) -> np.ndarray:
    if not path.is_file():
        raise DataFileError(f"{path}: file not found")
    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB") if dtype == "rgb" else im)
    except OSError as err:
        raise DataFileError(f"{path}: cannot decode image ({err})") from err
    return arr


@functools.lru_cache(maxsize=4)
def _sens(path: str) -> SensFile:
    return SensFile(path)  # indexed once per worker process


@functools.lru_cache(maxsize=2)
def _label_lut(tsv: str | None) -> np.ndarray:
    return read_label_map(tsv)


def _read_source(kind: str, scan_dir: Path, scan: str, i: int) -> dict:
    """One frame as arrays: rgb (H, W, 3), rgb_bytes (JPEG, for copying), depth_mm (h, w), pose (4, 4), label."""
    if kind == "sens":
        sens = _sens(str(scan_dir / f"{scan}.sens"))
        frame = sens.read(i)
        out = {"rgb": sens.color(frame), "depth_mm": sens.depth_mm(frame), "pose": frame.camera_to_world,
               "rgb_bytes": frame.color_bytes if sens.header.color_compression == "jpeg" else None}  # fmt: skip
        zip_path = scan_dir / f"{scan}_2d-label-filt.zip"
        out["label_raw"], out["label_file"] = None, f"{zip_path}:label-filt/{i}.png"
        if zip_path.is_file():
            try:
                with zipfile.ZipFile(zip_path) as zf, zf.open(f"label-filt/{i}.png") as member:
                    with Image.open(member) as im:
                        out["label_raw"] = np.asarray(im)
            except (KeyError, OSError, zipfile.BadZipFile) as err:
                raise DataFileError(f"{out['label_file']}: cannot read ({err})") from err
        return out
    name = f"{i:06d}" if kind == "25k" else str(i)
    label_dir = "label" if kind == "25k" else "label-filt"
    rgb_path = scan_dir / "color" / f"{name}.jpg"
    label_path = scan_dir / label_dir / f"{name}.png"
    return {
        "rgb": _image(rgb_path, "rgb"),
        "rgb_bytes": rgb_path.read_bytes(),
        "depth_mm": _image(scan_dir / "depth" / f"{name}.png"),
        "pose": _matrix(scan_dir / "pose" / f"{name}.txt"),
        "label_raw": _image(label_path) if label_path.is_file() else None,
        "label_file": str(label_path),
    }


def _prepare_frame(payload: tuple, dst: Path) -> Outcome:
    kind, scan_dir, scan, split, i, K_color, resolution, tsv = payload
    src = _read_source(kind, Path(scan_dir), scan, i)
    pose = np.asarray(src["pose"], np.float64)
    if not pose_is_valid(pose):
        return Outcome(skipped="invalid_pose")
    rgb, depth = src["rgb"], src["depth_mm"]
    if depth.dtype != np.uint16 or depth.ndim != 2:
        raise DataFileError(f"{scan_dir}: frame {i}: depth must be 16-bit single channel, got {depth.dtype}")
    unknown, label = Counter(), None
    if src["label_raw"] is not None:
        check_same_size({"rgb": rgb, "label": src["label_raw"]}, src["label_file"])
        lut = nyu40_identity() if kind == "25k" else _label_lut(tsv)
        label = map_labels(src["label_raw"], lut, unknown)
    (Hc, Wc), (Hd, Wd) = rgb.shape[:2], depth.shape
    K = np.asarray(K_color, np.float64)
    if resolution == "depth" and (Wc, Hc) != (Wd, Hd):
        rgb, K = resize_image(rgb, (Wd, Hd), nearest=False), scale_intrinsics(K, Wd / Wc, Hd / Hc)
        label = None if label is None else resize_image(label, (Wd, Hd), nearest=True)
    elif resolution == "color":
        depth = resize_image(depth, (Wc, Hc), nearest=True)
    H, W = rgb.shape[:2]
    base = f"scenes/{scan}"
    paths = {"rgb": f"{base}/color/{i:06d}.jpg", "depth": f"{base}/depth/{i:06d}.png",
             "label": None if label is None else f"{base}/label/{i:06d}.png"}  # fmt: skip
    if src["rgb_bytes"] is not None and (W, H) == (Wc, Hc):
        with atomic_path(dst / paths["rgb"]) as tmp:  # unresized: keep the original JPEG bytes
            tmp.write_bytes(src["rgb_bytes"])
    else:
        save_image(dst / paths["rgb"], rgb)
    save_image(dst / paths["depth"], depth)
    if label is not None:
        save_image(dst / paths["label"], label)
    frame = Frame(split=split, scene=scan[:9], sequence=scan, index=i, height=H, width=W,
                  intrinsics=tuple(K.ravel()), pose=tuple(pose.ravel()), **paths)  # fmt: skip
    return Outcome(frame=frame, unknown_ids=dict(unknown))


def _fit_color_K(K: np.ndarray, size: tuple[int, int], where: str, report: PrepareReport) -> np.ndarray:
    """25k intrinsics_color.txt may describe the 1296x968 stream while the stored colour is smaller: rescale then."""
    W, H = size
    if K[0, 2] < W and K[1, 2] < H:
        return K
    report.notes.append(f"{where}: principal point outside the {W}x{H} colour image; scaled from {COLOR_SIZE}")
    return scale_intrinsics(K, W / COLOR_SIZE[0], H / COLOR_SIZE[1])


def find_scans(src: Path) -> list[Path]:
    roots = [src] + [src / d for d in ("scans", "scans_test") if (src / d).is_dir()]
    return sorted((d for r in roots for d in r.iterdir() if d.is_dir() and SCAN_RE.fullmatch(d.name)),
                  key=lambda d: d.name)  # fmt: skip


def _scan_jobs(scan_dir: Path, split: str, frame_skip: int, resolution: str, tsv: str | None, report) -> list:
    scan = scan_dir.name
    if (scan_dir / f"{scan}.sens").is_file() and not (scan_dir / "color").is_dir():
        kind, sens = "sens", SensFile(scan_dir / f"{scan}.sens")
        K = sens.header.intrinsic_color[:3, :3].astype(np.float64)
        numbers = range(len(sens))
    elif (scan_dir / "color").is_dir():
        kind = "25k" if (scan_dir / "intrinsics_color.txt").is_file() else "exported"
        K_file = scan_dir / ("intrinsics_color.txt" if kind == "25k" else "intrinsic/intrinsic_color.txt")
        K = _matrix(K_file)[:3, :3]
        numbers = sorted(int(p.stem) for p in (scan_dir / "color").glob("*.jpg") if p.stem.isdigit())
        if kind == "25k" and numbers:
            with Image.open(scan_dir / "color" / f"{numbers[0]:06d}.jpg") as im:
                K = _fit_color_K(K, im.size, str(K_file), report)
    else:
        report.problems.append(f"{scan_dir}: no <scan>.sens, color/ folder or 25k layout found")
        return []
    return [(f"{scan}/{i:06d}", (kind, str(scan_dir), scan, split, i, K.tolist(), resolution, tsv))
            for i in numbers if i % frame_skip == 0]  # fmt: skip


def prepare(
    src: str | Path,
    dst: str | Path,
    workers: int = 1,
    overwrite: bool = False,
    frame_skip: int = 1,
    resolution: str = "depth",
    label_map: str | Path | None = None,
    points: bool = True,
) -> PrepareReport:
    """Convert ScanNet scans / exported frames / scannet_frames_25k under ``src`` into the prepared layout.

    Args:
        src: folder of scan folders (or holding ``scans/``, ``scans_test/``).
        dst: output folder.
        workers: worker processes.
        overwrite: redo frames that a previous run finished.
        frame_skip: keep frames whose number is a multiple of this (25k frames are already every 100th).
        resolution: "depth" (colour and labels resized to the depth size) or "color" (depth resized).
        label_map: scannetv2-labels.combined.tsv; default: the shipped copy.
        points: write per-scan point clouds when the _vh_clean_2 meshes are present.
    """
    if resolution not in ("depth", "color"):
        raise ValueError(f"resolution must be 'depth' or 'color', got {resolution!r}")
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise DataFileError(f"{src}: folder not found")
    read_label_map(label_map)  # fail early on a bad tsv
    tsv = None if label_map is None else str(label_map)
    report = PrepareReport(dataset="scannet", src=str(src), dst=str(dst))
    splits = official_scan_splits()
    jobs, point_jobs, scans = [], [], Counter()
    for scan_dir in find_scans(src):
        split = splits.get(scan_dir.name)
        if split is None:
            report.problems.append(f"{scan_dir}: {scan_dir.name} is in none of the official scan lists")
            continue
        scans[split] += 1
        jobs += _scan_jobs(scan_dir, split, max(1, frame_skip), resolution, tsv, report)
        if points and all(p.is_file() for p in mesh_files(scan_dir, scan_dir.name)):
            point_jobs.append((f"{scan_dir.name}/points", (str(scan_dir), scan_dir.name)))
    if not scans:
        raise DataFileError(f"{src}: no ScanNet scan folders (scene%04d_%02d) found")
    frames = frames_of(run_jobs(_prepare_frame, jobs, dst, report, workers, overwrite))
    outcomes = run_jobs(export_points, point_jobs, dst, report, workers, overwrite, desc="point clouds")
    for split, size in SPLIT_SIZES.items():
        report.check_count(f"{split} scans", scans[split], size)
    manifest = {
        "dataset": "scannet", "label_space": "nyu40", "resolution": resolution, "frame_skip": frame_skip,
        "scans": dict(scans), "points": {o.info["scan"]: o.info["points"] for o in outcomes if o.info},
        "splits": "official ScanNet v2 scan lists (Tasks/Benchmark/scannetv2_{train,val,test}.txt)",
    }  # fmt: skip
    return finish(dst, manifest, frames, report)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frame-skip", type=int, default=1, help="keep frames whose number is a multiple of N")
    parser.add_argument("--resolution", choices=("depth", "color"), default="depth",
                        help="resize colour+label to the depth size (default) or depth to the colour size")  # fmt: skip
    parser.add_argument("--label-map", default=None, help="scannetv2-labels.combined.tsv (default: shipped copy)")
    parser.add_argument("--no-points", action="store_true", help="do not export per-scan point clouds")


def prepare_from_args(args: argparse.Namespace) -> PrepareReport:
    return prepare(args.src, args.dst, args.workers, args.overwrite, args.frame_skip, args.resolution,
                   args.label_map, not args.no_points)  # fmt: skip

"""SUN RGB-D (10,335 frames, 5285 train / 5050 test) from the SUNRGBD folder tree and SUNRGBDtoolbox.

``--src`` holds ``SUNRGBD/<sensor>/<subset>/.../<frame>/`` (``image/*.jpg``, ``depth_bfx/*.png`` or ``depth/*.png``,
``intrinsics.txt``, ``scene.txt``, ``seg.mat``) and ``SUNRGBDtoolbox/`` (``traintestSUNRGBD/allsplit.mat``;
``Metadata/SUNRGBD2Dseg.mat`` + ``Metadata/SUNRGBDMeta.mat`` for the 37-class labels). Depth PNGs are bit-rotated:
``mm = (d >> 3) | (d << 13)`` in uint16 (toolbox read3dPoints.m); beyond 8 m is invalid (0). The 37 classes are
NYU-40 ids 1..37 (0 = unlabeled), stored as such. Without SUNRGBD2Dseg.mat, each frame's ``seg.mat`` (free-form
object names) is mapped by name onto the 37 classes; unmatched names become 0 and are counted in the report.
Intrinsics come from each frame's intrinsics.txt (row-major 3x3; 1-based like the toolbox, shifted to 0-based).
"""

import argparse
import functools
from collections import Counter
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
    matlab_to_opencv_K,
    run_jobs,
)
from indoor_parsing.data.taxonomy import NYU40
from indoor_parsing.io import DataFileError, atomic_path, load_rgb, save_depth, save_image

SPLIT_SIZES = {"train": 5285, "test": 5050}
PREFIX = "/n/fs/sun3d/data/"
# seg37list spellings that differ from the NYU-40 names of the same ids
_SEG37_SPELLINGS = {"floor_mat": 20, "fridge": 24, "refridgerator": 24, "tv": 25, "shower_curtain": 28,
                    "night_stand": 32}  # fmt: skip
NAME_TO_ID = {**{n: i + 1 for i, n in enumerate(NYU40[:37])}, **_SEG37_SPELLINGS}


def folder_key(path: str) -> str:
    """Toolbox path -> frame folder relative to --src: prefix and doubled / trailing slashes removed."""
    path = str(path).strip().replace("\\", "/")
    path = path[len(PREFIX) :] if path.startswith(PREFIX) else path.lstrip("/")
    return "/".join(part for part in path.split("/") if part)


def _loadmat(path: Path, **kw) -> dict:
    import scipy.io

    if not path.is_file():
        raise DataFileError(f"{path}: file not found")
    try:
        return scipy.io.loadmat(str(path), squeeze_me=True, struct_as_record=False, **kw)
    except (OSError, ValueError, NotImplementedError) as err:
        raise DataFileError(f"{path}: cannot read the .mat file ({err})") from err


def read_allsplit(path: Path) -> dict[str, str]:
    """allsplit.mat -> {frame folder key: "train" | "test"}."""
    mat = _loadmat(path)
    if "alltrain" not in mat or "alltest" not in mat:
        raise DataFileError(f"{path}: expected alltrain and alltest cell arrays")
    out = {folder_key(p): "test" for p in np.atleast_1d(mat["alltest"])}
    out.update({folder_key(p): "train" for p in np.atleast_1d(mat["alltrain"])})
    return out


def read_meta_folders(path: Path) -> list[str]:
    """SUNRGBDMeta.mat -> frame folder key of each entry, in the order SUNRGBD2Dseg.mat follows."""
    meta = np.atleast_1d(_loadmat(path, variable_names=["SUNRGBDMeta"]).get("SUNRGBDMeta", []))
    if not len(meta):
        raise DataFileError(f"{path}: no SUNRGBDMeta struct array")
    return [folder_key(m.rgbpath).rsplit("/", 2)[0] for m in meta]


def decode_depth(png: np.ndarray, max_depth: float | None = 8.0) -> np.ndarray:
    """Bit-rotated uint16 PNG -> float32 metres; values beyond ``max_depth`` (toolbox: 8 m) are invalid (0)."""
    png = np.asarray(png, np.uint16)
    mm = (png >> 3) | (png << 13)  # rotate right by 3 within uint16 (wrap-around intended)
    depth = mm.astype(np.float32) / 1000.0
    if max_depth is not None:
        depth[depth > max_depth] = 0.0
    return depth


def read_intrinsics(path: Path) -> np.ndarray:
    """intrinsics.txt (9 numbers, row-major) -> 0-based (3, 3) K."""
    if not path.is_file():
        raise DataFileError(f"{path}: file not found")
    values = path.read_text().split()
    try:
        return matlab_to_opencv_K(np.asarray([float(v) for v in values], np.float64).reshape(3, 3))
    except ValueError as err:
        raise DataFileError(f"{path}: expected 9 numbers (3x3 row-major), got {values[:12]}") from err


@functools.lru_cache(maxsize=2)
def _seg2d(path: str):
    import h5py

    try:
        f = h5py.File(path, "r")
        return f, f["SUNRGBD2Dseg"]["seglabel"]
    except (OSError, KeyError) as err:
        raise DataFileError(f"{path}: cannot read SUNRGBD2Dseg/seglabel ({err})") from err


def _label_from_seg2d(path: str, index: int, unknown: Counter) -> np.ndarray:
    f, seglabel = _seg2d(path)
    try:
        label37 = np.asarray(f[np.asarray(seglabel[index]).ravel()[0]]).T  # stored transposed
    except (OSError, KeyError, ValueError) as err:
        raise DataFileError(f"{path}: cannot read seglabel of entry {index} ({err})") from err
    return map_labels(label37, np.arange(38), unknown)


def _label_from_segmat(path: Path, unknown: Counter) -> np.ndarray:
    mat = _loadmat(path)
    if "seglabel" not in mat or "names" not in mat:
        raise DataFileError(f"{path}: expected seglabel and names")
    names = [str(n).strip().lower() for n in np.atleast_1d(mat["names"])]
    lut = np.asarray([0] + [NAME_TO_ID.get(n, NAME_TO_ID.get(n.replace(" ", "_"), -1)) for n in names], np.int64)
    seg = np.asarray(mat["seglabel"]).astype(np.int64)
    label = map_labels(seg, lut)
    for k in np.unique(seg[(seg > 0) & (seg < len(lut))]):
        if lut[k] < 0:
            unknown[f"name:{names[k - 1]}"] += int((seg == k).sum())
    return label


def _one(folder: Path, sub: str, pattern: str) -> Path:
    files = sorted((folder / sub).glob(pattern))
    if len(files) != 1:
        raise DataFileError(f"{folder / sub}: expected exactly one {pattern}, found {len(files)}")
    return files[0]


def _prepare_frame(payload: tuple, dst: Path) -> Outcome:
    root, key, split, index, seg2d, seg_index, raw_depth = payload
    folder = Path(root) / key
    if not folder.is_dir():
        raise DataFileError(f"{folder}: frame folder listed in allsplit.mat not found")
    rgb_path = _one(folder, "image", "*.jpg")
    depth_path = _one(folder, "depth" if raw_depth else "depth_bfx", "*.png")
    rgb = load_rgb(rgb_path)
    from PIL import Image

    with Image.open(depth_path) as im:
        depth = decode_depth(np.asarray(im))
    unknown = Counter()
    if seg2d is not None:
        label = _label_from_seg2d(seg2d, seg_index, unknown)
        label_file = f"{seg2d} entry {seg_index}"
    else:
        label = _label_from_segmat(folder / "seg.mat", unknown)
        label_file = str(folder / "seg.mat")
    check_same_size({"rgb": rgb, "depth": depth}, str(depth_path))
    check_same_size({"rgb": rgb, "label": label}, label_file)
    K = read_intrinsics(folder / "intrinsics.txt")
    rel = key.split("/", 1)[1] if key.startswith("SUNRGBD/") else key
    paths = {"rgb": f"rgb/{rel}.jpg", "depth": f"depth/{rel}.png", "label": f"label/{rel}.png"}
    with atomic_path(dst / paths["rgb"]) as tmp:
        tmp.write_bytes(rgb_path.read_bytes())  # the JPEG as shipped, not re-encoded
    save_depth(dst / paths["depth"], depth)
    save_image(dst / paths["label"], label)
    scene_txt = folder / "scene.txt"
    extra = {"sensor": rel.split("/")[0], "scene_type": scene_txt.read_text().strip() if scene_txt.is_file() else ""}
    H, W = label.shape
    frame = Frame(split=split, scene=rel, sequence=rel, index=index, height=H, width=W, intrinsics=tuple(K.ravel()),
                  extra=extra, **paths)  # fmt: skip
    return Outcome(frame=frame, unknown_ids=dict(unknown))


def find_toolbox(src: Path) -> Path:
    for cand in (src / "SUNRGBDtoolbox", src / "SUNRGBDtoolbox" / "SUNRGBDtoolbox", src):
        if (cand / "traintestSUNRGBD" / "allsplit.mat").is_file():
            return cand
    raise DataFileError(f"{src}: SUNRGBDtoolbox/traintestSUNRGBD/allsplit.mat not found (unzip SUNRGBDtoolbox.zip)")


def prepare(
    src: str | Path,
    dst: str | Path,
    workers: int = 1,
    overwrite: bool = False,
    toolbox: str | Path | None = None,
    raw_depth: bool = False,
) -> PrepareReport:
    """Convert SUN RGB-D into the prepared layout.

    Args:
        src: folder holding ``SUNRGBD/`` (and ``SUNRGBDtoolbox/`` unless ``toolbox`` is given).
        dst: output folder.
        workers: worker processes.
        overwrite: redo frames that a previous run finished.
        toolbox: the SUNRGBDtoolbox folder.
        raw_depth: use ``depth/`` instead of the refined ``depth_bfx/``.
    """
    src = Path(src)
    if not (src / "SUNRGBD").is_dir():
        raise DataFileError(f"{src}: no SUNRGBD/ folder (unzip SUNRGBD.zip here)")
    tb = Path(toolbox) if toolbox is not None else find_toolbox(src)
    splits = read_allsplit(tb / "traintestSUNRGBD" / "allsplit.mat")
    seg2d_path = tb / "Metadata" / "SUNRGBD2Dseg.mat"
    seg_index = {}
    if seg2d_path.is_file():
        seg_index = {k: i for i, k in enumerate(read_meta_folders(tb / "Metadata" / "SUNRGBDMeta.mat"))}
    report = PrepareReport(dataset="sunrgbd", src=str(src), dst=str(dst))
    if not seg_index:
        report.notes.append(f"{seg2d_path} not found: labels from per-frame seg.mat, object names mapped by name")
    jobs = []
    for n, (key, split) in enumerate(sorted(splits.items())):
        if seg_index and key not in seg_index:
            report.problems.append(f"{src / key}: frame of allsplit.mat missing from SUNRGBDMeta.mat")
            continue
        seg = (str(seg2d_path), seg_index[key]) if seg_index else (None, None)
        jobs.append((key, (str(src), key, split, seg_index.get(key, n), *seg, raw_depth)))
    frames = frames_of(run_jobs(_prepare_frame, jobs, dst, report, workers, overwrite))
    _seg2d.cache_clear()
    for split, size in SPLIT_SIZES.items():
        report.check_count(f"{split} frames", sum(f.split == split for f in frames), size)
    manifest = {
        "dataset": "sunrgbd", "label_space": "nyu40", "depth": "depth" if raw_depth else "depth_bfx",
        "labels": "SUNRGBD2Dseg.mat (37 classes = NYU-40 ids 1..37)" if seg_index else "per-frame seg.mat by name",
        "splits": "SUNRGBDtoolbox/traintestSUNRGBD/allsplit.mat (5285 / 5050)",
    }  # fmt: skip
    return finish(dst, manifest, frames, report)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--toolbox", default=None, help="SUNRGBDtoolbox folder (default: <src>/SUNRGBDtoolbox)")
    parser.add_argument("--raw-depth", action="store_true", help="use depth/ instead of the refined depth_bfx/")


def prepare_from_args(args: argparse.Namespace) -> PrepareReport:
    return prepare(args.src, args.dst, args.workers, args.overwrite, args.toolbox, args.raw_depth)

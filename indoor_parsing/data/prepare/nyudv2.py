"""NYU Depth V2 labeled subset (1449 frames, 795 train / 654 test) from nyu_depth_v2_labeled.mat.

The .mat is MATLAB v7.3 (HDF5): h5py shows every array with its axes reversed, images as (N, 3, W, H) and
depths/labels as (N, W, H). Labels are the 894-class ids (0 = unlabeled), stored after the toolbox's 894 -> 40
mapping (classMapping40.mat, shipped as tables/nyu894_to_40.txt) as NYU-40 ids; the 13-class set is applied at load
time (class set "nyu13"). The split is the toolbox splits.mat (shipped as tables/nyuv2_test_ndxs.txt).
"""

import argparse
import functools
from collections import Counter
from importlib import resources
from pathlib import Path

import numpy as np

from indoor_parsing.data import taxonomy
from indoor_parsing.data.layout import Frame
from indoor_parsing.data.prepare.common import (
    Outcome,
    PrepareReport,
    finish,
    frames_of,
    map_labels,
    matlab_to_opencv_K,
    run_jobs,
)
from indoor_parsing.io import DataFileError, save_depth, save_image

MAT_NAME = "nyu_depth_v2_labeled.mat"
NUM_FRAMES = 1449
SPLIT_SIZES = {"train": 795, "test": 654}
# Kinect v1 RGB camera of the toolbox (camera_params.m), in the toolbox's 1-based pixel coordinates.
K_MATLAB = ((518.857901, 0.0, 325.582449), (0.0, 519.469611, 253.736166), (0.0, 0.0, 1.0))
K_RGB = matlab_to_opencv_K(np.asarray(K_MATLAB))


def official_splits(num_frames: int = NUM_FRAMES, splits_mat: str | Path | None = None) -> list[str]:
    """Split name of each frame (0-based position), from ``splits_mat`` or the shipped copy of its test indices."""
    if splits_mat is not None:
        import scipy.io

        try:
            mat = scipy.io.loadmat(str(splits_mat))
            test = np.asarray(mat["testNdxs"]).ravel().astype(int)
            train = np.asarray(mat["trainNdxs"]).ravel().astype(int)
        except (OSError, ValueError, KeyError) as err:
            raise DataFileError(f"{splits_mat}: not a readable splits.mat with trainNdxs/testNdxs ({err!r})") from err
        if len(set(test) | set(train)) != len(test) + len(train):
            raise DataFileError(f"{splits_mat}: trainNdxs and testNdxs overlap")
    else:
        text = resources.files("indoor_parsing.data").joinpath("tables/nyuv2_test_ndxs.txt").read_text()
        test = [int(line) for line in text.splitlines() if line.strip() and not line.startswith("#")]
    test_set = set(int(v) for v in test)  # 1-based, as in splits.mat
    return ["test" if i + 1 in test_set else "train" for i in range(num_frames)]


def check_class_mapping(path: str | Path) -> None:
    """Verify a user's classMapping40.mat against the shipped 894 -> 40 table."""
    import scipy.io

    try:
        mapping = np.asarray(scipy.io.loadmat(str(path))["mapClass"]).ravel()
    except (OSError, ValueError, KeyError) as err:
        raise DataFileError(f"{path}: not a readable classMapping40.mat with mapClass ({err!r})") from err
    if not np.array_equal(mapping, taxonomy.nyu894_to_40()[1:]):
        raise DataFileError(f"{path}: mapClass differs from the toolbox's 894 -> 40 table shipped with indoor_parsing")


def open_mat(path: str | Path):
    """Open nyu_depth_v2_labeled.mat with h5py, with clear errors for a missing, v5 or truncated file."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: file not found (download nyu_depth_v2_labeled.mat, see docs/datasets.md)")
    with open(path, "rb") as f:
        head = f.read(128)
    if not h5py.is_hdf5(path):
        kind = "a MATLAB v5 .mat" if head.startswith(b"MATLAB 5.0") else "not HDF5"
        raise DataFileError(f"{path}: {kind}; expected the MATLAB v7.3 (HDF5) nyu_depth_v2_labeled.mat")
    try:
        mat = h5py.File(path, "r")
    except OSError as err:  # HDF5 checks the stored end-of-file address: a truncated download fails here
        raise DataFileError(f"{path}: cannot open as HDF5, the file is probably truncated ({err})") from err
    missing = [k for k in ("images", "depths", "labels") if k not in mat]
    if missing:
        mat.close()
        raise DataFileError(f"{path}: missing datasets {missing}; is this nyu_depth_v2_labeled.mat?")
    n, c = mat["images"].shape[:2]
    if c != 3 or mat["depths"].shape != (n, *mat["images"].shape[2:]) or mat["labels"].shape != mat["depths"].shape:
        shapes = {k: mat[k].shape for k in ("images", "depths", "labels")}
        mat.close()
        raise DataFileError(f"{path}: expected images (N,3,W,H), depths and labels (N,W,H), got {shapes}")
    return mat


def read_strings(mat, key: str) -> list[str] | None:
    """A (1, N) cell array of MATLAB char arrays (uint16 codes) -> N strings, or None when absent."""
    if key not in mat:
        return None
    refs = np.asarray(mat[key]).ravel()
    return ["".join(chr(c) for c in np.asarray(mat[ref]).ravel()) for ref in refs]


@functools.lru_cache(maxsize=2)
def _worker_mat(path: str):
    return open_mat(path)  # one open file per worker process, not per frame


def _prepare_frame(payload: tuple, dst: Path) -> Outcome:
    mat_path, i, split, scene, scene_type, raw_depth = payload
    mat = _worker_mat(mat_path)
    name = f"{i + 1:04d}"
    try:
        rgb = np.ascontiguousarray(np.asarray(mat["images"][i]).transpose(2, 1, 0))  # (3, W, H) -> (H, W, 3)
        depth = np.asarray(mat["rawDepths" if raw_depth else "depths"][i]).T.astype(np.float32)  # (H, W) metres
        label894 = np.asarray(mat["labels"][i]).T  # (H, W) 0..894
    except (OSError, KeyError) as err:
        raise DataFileError(f"{mat_path}: cannot read frame {i + 1} ({err})") from err
    if rgb.dtype != np.uint8:
        raise DataFileError(f"{mat_path}: images must be uint8, got {rgb.dtype}")
    unknown = Counter()
    label = map_labels(label894, taxonomy.nyu894_to_40().astype(np.int64), unknown)
    paths = {k: f"{k}/{name}.png" for k in ("rgb", "depth", "label")}
    save_image(dst / paths["rgb"], rgb)
    save_depth(dst / paths["depth"], depth)
    save_image(dst / paths["label"], label)
    H, W = label.shape
    frame = Frame(
        split=split, scene=scene, sequence=scene, index=i + 1, height=H, width=W,
        intrinsics=tuple(K_RGB.ravel()), pose=None, extra={"scene_type": scene_type} if scene_type else {}, **paths,
    )  # fmt: skip
    return Outcome(frame=frame, unknown_ids=dict(unknown))


def prepare(
    src: str | Path,
    dst: str | Path,
    workers: int = 1,
    overwrite: bool = False,
    raw_depth: bool = False,
    splits_mat: str | Path | None = None,
    class_mapping: str | Path | None = None,
) -> PrepareReport:
    """Convert nyu_depth_v2_labeled.mat (``src``: the file, or the folder holding it) into the prepared layout.

    Args:
        src: the .mat file or its folder (splits.mat / classMapping40.mat found there are used and checked).
        dst: output folder.
        workers: worker processes.
        overwrite: redo frames that a previous run finished.
        raw_depth: store ``rawDepths`` (0 = missing) instead of the in-painted ``depths``.
        splits_mat: the toolbox splits.mat; default: the shipped copy of its indices.
        class_mapping: the toolbox classMapping40.mat, only checked against the shipped table.
    """
    src = Path(src)
    mat_path = src if src.suffix == ".mat" else src / MAT_NAME
    folder = mat_path.parent
    splits_mat = splits_mat or ((folder / "splits.mat") if (folder / "splits.mat").is_file() else None)
    class_mapping = class_mapping or (folder / "classMapping40.mat")
    if Path(class_mapping).is_file():
        check_class_mapping(class_mapping)
    with open_mat(mat_path) as mat:  # read the small metadata here; pixels are read by the workers
        n = mat["images"].shape[0]
        scenes = read_strings(mat, "scenes") or [f"nyu{i + 1:04d}" for i in range(n)]
        scene_types = read_strings(mat, "sceneTypes") or [""] * n
        if raw_depth and "rawDepths" not in mat:
            raise DataFileError(f"{mat_path}: --raw-depth asked for, but the file has no rawDepths")
    splits = official_splits(max(n, NUM_FRAMES), splits_mat)
    report = PrepareReport(dataset="nyudv2", src=str(mat_path), dst=str(dst))
    jobs = [(f"{i + 1:04d}", (str(mat_path), i, splits[i], scenes[i], scene_types[i], raw_depth)) for i in range(n)]
    frames = frames_of(run_jobs(_prepare_frame, jobs, dst, report, workers, overwrite))
    _worker_mat.cache_clear()
    for split, size in SPLIT_SIZES.items():
        report.check_count(f"{split} frames", sum(f.split == split for f in frames), size)
    manifest = {
        "dataset": "nyudv2", "label_space": "nyu40", "source": MAT_NAME,
        "depth": "rawDepths" if raw_depth else "depths (in-painted)",
        "splits": {"train": "toolbox splits.mat trainNdxs (795)", "test": "testNdxs (654)"},
        "intrinsics": "toolbox camera_params.m RGB camera, cx and cy shifted by -1 to 0-based pixel centres",
    }  # fmt: skip
    return finish(dst, manifest, frames, report)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--raw-depth", action="store_true", help="store rawDepths instead of the in-painted depths")
    parser.add_argument("--splits-mat", default=None, help="toolbox splits.mat (default: shipped copy)")
    parser.add_argument("--class-mapping", default=None, help="toolbox classMapping40.mat (checked if given)")


def prepare_from_args(args: argparse.Namespace) -> PrepareReport:
    return prepare(args.src, args.dst, args.workers, args.overwrite, args.raw_depth, args.splits_mat,
                   args.class_mapping)  # fmt: skip

"""ScanNet v2 label map (raw id -> NYU-40), official scan splits, and per-scan point clouds for the 3D teacher.

Shipped copies (indoor_parsing/data/tables/): ``scannetv2-labels.combined.tsv`` and ``scannetv2_{train,val,test}.txt``
(1201 / 312 / 100 scans), byte-identical to ScanNet/ScanNet Tasks/Benchmark.
"""

from collections import Counter
from importlib import resources
from pathlib import Path

import numpy as np

from indoor_parsing.data.formats.ply import read_ply_vertices
from indoor_parsing.data.prepare.common import Outcome, map_labels
from indoor_parsing.io import DataFileError, save_npz

SPLIT_SIZES = {"train": 1201, "val": 312, "test": 100}


def read_label_map(path: str | Path | None = None) -> np.ndarray:
    """(max_id + 1,) int64 lookup table: ScanNet raw label id (tsv ``id``) -> ``nyu40id``; -1 = not in the tsv; 0 -> 0.

    The tsv has non-unique ids (three with conflicting nyu40id): the last row wins, as in ScanNet's
    BenchmarkScripts/util.py ``read_label_mapping``. ``\\r`` line endings of some copies are stripped.
    """
    if path is None:
        text = resources.files("indoor_parsing.data").joinpath("tables/scannetv2-labels.combined.tsv").read_text()
        where = "indoor_parsing/data/tables/scannetv2-labels.combined.tsv"
    else:
        where = str(path)
        if not Path(path).is_file():
            raise DataFileError(f"{path}: file not found")
        text = Path(path).read_text()
    rows = [line.rstrip("\r").split("\t") for line in text.splitlines() if line.strip("\r\n")]
    header = rows[0]
    if "id" not in header or "nyu40id" not in header:
        raise DataFileError(f"{where}: expected a header with 'id' and 'nyu40id' columns, got {header[:6]}")
    ci, cn = header.index("id"), header.index("nyu40id")
    pairs = []
    for k, row in enumerate(rows[1:], start=2):
        try:
            pairs.append((int(row[ci]), int(row[cn])))
        except (IndexError, ValueError) as err:
            raise DataFileError(f"{where}: line {k}: cannot read id / nyu40id ({err})") from err
    lut = np.full(max(i for i, _ in pairs) + 1, -1, np.int64)
    lut[0] = 0
    for raw_id, nyu40 in pairs:
        lut[raw_id] = nyu40 if 0 <= nyu40 <= 40 else -1
    return lut


def nyu40_identity() -> np.ndarray:
    """Lookup table for labels already in NYU-40 ids (scannet_frames_25k, labels.ply): 0..40 kept, others unknown."""
    return np.arange(41, dtype=np.int64)


def official_scan_splits() -> dict[str, str]:
    """Scan name (e.g. "scene0000_00") -> "train" / "val" / "test"."""
    out = {}
    for split in SPLIT_SIZES:
        text = resources.files("indoor_parsing.data").joinpath(f"tables/scannetv2_{split}.txt").read_text()
        out.update({line.strip(): split for line in text.splitlines() if line.strip() and not line.startswith("#")})
    return out


def mesh_files(scan_dir: Path, scan: str) -> tuple[Path, Path]:
    return scan_dir / f"{scan}_vh_clean_2.ply", scan_dir / f"{scan}_vh_clean_2.labels.ply"


def export_points(payload: tuple, dst: Path) -> Outcome:
    """``scenes/<scan>/points.npz``: xyz float32 (N, 3), rgb uint8 (N, 3) from _vh_clean_2.ply, label uint8 (N,)
    NYU-40 from the ``label`` property of _vh_clean_2.labels.ply (same vertices)."""
    scan_dir, scan = payload
    mesh_path, labels_path = mesh_files(Path(scan_dir), scan)
    mesh, labelled = read_ply_vertices(mesh_path), read_ply_vertices(labels_path)
    checks = ((mesh_path, mesh, ("x", "y", "z", "red", "green", "blue")), (labels_path, labelled, ("label",)))
    for path, v, fields in checks:
        missing = [k for k in fields if k not in v.dtype.names]
        if missing:
            raise DataFileError(f"{path}: vertex properties {missing} missing (has {v.dtype.names})")
    if len(mesh) != len(labelled):
        raise DataFileError(f"{labels_path}: {len(labelled)} vertices, {mesh_path} has {len(mesh)}")
    unknown = Counter()
    rel = f"scenes/{scan}/points.npz"
    save_npz(
        dst / rel,
        xyz=np.stack([mesh["x"], mesh["y"], mesh["z"]], 1).astype(np.float32),  # (N, 3)
        rgb=np.stack([mesh["red"], mesh["green"], mesh["blue"]], 1).astype(np.uint8),  # (N, 3)
        label=map_labels(labelled["label"], nyu40_identity(), unknown),  # (N,)
    )
    unknown_points = {f"points:{k}": n for k, n in unknown.items()}  # points, not pixels: keep them apart
    return Outcome(unknown_ids=unknown_points, files=[rel], info={"scan": scan, "points": rel})

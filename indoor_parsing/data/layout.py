"""The prepared layout: one on-disk format that every dataset is converted into (and SynthRooms is written in).

::

    root/
      manifest.json   {"dataset", "label_space", "layout_version", ...dataset-specific facts (splits, settings)}
      index.json      {"layout_version": 1, "frames": [Frame, ...]}
      <any relative paths the frames name>: rgb (.jpg/.png uint8), depth (.png uint16 mm or .npy float32 m),
                      label (.png uint8 ids of ``label_space``, 255 = ignore), points (.npz xyz/rgb/label per scene)

Intrinsics are those of the stored images; poses are camera-to-world (OpenCV camera axes: x right, y down, z forward).
A DataModule maps stored label ids to its training class set with a lookup table (data/taxonomy.py).
"""

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from indoor_parsing.io import DataFileError, read_json, write_json

LAYOUT_VERSION = 1
MANIFEST = "manifest.json"
INDEX = "index.json"


@dataclass(frozen=True)
class Frame:
    """One RGB(-D) frame of the prepared layout; paths are relative to the layout root."""

    split: str
    scene: str
    sequence: str
    index: int
    rgb: str
    height: int
    width: int
    intrinsics: tuple[float, ...]
    depth: str | None = None
    label: str | None = None
    pose: tuple[float, ...] | None = None
    extra: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.scene}/{self.sequence}/{self.index:06d}"

    @property
    def K(self) -> np.ndarray:
        return np.asarray(self.intrinsics, np.float64).reshape(3, 3)

    @property
    def T(self) -> np.ndarray | None:
        """(4, 4) camera-to-world, or None."""
        return None if self.pose is None else np.asarray(self.pose, np.float64).reshape(4, 4)


def pose_is_valid(pose: np.ndarray | None) -> bool:
    """False for missing, non-finite (ScanNet writes -inf) or non-rigid poses."""
    if pose is None:
        return False
    pose = np.asarray(pose, np.float64).reshape(4, 4)
    if not np.all(np.isfinite(pose)):
        return False
    R = pose[:3, :3]
    return bool(np.allclose(R @ R.T, np.eye(3), atol=1e-3) and np.allclose(pose[3], [0, 0, 0, 1], atol=1e-6))


def write_layout(root: str | Path, manifest: dict, frames: list[Frame]) -> None:
    """Write index then manifest, each atomically (the manifest last: its presence means the layout is complete)."""
    root = Path(root)
    records = []
    for f in frames:
        rec = asdict(f)
        rec["intrinsics"] = [float(v) for v in f.intrinsics]
        rec["pose"] = None if f.pose is None else [float(v) for v in f.pose]
        records.append(rec)
    write_json(root / INDEX, {"layout_version": LAYOUT_VERSION, "frames": records})
    write_json(root / MANIFEST, {**manifest, "layout_version": LAYOUT_VERSION, "num_frames": len(frames)})


def _frame_from_record(rec: dict, where: str) -> Frame:
    try:
        K = tuple(float(v) for v in rec["intrinsics"])
        pose = rec.get("pose")
        pose = None if pose is None else tuple(float(v) if v is not None else math.nan for v in pose)
        frame = Frame(
            split=str(rec["split"]),
            scene=str(rec["scene"]),
            sequence=str(rec.get("sequence", "")),
            index=int(rec["index"]),
            rgb=str(rec["rgb"]),
            height=int(rec["height"]),
            width=int(rec["width"]),
            intrinsics=K,
            depth=rec.get("depth"),
            label=rec.get("label"),
            pose=pose,
            extra=dict(rec.get("extra", {})),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise DataFileError(f"{where}: malformed frame record ({err!r}): {rec}") from err
    if len(frame.intrinsics) != 9 or (frame.pose is not None and len(frame.pose) != 16):
        raise DataFileError(f"{where}: intrinsics must have 9 numbers and pose 16, in {rec}")
    return frame


def read_layout(root: str | Path) -> tuple[dict, list[Frame]]:
    """Read manifest and frames; a clear error names the file when the layout is absent, partial or malformed."""
    root = Path(root)
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise DataFileError(
            f"{manifest_path}: no prepared layout here (missing manifest); run the dataset's `prepare` command first"
        )
    manifest = read_json(manifest_path)
    index_path = root / INDEX
    index = read_json(index_path)
    if not isinstance(index, dict) or index.get("layout_version") != LAYOUT_VERSION:
        raise DataFileError(f"{index_path}: expected layout_version {LAYOUT_VERSION}")
    frames = [_frame_from_record(rec, f"{index_path} frame {i}") for i, rec in enumerate(index["frames"])]
    if manifest.get("num_frames", len(frames)) != len(frames):
        raise DataFileError(f"{index_path}: {len(frames)} frames, manifest says {manifest['num_frames']}")
    return manifest, frames

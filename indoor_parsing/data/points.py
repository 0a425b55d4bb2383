"""Point clouds for the 3D teacher: loading, PointCloudDataset, collate, PointCloudDataModule.

The clouds are the prepared layout's ``manifest["points"]`` ({key: relpath of an .npz with ``xyz`` (N, 3) float,
``rgb`` (N, 3) uint8, ``label`` (N,) stored label ids}). A cloud is keyed by the frames' sequence where the layout
lists one per sequence (ScanNet: one per scan, each scan in its own world frame), else by their scene (SynthRooms,
S3DIS rooms). A cloud's split is the split of its frames, so the 2D and 3D sides of a layout share one split (and
``val_from_train``); clouds without frames take their split from ``manifest["point_splits"]``.
"""

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from indoor_parsing.data.base import IndoorDataModule
from indoor_parsing.data.layout import Frame
from indoor_parsing.data.sampler import EpochSampler
from indoor_parsing.data.taxonomy import ClassSet
from indoor_parsing.data.wrapper import DataModuleWrapper
from indoor_parsing.io import DataFileError
from indoor_parsing.models.teacher3d import point_inputs


def points_key(frame: Frame, points: dict) -> str | None:
    """The ``manifest["points"]`` key of a frame's cloud: its sequence if listed, else its scene (None: no cloud)."""
    for key in (frame.sequence, frame.scene):
        if key in points:
            return key
    return None


def load_points(path: Path) -> dict[str, np.ndarray]:
    """``xyz`` float32 (N, 3), ``rgb`` uint8 (N, 3), ``label`` uint8 (N,) stored ids of one scene file."""
    if not path.is_file():
        raise DataFileError(f"{path}: point cloud listed in the layout manifest is missing")
    try:
        with np.load(path) as data:
            cloud = {k: data[k] for k in ("xyz", "rgb", "label")}
    except (OSError, KeyError, ValueError) as err:
        raise DataFileError(f"{path}: expected an .npz with xyz, rgb and label ({err!r})") from err
    n = cloud["xyz"].shape[0]
    if cloud["xyz"].shape != (n, 3) or cloud["rgb"].shape != (n, 3) or cloud["label"].shape != (n,):
        raise DataFileError(f"{path}: xyz (N, 3), rgb (N, 3), label (N,) expected, got "
                            f"{[cloud[k].shape for k in cloud]}")  # fmt: skip
    return {"xyz": cloud["xyz"].astype(np.float32), "rgb": cloud["rgb"].astype(np.uint8),
            "label": cloud["label"].astype(np.uint8)}  # fmt: skip


class PointCloudDataset(Dataset):
    """Scenes of a layout as (augmented) labelled point clouds.

    Args:
        paths: per-scene point files.
        scenes: scene names (same order).
        class_set: maps stored label ids to training ids.
        augment: random rotation about the up (z) axis, scale in [0.9, 1.1] and mirror of x.
        max_points: random subset of at most this many points per scene (bounds memory); None keeps all.
    """

    def __init__(self, paths: list[Path], scenes: list[str], class_set: ClassSet, augment: bool = False,
                 max_points: int | None = None):  # fmt: skip
        self.paths, self.scenes, self.class_set = paths, scenes, class_set
        self.augment, self.max_points = augment, max_points

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, item) -> dict:
        i, seed = item if isinstance(item, tuple) else (item, 0)
        rng = np.random.default_rng(seed)
        cloud = load_points(self.paths[i])
        xyz, rgb, label = cloud["xyz"], cloud["rgb"], self.class_set.map(cloud["label"])
        if self.max_points is not None and len(xyz) > self.max_points:
            keep = np.sort(rng.choice(len(xyz), self.max_points, replace=False))
            xyz, rgb, label = xyz[keep], rgb[keep], label[keep]
        if self.augment:
            a = rng.uniform(0, 2 * np.pi)
            R = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
            R = R * rng.uniform(0.9, 1.1) @ np.diag([rng.choice([-1.0, 1.0]), 1.0, 1.0])
            xyz = (xyz @ R.T.astype(np.float32)).astype(np.float32)
        return {"xyz": torch.from_numpy(xyz), "feats": point_inputs(torch.from_numpy(rgb)),
                "label": torch.from_numpy(label.astype(np.int64)), "scene": self.scenes[i]}  # fmt: skip


def collate_points(samples: list[dict]) -> dict:
    """Concatenate scenes: ``coords`` (N, 4) [batch index, x, y, z], ``feats`` (N, 3), ``label`` (N,)."""
    coords = [torch.cat([torch.full((len(s["xyz"]), 1), float(b)), s["xyz"]], 1) for b, s in enumerate(samples)]
    return {"coords": torch.cat(coords), "feats": torch.cat([s["feats"] for s in samples]),
            "label": torch.cat([s["label"] for s in samples]), "scene": [s["scene"] for s in samples]}  # fmt: skip


class PointCloudDataModule(DataModuleWrapper):
    """The ``manifest["points"]`` scenes of a DataModule's layout, served as point clouds instead of frames.

    Args:
        data: the DataModule of the layout (any dataset's, SynthRooms, ...; :class:`DataModuleWrapper`): root,
            class set, splits, ``val_from_train``, batch size and workers are its own.
        max_points: training scenes are subsampled to at most this many points; None keeps all.
        augment_points: random z rotation, scale and mirror on training scenes.
    """

    def __init__(self, data: IndoorDataModule, max_points: int | None = None, augment_points: bool = True):
        super().__init__(data)
        self.max_points = max_points
        self.augment_points = augment_points

    def scenes(self, split: str) -> list[str]:
        """Point-cloud keys of a split (the splits of their frames)."""
        self.setup()
        points = self.manifest.get("points") or {}
        if not points:
            raise DataFileError(f"{self.root}: the layout manifest lists no point clouds ('points')")
        names = {s.strip() for s in split.split(",")}
        framed = {points_key(f, points) for f in self.all_frames}
        # Clouds without frames (S3DIS prepared from --points alone) take the split the manifest states for them.
        alone = {k for k, s in (self.manifest.get("point_splits") or {}).items() if s in names and k not in framed}
        return sorted(({points_key(f, points) for f in self.frames(split)} - {None}) | alone)

    def dataset(self, stage: str) -> PointCloudDataset:
        scenes = self.scenes(self.splits[stage])
        if not scenes:
            raise DataFileError(f"{self.root}: split {self.splits[stage]!r} ({stage}) has no scenes with points")
        paths = [self.root / self.manifest["points"][s] for s in scenes]
        train = stage == "fit"
        return PointCloudDataset(paths, scenes, self.classes, augment=train and self.augment_points,
                                 max_points=self.max_points if train else None)  # fmt: skip

    def make_loader(self, dataset: PointCloudDataset, shuffle: bool) -> DataLoader:
        seed = int(os.environ.get("PL_GLOBAL_SEED", 0))
        sampler = EpochSampler(len(dataset), shuffle, seed)  # this process's share under DDP
        return DataLoader(dataset, batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers,
                          collate_fn=collate_points, drop_last=shuffle and len(sampler) >= self.batch_size)  # fmt: skip

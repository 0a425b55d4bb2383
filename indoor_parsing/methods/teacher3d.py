"""Teacher3DModule: fits the 3D teacher of 3D-to-2D Distillation on labelled point clouds; point-cloud DataModules.

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
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch.utils.data import DataLoader, Dataset

from indoor_parsing.data.base import IndoorDataModule
from indoor_parsing.data.layout import Frame
from indoor_parsing.data.sampler import EpochSampler
from indoor_parsing.data.synthrooms.datamodule import SynthRoomsDataModule
from indoor_parsing.data.taxonomy import ClassSet
from indoor_parsing.io import DataFileError
from indoor_parsing.methods.base import SegmentationModule
from indoor_parsing.models.teacher3d import MINKUNET14, PAPER_PLANES, Teacher3D, point_inputs


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


class PointCloudMixin:
    """Serves ``manifest["points"]`` scenes of an :class:`IndoorDataModule`'s layout instead of frames."""

    def init_points(self, max_points: int | None, augment_points: bool) -> None:
        self.max_points = max_points
        self.augment_points = augment_points

    def scenes(self, split: str) -> list[str]:
        """Point-cloud keys of a split (the splits of their frames)."""
        self.setup()
        points = self.manifest.get("points") or {}
        if not points:
            raise DataFileError(f"{self.root}: the layout manifest lists no point clouds ('points')")
        names = {s.strip() for s in split.split(",")}
        framed = {points_key(f, points) for f in self._frames}
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

    def _loader(self, stage: str, shuffle: bool) -> DataLoader:
        dataset = self.dataset(stage)
        seed = int(os.environ.get("PL_GLOBAL_SEED", 0))
        sampler = EpochSampler(len(dataset), shuffle, seed)  # this process's share under DDP
        return DataLoader(dataset, batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers,
                          collate_fn=collate_points, drop_last=shuffle and len(sampler) >= self.batch_size)  # fmt: skip


class PointCloudDataModule(PointCloudMixin, IndoorDataModule):
    """Point clouds of any prepared layout (see :class:`IndoorDataModule` for root, class_set, splits, loaders).

    Args:
        max_points: training scenes are subsampled to at most this many points; None keeps all.
        augment_points: random z rotation, scale and mirror on training scenes.
    """

    def __init__(self, root: str, class_set: str, max_points: int | None = None, augment_points: bool = True,
                 **kwargs):  # fmt: skip
        super().__init__(root=root, class_set=class_set, **kwargs)
        self.init_points(max_points, augment_points)


class SynthRoomsPointCloudDataModule(PointCloudMixin, SynthRoomsDataModule):
    """SynthRooms point clouds (generated on first use); args as :class:`PointCloudDataModule`."""

    def __init__(self, max_points: int | None = None, augment_points: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.init_points(max_points, augment_points)


class Teacher3DModule(SegmentationModule):
    """Fits :class:`Teacher3D` with per-point cross-entropy; reports point mIoU (val/mIoU, test/mIoU).

    Args:
        num_classes: K (linked from the DataModule).
        class_names: K names (linked from the DataModule).
        voxel_size: voxel edge in metres (5 cm in the paper).
        planes: MinkUNet block channels; the last is the distilled feature width (96 in the paper).
        layers: BasicBlocks per block (MINKUNET14 / 18 / 34 of models/teacher3d.py).
        init_dim: stem channels.
        conv0_kernel: stem kernel size.
        ignore_index: label without loss or metric.
        optimizer, scheduler, scheduler_interval: as :class:`SegmentationModule`.
    """

    required_keys = ("coords", "feats", "label")

    def __init__(
        self,
        num_classes: int = 20,
        class_names: list[str] | None = None,
        voxel_size: float = 0.05,
        planes: tuple[int, ...] = PAPER_PLANES,
        layers: tuple[int, ...] = MINKUNET14,
        init_dim: int = 32,
        conv0_kernel: int = 5,
        ignore_index: int = 255,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        scheduler: LRSchedulerCallable | None = None,
        scheduler_interval: str = "epoch",
    ):
        super().__init__(num_classes=num_classes, class_names=class_names, arch="MinkUNet", encoder_name="none",
                         ignore_index=ignore_index, optimizer=optimizer, scheduler=scheduler,
                         scheduler_interval=scheduler_interval)  # fmt: skip
        for key in ("arch", "encoder_name", "encoder_weights", "encoder_lr_mult", "class_weighting"):
            self.hparams.pop(key, None)  # the base's 2D arguments mean nothing for the teacher
            self._hparams_initial.pop(key, None)

    def build_model(self) -> Teacher3D:
        hp = self.hparams
        return Teacher3D(hp.num_classes, hp.voxel_size, 3, tuple(hp.planes), tuple(hp.layers), hp.init_dim,
                         hp.conv0_kernel)  # fmt: skip

    def forward(self, coords: torch.Tensor, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 4) coords, (N, 3) feats -> per-point logits (N, K) and features (N, C)."""
        return self.model(coords, feats)

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        logits, _ = self(batch["coords"], batch["feats"])
        return {"ce": F.cross_entropy(logits, batch["label"], ignore_index=self.ignore_index)}

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        missing = [k for k in self.required_keys if k not in batch]
        if missing:
            raise ValueError(f"Teacher3DModule: batch lacks {missing}; use a point-cloud DataModule")
        loss = self.losses(batch)["ce"]
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["scene"]))
        return loss

    def _eval_step(self, batch: dict, stage: str) -> None:
        logits, _ = self(batch["coords"], batch["feats"])
        self.metrics[stage].update(logits.argmax(1), batch["label"])
        loss = F.cross_entropy(logits, batch["label"], ignore_index=self.ignore_index)
        if torch.isfinite(loss):
            self.log(f"{stage}/loss", loss, batch_size=len(batch["scene"]), sync_dist=True)

    def predict_step(self, batch: dict, batch_idx: int) -> dict:
        raise RuntimeError("the 3D teacher predicts points, not images; use `indoor-parsing extract-features`")

    def setup(self, stage: str) -> None:
        pass  # no image class weights for points

"""IndoorDataModule: splits, loaders, sequences / neighbours and class weights over a prepared layout."""

import hashlib
import os
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from indoor_parsing.data import taxonomy
from indoor_parsing.data.dataset import FrameDataset, collate
from indoor_parsing.data.layout import Frame, pose_is_valid, read_layout
from indoor_parsing.data.sampler import EpochSampler
from indoor_parsing.data.sequences import SequenceIndex
from indoor_parsing.data.taxonomy import ClassSet
from indoor_parsing.data.transforms import JointTransform
from indoor_parsing.io import DataFileError, load_label, read_json, write_json


class IndoorDataModule(L.LightningDataModule):
    """Any prepared layout (data/layout.py) as train/val/test/predict loaders of the batch contract.

    Args:
        root: prepared layout folder.
        class_set: training classes (data/taxonomy.py), applied to the stored label ids.
        batch_size: per-process batch size.
        num_workers: loader workers per process.
        image_size: (H, W) the network sees; None keeps the stored size (needs equal sizes within a batch).
        augment: random scale / crop / flip / colour jitter / gamma on the training split.
        scale_range: random scale range (relative to ``image_size``) when augmenting.
        color_jitter: brightness / contrast / saturation strength when augmenting.
        gamma_range: random gamma range when augmenting.
        train_split, val_split, test_split, predict_split: split names of the layout; comma-separate several.
        val_from_train: fraction of training scenes held out as the validation split (deterministic from
            ``split_seed``); 0 keeps the layout's own ``val_split``.
        split_seed: seed for ``val_from_train`` and ``depth_fraction``.
        depth_fraction: fraction of training frames that keep depth supervision (``depth_valid``): exactly
            ``round(depth_fraction * N)`` (half up) of the N training frames, a seeded subset (:func:`depth_subset`).
        with_pose: return camera-to-world poses (frames with invalid poses are dropped and counted).
        eval_full_resolution: validation / test batches also carry ``label_full`` at the stored resolution, and
            methods score predictions upsampled to it (the network still sees ``image_size``).
        num_neighbors: neighbour views per sample (multi-view methods); 0 = none.
        neighbor_window: neighbours are drawn from frames within this many sequence positions.
    """

    dataset_name = "layout"

    def __init__(
        self,
        root: str,
        class_set: str,
        batch_size: int = 8,
        num_workers: int = 0,
        image_size: tuple[int, int] | None = None,
        augment: bool = False,
        scale_range: tuple[float, float] = (1.0, 1.0),
        color_jitter: float = 0.0,
        gamma_range: tuple[float, float] | None = None,
        train_split: str = "train",
        val_split: str = "val",
        test_split: str = "test",
        predict_split: str = "test",
        val_from_train: float = 0.0,
        split_seed: int = 0,
        depth_fraction: float = 1.0,
        with_pose: bool = False,
        eval_full_resolution: bool = False,
        num_neighbors: int = 0,
        neighbor_window: int = 10,
    ):
        super().__init__()
        if not 0.0 <= depth_fraction <= 1.0 or not 0.0 <= val_from_train < 1.0:
            raise ValueError("depth_fraction must be in [0, 1] and val_from_train in [0, 1)")
        self.root = Path(root).expanduser()
        self.classes: ClassSet = taxonomy.class_set(class_set)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.image_size = tuple(image_size) if image_size is not None else None
        self.augment = augment
        self.scale_range = tuple(scale_range)
        self.color_jitter = color_jitter
        self.gamma_range = tuple(gamma_range) if gamma_range is not None else None
        self.splits = {"fit": train_split, "validate": val_split, "test": test_split, "predict": predict_split}
        self.val_from_train = val_from_train
        self.split_seed = split_seed
        self.depth_fraction = depth_fraction
        self.with_pose = with_pose or num_neighbors > 0
        self.eval_full_resolution = eval_full_resolution
        self.num_neighbors = num_neighbors
        self.neighbor_window = neighbor_window
        self.manifest: dict = {}
        self._frames: list[Frame] | None = None
        self.skipped_invalid_pose = 0

    # ---- classes ----------------------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return self.classes.num_classes

    @property
    def class_names(self) -> list[str]:
        return list(self.classes.names)

    # ---- frames and splits ------------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self._frames is not None:
            return
        self.manifest, frames = read_layout(self.root)
        space = self.manifest.get("label_space")
        if space != self.classes.space:
            raise DataFileError(
                f"{self.root}: layout stores label space {space!r}, class set {self.classes.name!r} reads "
                f"{self.classes.space!r}"
            )
        if self.with_pose:
            valid = [f for f in frames if pose_is_valid(f.T)]
            self.skipped_invalid_pose = len(frames) - len(valid)
            frames = valid
        self._frames = frames

    @property
    def all_frames(self) -> list[Frame]:
        """Every frame of the layout, whatever its split (without invalid poses when ``with_pose``)."""
        self.setup()
        return self._frames

    def frames(self, split: str) -> list[Frame]:
        """Frames of one split name (or several, comma-separated), after ``val_from_train``."""
        self.setup()
        names = [s.strip() for s in split.split(",")]
        held_out = self._held_out_scenes()
        out = []
        for f in self._frames:
            s = f.split
            if held_out and s == self.splits["fit"]:
                s = "val" if f.scene in held_out else s
            if s in names:
                out.append(f)
        return out

    def _held_out_scenes(self) -> set[str]:
        if self.val_from_train <= 0:
            return set()
        scenes = sorted({f.scene for f in self._frames if f.split == self.splits["fit"]})
        rng = np.random.default_rng(self.split_seed)
        n = max(1, round(self.val_from_train * len(scenes)))
        return set(rng.permutation(scenes)[:n].tolist())

    def _depth_keep(self, frames: list[Frame]) -> np.ndarray | None:
        return depth_subset(frames, self.depth_fraction, self.split_seed)

    def _transform(self, train: bool) -> JointTransform:
        if train and self.augment:
            return JointTransform(
                self.image_size, train=True, scale_range=self.scale_range, flip=True,
                color_jitter=self.color_jitter, gamma_range=self.gamma_range,
            )  # fmt: skip
        return JointTransform(self.image_size, train=False)

    def dataset(self, stage: str) -> FrameDataset:
        """The dataset of a stage: fit (training split), validate, test or predict."""
        frames = self.frames(self.splits[stage])
        if not frames:
            raise DataFileError(f"{self.root}: split {self.splits[stage]!r} ({stage}) has no frames")
        neighbors = None
        if self.num_neighbors > 0:
            neighbors = SequenceIndex(frames).sampler(self.num_neighbors, self.neighbor_window)
        return FrameDataset(
            self.root, frames, self.classes, self._transform(train=stage == "fit"),
            dataset_name=self.manifest.get("dataset", self.dataset_name),
            depth_keep=self._depth_keep(frames) if stage == "fit" else None,
            with_pose=self.with_pose, neighbors=neighbors,
            full_labels=self.eval_full_resolution and stage in ("validate", "test"),
        )  # fmt: skip

    def make_loader(self, dataset, shuffle: bool) -> DataLoader:
        """A loader with our sampler (order and augmentation fixed by seed and epoch) and collate function."""
        seed = int(os.environ.get("PL_GLOBAL_SEED", 0))
        sampler = EpochSampler(len(dataset), shuffle, seed)  # this process's share under DDP
        return DataLoader(
            dataset, batch_size=self.batch_size, sampler=sampler,
            num_workers=self.num_workers, collate_fn=collate, drop_last=shuffle and len(sampler) >= self.batch_size,
            persistent_workers=self.num_workers > 0, pin_memory=torch.cuda.is_available(),
        )  # fmt: skip

    def _loader(self, stage: str, shuffle: bool) -> DataLoader:
        return self.make_loader(self.dataset(stage), shuffle)

    def train_dataloader(self) -> DataLoader:
        return self._loader("fit", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("validate", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict", shuffle=False)

    # ---- class statistics -------------------------------------------------------------------------------
    def class_pixel_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Training-split (K,) pixel counts per class and (K,) pixels of the images containing each class.

        Computed once from the stored labels and cached in the layout folder (atomically).
        """
        frames = [f for f in self.frames(self.splits["fit"]) if f.label]
        key = hashlib.sha1("\n".join([self.classes.name, *(f.label for f in frames)]).encode()).hexdigest()[:12]
        cache = self.root / f"class_stats_{self.classes.name}_{key}.json"
        if cache.is_file():
            stats = read_json(cache)
            return np.asarray(stats["counts"], np.int64), np.asarray(stats["image_pixels"], np.int64)
        K = self.num_classes
        counts = np.zeros(K, np.int64)
        image_pixels = np.zeros(K, np.int64)
        for f in frames:
            label = self.classes.map(load_label(self.root / f.label))
            c = np.bincount(label.ravel(), minlength=256)[:K]
            counts += c
            image_pixels += (c > 0) * label.size
        write_json(cache, {"class_set": self.classes.name, "counts": counts.tolist(),
                           "image_pixels": image_pixels.tolist()})  # fmt: skip
        return counts, image_pixels


def depth_subset(frames: list[Frame], fraction: float, seed: int) -> np.ndarray | None:
    """The frames that keep depth supervision (partial depth, Jiao et al. Table 5): (N,) bool, or None for all.

    Exactly ``round(fraction * N)`` frames (half up): the first ones of a permutation of the sorted frame keys drawn
    from ``seed``, so the subset depends on neither the layout's nor the loader's order, and for one seed a smaller
    fraction's subset lies inside every larger one's (20 % ⊂ 40 % ⊂ ...).
    """
    if fraction >= 1.0:
        return None
    keys = [f.key for f in frames]
    count = int(np.floor(fraction * len(frames) + 0.5))
    order = np.asarray(sorted(range(len(frames)), key=keys.__getitem__), np.int64)  # positions in key order
    keep = np.zeros(len(frames), bool)
    keep[order[np.random.default_rng([seed, 12]).permutation(len(frames))[:count]]] = True
    return keep

"""The per-frame teacher-feature cache of 3D-to-2D Distillation and FeatureCacheDataModule, which reads it.

::

    cache/
      manifest.json        format, teacher checkpoint + sha256, layout root, class set, stride, channels,
                           per-channel global mean / std of the teacher's point features (DN1), coverage, bank
      frames/<scene>/<sequence>/<index>.npz   feat float16 (C, h, w), mask bool (h, w); h = H // stride
      bank.npz             features float16 (M, C), labels int64 (M,), class_names: teacher point features sampled
                           per category (unpaired distillation)

Augmentation: the cached grid belongs to the stored frame; the batch's image may be rescaled, cropped and flipped.
The transform is an affine pixel map ``A`` with ``K' = A K`` (data/transforms.py), so ``A = K' K^-1`` follows from
the frame's and the batch's intrinsics. Each cell of the output grid (stride ``s`` over the image as returned) takes
the cached cell under ``A^-1`` of its centre (nearest neighbour); cells that land outside the cached grid or on an
uncovered cell are masked out. The features therefore follow every augmentation exactly up to one cell.
"""

import math
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from indoor_parsing.data.base import IndoorDataModule
from indoor_parsing.data.dataset import FrameDataset
from indoor_parsing.data.wrapper import DataModuleWrapper
from indoor_parsing.io import DataFileError, read_json

CACHE_FORMAT = "distill3d-features"
CACHE_VERSION = 2  # 2: a cell holds the point visible at its sample pixel (1: nearest point in the cell)
MANIFEST = "manifest.json"
BANK = "bank.npz"


def frame_path(root: str | Path, key: str) -> Path:
    """Cache file of a frame key ``scene/sequence/index``."""
    return Path(root) / "frames" / f"{key}.npz"


class FeatureCache:
    """Read access to a feature cache written by ``indoor-parsing extract-features``.

    Args:
        root: the cache folder (holding ``manifest.json``).
    """

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()
        path = self.root / MANIFEST
        if not path.is_file():
            raise DataFileError(f"{path}: no feature cache here; run `indoor-parsing extract-features` first")
        self.manifest = read_json(path)
        if self.manifest.get("format") != CACHE_FORMAT:
            raise DataFileError(f"{path}: not a {CACHE_FORMAT} manifest")
        if self.manifest.get("version") != CACHE_VERSION:
            raise DataFileError(f"{path}: cache version {self.manifest.get('version')}, this code reads version "
                                f"{CACHE_VERSION} (cells sampled at their sample pixel); delete the folder and re-run "
                                "`indoor-parsing extract-features`")  # fmt: skip
        for key in ("stride", "channels", "mean", "std"):
            if key not in self.manifest:
                raise DataFileError(f"{path}: manifest lacks {key!r} (interrupted extraction? re-run it)")
        if len(self.manifest["mean"]) != self.channels or len(self.manifest["std"]) != self.channels:
            raise DataFileError(f"{path}: mean / std need {self.channels} entries")

    @property
    def stride(self) -> int:
        return int(self.manifest["stride"])

    @property
    def channels(self) -> int:
        return int(self.manifest["channels"])

    def stats(self) -> dict:
        """Global per-channel ``mean`` and ``std`` (C,) of the teacher features, plus ``channels`` and ``stride``."""
        return {
            "mean": torch.tensor(self.manifest["mean"], dtype=torch.float32),
            "std": torch.tensor(self.manifest["std"], dtype=torch.float32),
            "channels": self.channels,
            "stride": self.stride,
        }

    def load(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """Cached (C, h, w) float32 features and (h, w) bool coverage of one frame."""
        path = frame_path(self.root, key)
        if not path.is_file():
            raise DataFileError(f"{path}: frame {key} is not in the feature cache; extract features for its split")
        try:
            with np.load(path) as data:
                feat, mask = data["feat"].astype(np.float32), data["mask"].astype(bool)
        except (OSError, KeyError, ValueError) as err:
            raise DataFileError(f"{path}: unreadable cache entry ({err!r}); delete it and re-run extraction") from err
        if feat.ndim != 3 or feat.shape[0] != self.channels or feat.shape[1:] != mask.shape:
            raise DataFileError(f"{path}: expected feat ({self.channels}, h, w) and mask (h, w), got "
                                f"{feat.shape} and {mask.shape}")  # fmt: skip
        return feat, mask

    def bank(self) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        """Teacher point features sampled per category: (M, C) float32, (M,) int64 labels, class names."""
        name = self.manifest.get("bank")
        path = self.root / (name or BANK)
        if not name or not path.is_file():
            raise DataFileError(f"{path}: the cache has no feature bank; extract with --bank-per-class > 0")
        with np.load(path) as data:
            feats, labels, names = data["features"], data["labels"], [str(n) for n in data["class_names"]]
        return torch.from_numpy(feats.astype(np.float32)), torch.from_numpy(labels.astype(np.int64)), names


def resample_grid(feat: np.ndarray, mask: np.ndarray, K_src: np.ndarray, K_dst: np.ndarray, size: tuple[int, int],
                  stride: int) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Move a cached grid from the stored frame to the image as returned (module docstring).

    Args:
        feat: (C, h, w) grid of the stored frame, cell = ``stride`` pixels.
        mask: (h, w) coverage.
        K_src: (3, 3) intrinsics of the stored frame.
        K_dst: (3, 3) intrinsics of the returned image.
        size: (H', W') of the returned image.
        stride: cell size in pixels (same for both grids).

    Returns:
        (C, ceil(H'/stride), ceil(W'/stride)) features (0 where uncovered) and the bool mask.
    """
    h, w = math.ceil(size[0] / stride), math.ceil(size[1] / stride)
    A_inv = np.asarray(K_src, np.float64) @ np.linalg.inv(np.asarray(K_dst, np.float64))  # returned -> stored px
    jj, ii = np.meshgrid(np.arange(w), np.arange(h))
    centre = np.stack([jj * stride + (stride - 1) / 2, ii * stride + (stride - 1) / 2, np.ones_like(jj)], 0)
    u, v, _ = np.tensordot(A_inv, centre.astype(np.float64), axes=1)  # (h, w) each
    # Stored pixel p lies in cell floor((p + 0.5) / stride): a cell spans pixel centres j s .. j s + s - 1.
    cx, cy = np.floor((u + 0.5) / stride).astype(np.int64), np.floor((v + 0.5) / stride).astype(np.int64)
    inside = (cx >= 0) & (cx < mask.shape[1]) & (cy >= 0) & (cy < mask.shape[0])
    cx, cy = cx.clip(0, mask.shape[1] - 1), cy.clip(0, mask.shape[0] - 1)
    out_mask = inside & mask[cy, cx]
    out = feat[:, cy, cx] * out_mask[None]  # (C, h, w)
    return out.astype(np.float32), out_mask


class CachedFeatureDataset(Dataset):
    """A :class:`FrameDataset` whose samples also carry ``feat3d`` (C, h, w) and ``feat3d_mask`` (1, h, w)."""

    def __init__(self, base: FrameDataset, cache: FeatureCache):
        self.base = base
        self.cache = cache

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, item):
        sample = self.base[item]
        frame = self.base.frames[sample["meta"]["frame_id"]]
        feat, mask = self.cache.load(frame.key)
        K_dst = sample["intrinsics"].double().numpy()
        feat, mask = resample_grid(feat, mask, frame.K, K_dst, tuple(sample["image"].shape[-2:]), self.cache.stride)
        sample["feat3d"] = torch.from_numpy(feat)  # (C, h, w)
        sample["feat3d_mask"] = torch.from_numpy(mask)[None]  # (1, h, w)
        return sample


class FeatureCacheDataModule(DataModuleWrapper):
    """A DataModule with the teacher-feature cache: ``feat3d`` training batches (paired), DN statistics, the bank.

    Args:
        data: the DataModule of the 2D frames (any dataset's; :class:`DataModuleWrapper`).
        feature_cache: cache folder from ``indoor-parsing extract-features``; None = plain batches.
        paired: add ``feat3d`` / ``feat3d_mask`` to training batches (the cache holds ``data``'s frames); False only
            serves the cache's statistics and bank (unpaired distillation from another dataset).
    """

    def __init__(self, data: IndoorDataModule, feature_cache: str | None = None, paired: bool = True):
        super().__init__(data)
        self.feature_cache = feature_cache
        self.paired = paired
        self._cache: FeatureCache | None = None

    @property
    def cache(self) -> FeatureCache:
        if self._cache is None:
            if not self.feature_cache:
                raise DataFileError("feature_cache is not set; extract teacher features and pass the cache folder")
            self._cache = FeatureCache(self.feature_cache)
        return self._cache

    def dataset(self, stage: str):
        dataset = self.data.dataset(stage)
        if stage == "fit" and self.paired and self.feature_cache:
            return CachedFeatureDataset(dataset, self.cache)
        return dataset

    def feature_stats(self) -> dict | None:
        """DN1's target statistics from the cache manifest (None without a cache)."""
        return self.cache.stats() if self.feature_cache else None

    def feature_bank(self) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        return self.cache.bank()

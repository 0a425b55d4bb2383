"""FrameDataset: frames of a prepared layout -> samples of the batch contract; and the collate function."""

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from indoor_parsing.data.layout import Frame, pose_is_valid
from indoor_parsing.data.sample import normalize_image
from indoor_parsing.data.taxonomy import IGNORE, ClassSet
from indoor_parsing.data.transforms import JointTransform
from indoor_parsing.io import DataFileError, load_depth, load_label, load_rgb


class FrameDataset(Dataset):
    """Frames of one prepared layout, mapped to a class set and transformed jointly.

    Args:
        root: layout root (frame paths are relative to it).
        frames: the frames of this split.
        class_set: training classes; stored label ids are mapped through its table.
        transform: joint image/depth/label/intrinsics transform.
        dataset_name: written into ``meta``.
        depth_keep: optional (len(frames),) bool; frames marked False get ``depth_valid`` all False (partial depth
            supervision) while still returning their depth.
        with_pose: return ``pose``; frames without a valid pose are an error then (filter them first).
        neighbors: optional callable ``i -> list[int]`` of frame indices whose views are returned under
            ``neighbors`` (multi-view methods); every sample of a batch must return the same count. Each view has
            ``usable`` (bool), False for a slot that holds the frame itself (padding).
        full_labels: also return ``label_full``, the labels at the stored resolution (evaluation at full size
            while the network sees a resized image).
    """

    def __init__(
        self,
        root: str | Path,
        frames: list[Frame],
        class_set: ClassSet,
        transform: JointTransform,
        dataset_name: str = "",
        depth_keep: np.ndarray | None = None,
        with_pose: bool = False,
        neighbors=None,
        full_labels: bool = False,
    ):
        self.root = Path(root)
        self.frames = frames
        self.class_set = class_set
        self.transform = transform
        self.dataset_name = dataset_name
        self.depth_keep = depth_keep
        self.with_pose = with_pose
        self.neighbors = neighbors
        self.full_labels = full_labels

    def __len__(self) -> int:
        return len(self.frames)

    def _view(self, i: int, rng: np.random.Generator, with_label: bool, full_label: bool = False) -> dict:
        frame = self.frames[i]
        image = load_rgb(self.root / frame.rgb)
        depth = load_depth(self.root / frame.depth) if frame.depth else None
        if with_label and frame.label:
            label = self.class_set.map(load_label(self.root / frame.label))
        else:
            label = np.full(image.shape[:2], IGNORE, np.uint8)
        for name, arr in (("depth", depth), ("label", label)):
            if arr is not None and arr.shape[:2] != image.shape[:2]:
                raise DataFileError(
                    f"{self.root / (frame.depth if name == 'depth' else frame.label)}: {name} size {arr.shape[:2]} "
                    f"differs from the RGB size {image.shape[:2]} of {self.root / frame.rgb}"
                )
        out = self.transform(image, frame.K, depth=depth, label=label, rng=rng)
        out = {k: v.copy() if isinstance(v, np.ndarray) and not v.flags.writeable else v for k, v in out.items()}
        sample = {"label_full": torch.from_numpy(label.astype(np.int64))} if full_label else {}
        sample |= {
            "image": normalize_image(torch.from_numpy(out["image"]).permute(2, 0, 1)),  # (3, H, W)
            "label": torch.from_numpy(out["label"].astype(np.int64)),  # (H, W)
            "intrinsics": torch.from_numpy(out["K"].astype(np.float32)),  # (3, 3)
        }
        if out["depth"] is not None:
            depth_t = torch.from_numpy(np.ascontiguousarray(out["depth"], np.float32))[None]  # (1, H, W)
            keep = True if self.depth_keep is None else bool(self.depth_keep[i])
            sample["depth"] = depth_t
            sample["depth_valid"] = (depth_t > 0) & keep
        if self.with_pose:
            if not pose_is_valid(frame.T):
                raise DataFileError(f"{self.root}: frame {frame.key} has no valid pose; filter such frames first")
            sample["pose"] = torch.from_numpy(frame.T.astype(np.float32))
        return sample

    def __getitem__(self, item: int | tuple[int, int]) -> dict:
        # EpochSampler hands (index, seed); a plain index falls back to torch's (per-worker seeded) RNG.
        i, seed = item if isinstance(item, tuple) else (item, int(torch.randint(0, 2**31 - 1, ()).item()))
        rng = np.random.default_rng(seed)
        frame = self.frames[i]
        sample = self._view(i, rng, with_label=True, full_label=self.full_labels)
        sample["meta"] = {
            "dataset": self.dataset_name,
            "scene": frame.scene,
            "sequence": frame.sequence,
            "index": frame.index,
            "key": frame.key,
            "name": str(frame.extra.get("name", f"{frame.index:06d}")),  # output files are named after it
            "frame_id": i,
            "orig_size": (frame.height, frame.width),
        }
        if self.neighbors is not None:
            # A slot holding the frame itself is padding (fewer neighbours than slots): marked unusable.
            sample["neighbors"] = [
                self._view(j, rng, with_label=False) | {"usable": torch.tensor(j != i)} for j in self.neighbors(i)
            ]
        return sample


def _pad_stack(labels: list[torch.Tensor]) -> torch.Tensor:
    """(H_i, W_i) label maps of different sizes -> (B, max H, max W), padded with the ignore id."""
    H, W = max(x.shape[0] for x in labels), max(x.shape[1] for x in labels)
    out = torch.full((len(labels), H, W), IGNORE, dtype=labels[0].dtype)
    for b, x in enumerate(labels):
        out[b, : x.shape[0], : x.shape[1]] = x
    return out


def collate(samples: list[dict]) -> dict:
    """Stack tensors; ``meta`` becomes a dict of lists; ``neighbors`` a list (per slot) of collated dicts.

    ``label_full`` maps of different stored sizes are padded with the ignore id (``meta["orig_size"]`` has each size).
    """
    skip = ("meta", "neighbors", "label_full")
    batch = default_collate([{k: v for k, v in s.items() if k not in skip} for s in samples])
    if "label_full" in samples[0]:
        batch["label_full"] = _pad_stack([s["label_full"] for s in samples])
    batch["meta"] = {k: [s["meta"][k] for s in samples] for k in samples[0]["meta"]}
    if "neighbors" in samples[0]:
        counts = {len(s["neighbors"]) for s in samples}
        if len(counts) != 1:
            raise ValueError(f"samples of one batch carry different neighbour counts {sorted(counts)}")
        slots = counts.pop()
        batch["neighbors"] = [default_collate([s["neighbors"][k] for s in samples]) for k in range(slots)]
    return batch

"""Small builders shared by tests: a random prepared layout and a random batch."""

from pathlib import Path

import lightning as L
import numpy as np
import torch

from indoor_parsing.data.layout import Frame, write_layout
from indoor_parsing.data.taxonomy import SYNTHROOMS_IDS
from indoor_parsing.io import save_depth, save_image


def make_layout(root: Path, scenes=("a", "b", "c", "d"), frames=3, size=(24, 32), seed=0, splits=None) -> Path:
    """A tiny prepared layout with random RGB, depth (some holes), NYU-40 labels, intrinsics and poses."""
    rng = np.random.default_rng(seed)
    H, W = size
    splits = splits or {s: ("train" if i < len(scenes) - 2 else "val" if i == len(scenes) - 2 else "test")
                        for i, s in enumerate(scenes)}  # fmt: skip
    K = (30.0, 0.0, W / 2 - 0.5, 0.0, 30.0, H / 2 - 0.5, 0.0, 0.0, 1.0)
    records = []
    for scene in scenes:
        for i in range(frames):
            stem = f"{scene}/seq/{i:06d}"
            save_image(root / f"{stem}_rgb.png", rng.integers(0, 256, (H, W, 3), dtype=np.uint8))
            depth = rng.uniform(0.5, 4.0, (H, W)).astype(np.float32)
            depth[rng.random((H, W)) < 0.1] = 0
            save_depth(root / f"{stem}_depth.png", depth)
            save_image(root / f"{stem}_label.png", rng.choice([0, *SYNTHROOMS_IDS], (H, W)).astype(np.uint8))
            pose = np.eye(4)
            pose[:3, 3] = [0.1 * i, 0.0, 0.0]
            records.append(Frame(splits[scene], scene, "seq", i, f"{stem}_rgb.png", H, W, K, f"{stem}_depth.png",
                                 f"{stem}_label.png", tuple(pose.ravel())))  # fmt: skip
    write_layout(root, {"dataset": "toy", "label_space": "nyu40"}, records)
    return root


def make_batch(B=2, H=40, W=56, K=20, seed=0, depth=True) -> dict:
    g = torch.Generator().manual_seed(seed)
    batch = {
        "image": torch.randn(B, 3, H, W, generator=g),
        "label": torch.randint(0, K, (B, H, W), generator=g),
        "intrinsics": torch.tensor([[30.0, 0, W / 2], [0, 30.0, H / 2], [0, 0, 1]]).expand(B, 3, 3).clone(),
    }
    batch["label"][:, :2] = 255
    if depth:
        batch["depth"] = torch.rand(B, 1, H, W, generator=g) * 3 + 0.5
        batch["depth_valid"] = torch.ones(B, 1, H, W, dtype=torch.bool)
    return batch


class KillAfterEpoch(L.Callback):
    """A callback that crashes the run after training epoch ``epoch`` and its checkpoint (as the next one starts).

    Lightning runs checkpoint callbacks after all others, so a crash in ``on_train_epoch_end`` would come before
    that epoch's checkpoint and leave nothing to resume from.
    """

    def __init__(self, epoch: int = 0):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch + 1:
            raise RuntimeError("simulated kill")

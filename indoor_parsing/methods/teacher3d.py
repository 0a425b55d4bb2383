"""Teacher3DModule: fits the 3D teacher of 3D-to-2D Distillation on labelled point clouds (data/points.py)."""

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable

from indoor_parsing.methods.base import Method
from indoor_parsing.models.teacher3d import MINKUNET14, PAPER_PLANES, Teacher3D


class Teacher3DModule(Method):
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
        optimizer, scheduler, scheduler_interval: as :class:`~indoor_parsing.methods.base.Method`.

    Unlike the 2D methods it declares the base arguments it takes instead of forwarding ``**kwargs``: the base's
    encoder and class-weighting arguments mean nothing for points, so the CLI does not offer them.
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
        super().__init__(num_classes=num_classes, class_names=class_names, ignore_index=ignore_index,
                         optimizer=optimizer, scheduler=scheduler, scheduler_interval=scheduler_interval)  # fmt: skip
        for key in ("encoder_name", "encoder_weights", "encoder_lr_mult", "class_weighting"):
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

    def validate_training_batch(self, batch: dict) -> None:
        missing = [k for k in self.required_keys if k not in batch]
        if missing:
            raise ValueError(f"Teacher3DModule: batch lacks {missing}; use a point-cloud DataModule")

    def train_batch_size(self, batch: dict) -> int:
        return len(batch["scene"])

    def eval_step(self, batch: dict, stage: str) -> None:
        logits, _ = self(batch["coords"], batch["feats"])
        self.metrics[stage].update(logits.argmax(1), batch["label"])
        loss = F.cross_entropy(logits, batch["label"], ignore_index=self.ignore_index)
        if torch.isfinite(loss):
            self.log(f"{stage}/loss", loss, batch_size=len(batch["scene"]), sync_dist=True)

    def predict_step(self, batch: dict, batch_idx: int) -> dict:
        raise RuntimeError("the 3D teacher predicts points, not images; use `indoor-parsing extract-features`")

    def setup(self, stage: str) -> None:
        pass  # no image class weights for points

"""CascadeDepthModule: the first stage of the Cascade baseline of 3D-to-2D Distillation (Liu, Qi, Fu, CVPR 2021).

The paper's Cascade row feeds the depth predicted by a pretrained depth estimator into the segmentation network.
Here the estimator (models/pspnet.py ``DepthNet``) is trained first, on its own, on the same training frames (L1 on
the sensor depth); the second stage (``Distill3DModule(mode="cascade", depth_ckpt=...)``) loads it and keeps it
frozen. Validation and test report depth metrics (``val/depth_rmse``, ``val/depth_abs_rel``, ``val/depth_delta1``).
"""

from pathlib import Path

import torch
from torch import nn

from indoor_parsing.data.sample import validate_batch
from indoor_parsing.io import DataFileError
from indoor_parsing.losses import l1_depth
from indoor_parsing.methods.base import STAGES, Method
from indoor_parsing.metrics.depth import DepthMetrics
from indoor_parsing.models.pspnet import DepthNet

DEPTH_STAGE_CLASS = "indoor_parsing.methods.cascade_depth.CascadeDepthModule"  # its checkpoints' inference class


class CascadeDepthModule(Method):
    """Trains the Cascade row's monocular depth network (stage 1 of 2).

    Args:
        encoder_name: the depth network's encoder; stage 2 must use the same ``encoder_name``.
        scheduler_interval: as :class:`~indoor_parsing.methods.base.Method`, with this method's default.
        **kwargs: the other arguments of :class:`~indoor_parsing.methods.base.Method` (``num_classes`` and
            ``class_names`` are linked from the DataModule but unused, as are ``class_weighting`` and
            ``ignore_index``: no segmentation here).
    """

    required_keys = ("image", "depth")

    def __init__(self, encoder_name: str = "resnet50", scheduler_interval: str = "step", **kwargs):
        super().__init__(encoder_name=encoder_name, scheduler_interval=scheduler_interval, **kwargs)
        if self.hparams.class_weighting != "none":
            raise ValueError("CascadeDepthModule trains depth only: class_weighting must be 'none'")
        self.depth_metrics = nn.ModuleDict({s: DepthMetrics() for s in STAGES})

    def build_model(self) -> DepthNet:
        return DepthNet(self.hparams.encoder_name, self.hparams.encoder_weights)

    def encoder_parameters(self) -> list[nn.Parameter]:
        return list(self.model.encoder.parameters())

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """RGB (B, 3, H, W) -> depth (B, 1, H, W) in metres."""
        return self.model(image)

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        return {"depth": l1_depth(self(batch["image"]), batch["depth"], batch.get("depth_valid"))}

    def setup(self, stage: str) -> None:
        pass  # no class weights: no segmentation loss

    def eval_step(self, batch: dict, stage: str) -> None:
        if not self._validated:
            validate_batch(batch, self.required_keys)
        self.depth_metrics[stage].update(self(batch["image"]), batch["depth"])

    def on_eval_epoch_end(self, stage: str) -> None:
        result = self.depth_metrics[stage].compute()
        self.depth_metrics[stage].reset()
        self.log_dict({f"{stage}/depth_{k}": v.float() for k, v in result.items()}, prog_bar=True)

    def predict_step(self, batch: dict, batch_idx: int) -> dict:
        return {"depth": self(batch["image"]), "meta": batch["meta"]}


def load_depth_net(depth_net: DepthNet, path: str | Path, encoder_name: str) -> None:
    """Copy the depth network of a :class:`CascadeDepthModule` checkpoint into ``depth_net`` (the frozen stage 2)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataFileError(f"{path}: depth checkpoint not found; fit a distill3d_cascade_depth_* config first")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    hp = ckpt.get("hyper_parameters", {})
    if (ckpt.get("inference") or {}).get("class") != DEPTH_STAGE_CLASS or "state_dict" not in ckpt:
        raise DataFileError(f"{path}: not a CascadeDepthModule checkpoint")
    if hp.get("encoder_name") != encoder_name:
        raise DataFileError(f"{path}: depth network encoder {hp.get('encoder_name')!r}, the cascade's is "
                            f"{encoder_name!r}")  # fmt: skip
    state = {k[len("model.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    depth_net.load_state_dict(state)
    depth_net.requires_grad_(False)


def build_smoke_depth_checkpoint(config: dict, out_dir: str | Path) -> str | None:
    """For config smoke tests: an untrained depth stage's checkpoint for a cascade config (None for other configs)."""
    args = (config.get("model") or {}).get("init_args") or {}
    if args.get("mode") != "cascade" or not args.get("depth_ckpt"):
        return None
    module = CascadeDepthModule(encoder_name=args.get("encoder_name", "resnet50"), encoder_weights=None)
    path = Path(out_dir) / "depth_stage.ckpt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict(),
                "inference": {"class": DEPTH_STAGE_CLASS, "image_size": None}}, path)  # fmt: skip
    return str(path)

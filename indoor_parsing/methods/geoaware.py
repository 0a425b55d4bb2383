"""GeoAwareModule: Geometry-Aware Distillation (Jiao et al., CVPR 2019) with every Table 4 ablation as a switch.

RGB is the only test-time input, except for the "+HHA" row (``hha_input=True``), which feeds ground-truth depth as
HHA to the encoder at training and test time. Frames without depth supervision (Table 5) train the semantic losses
only: the model stops their gradient at the depth-aware embedding (``GeoAwareNet(depth_frames=...)``).
"""

import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import nn

from indoor_parsing.geometry.hha import hha
from indoor_parsing.losses import BerHu, FocalStyleCE
from indoor_parsing.methods.base import STAGES, Method
from indoor_parsing.metrics.depth import DepthMetrics
from indoor_parsing.models.geoaware import GeoAwareNet

SEG_LOSSES = ("ce", "focal")
CLIPPED_GROUPS = ("semantic", "spf")


class GeoAwareModule(Method):
    """Geometry-Aware Distillation: joint semantic + depth decoding, FeatProp, one GAP block, SPF refinement.

    Loss (Eq. 6-8): ``L = L_s + L_d + Σ_k L_sk``: L_s (``seg``) the focal-style CE on the prediction (the last SPF
    output); the side losses L_sk on the distilled (GAP) output's own head (``distilled``) and on SPF side outputs
    1-3 (``side1..3``); L_d (``depth``) the berHu depth loss over pixels with depth supervision (``depth_valid`` &
    depth > 0). Without SPF the distilled head is the prediction and carries L_s.

    Args:
        encoder_name, optimizer: as :class:`~indoor_parsing.methods.base.Method`, with this method's defaults.
        seg_loss: ``"ce"`` (the "sem only" row) or ``"focal"`` (Eq. 6, the "+L_s" row onwards).
        focal_gamma: exponent of Eq. 6 (2 in the paper).
        hha_input: the "+HHA" row: RGB + HHA(depth, K) as a 6-channel input, at test time too.
        depth_branch: the depth decoder (DepEm, Eq. 1-2) and L_d.
        featprop: FeatProp, depth-decoder features summed into the semantic decoder at every scale.
        scale_propagation: each decoder's scales propagated into its last layer.
        fusion: the distillation block on the semantic features: ``"gap"`` (Eq. 3-5), ``"vanconv"`` or ``"none"``.
        gap_placement: ``"end"`` (one block at the end of the semantic branch, Fig. 2) or ``"every_scale"``.
        gap_form: ``"linear"`` (exact, O(N)), ``"direct"`` (exact, O(N²)) or ``"softmax"`` affinity.
        gap_key_channels: C' of η(G), φ(G).
        gap_positive: non-negativity of η, φ: ``"softplus"`` or ``"relu"``.
        spf: four SPF blocks with supervised side outputs (Fig. 4).
        spf_channels: SPF width.
        decoder_channels: widths of the four up-projection stages.
        encoder_output_stride: 32 (the paper) or 16, the last encoder stage dilated (:class:`GeoAwareNet`).
        depth_weight: weight of L_d (1 in Eq. 8).
        side_weight: weight of each side loss L_sk, the distilled output's included (1 in Eq. 8).
        berhu_ratio: δ = ratio · max |d − D*| (0.2).
        grad_clip: max gradient norm of the semantic-branch and SPF parameter groups (each clipped on its own);
            None = no clipping.
        **kwargs: the other arguments of :class:`~indoor_parsing.methods.base.Method` (class weights only affect
            ``seg_loss="ce"``).
    """

    def __init__(
        self,
        encoder_name: str = "resnet50",
        optimizer: OptimizerCallable = torch.optim.Adam,
        seg_loss: str = "focal",
        focal_gamma: float = 2.0,
        hha_input: bool = False,
        depth_branch: bool = True,
        featprop: bool = True,
        scale_propagation: bool = True,
        fusion: str = "gap",
        gap_placement: str = "end",
        gap_form: str = "linear",
        gap_key_channels: int = 32,
        gap_positive: str = "softplus",
        spf: bool = True,
        spf_channels: int = 64,
        decoder_channels: tuple[int, ...] = (256, 128, 64, 64),
        encoder_output_stride: int = 32,
        depth_weight: float = 1.0,
        side_weight: float = 1.0,
        berhu_ratio: float = 0.2,
        grad_clip: float | None = None,
        **kwargs,
    ):
        if seg_loss not in SEG_LOSSES:
            raise ValueError(f"GeoAwareModule: seg_loss must be one of {SEG_LOSSES}, got {seg_loss!r}")
        if grad_clip is not None and grad_clip <= 0:
            raise ValueError(f"GeoAwareModule: grad_clip must be > 0 or None, got {grad_clip}")
        super().__init__(encoder_name=encoder_name, optimizer=optimizer, **kwargs)
        self.focal = FocalStyleCE(focal_gamma, self.ignore_index)
        self.berhu = BerHu(berhu_ratio)
        self.depth_metrics = nn.ModuleDict({s: DepthMetrics() for s in STAGES}) if depth_branch else None

    @property
    def required_keys(self) -> tuple[str, ...]:
        hp = self.hparams
        keys = ("image", "label") + (("depth",) if hp.depth_branch or hp.hha_input else ())
        return keys + (("intrinsics",) if hp.hha_input else ())

    def build_model(self) -> nn.Module:
        hp = self.hparams
        return GeoAwareNet(
            hp.num_classes, hp.encoder_name, hp.encoder_weights, in_channels=6 if hp.hha_input else 3,
            decoder_channels=tuple(hp.decoder_channels), depth_branch=hp.depth_branch, featprop=hp.featprop,
            scale_propagation=hp.scale_propagation, fusion=hp.fusion, gap_placement=hp.gap_placement,
            gap_form=hp.gap_form, gap_key_channels=hp.gap_key_channels, gap_positive=hp.gap_positive, spf=hp.spf,
            spf_channels=hp.spf_channels, encoder_output_stride=hp.encoder_output_stride,
        )  # fmt: skip

    def setup(self, stage: str) -> None:
        super().setup(stage)
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if stage == "fit" and self.hparams.depth_branch and getattr(dm, "depth_fraction", None) == 0.0:
            raise ValueError(
                "GeoAwareModule: depth_fraction 0 leaves the depth branch without supervision; the 0 % row of Table 5 "
                "is sem + L_s (depth_branch: false, featprop: false, fusion: none)"
            )

    # ---- inputs and outputs -----------------------------------------------------------------------------
    def network_input(
        self, image: torch.Tensor, depth: torch.Tensor | None, intrinsics: torch.Tensor | None
    ) -> torch.Tensor:
        """RGB, or RGB + HHA for the "+HHA" row; HHA is mapped from [0, 1] to roughly the RGB normalisation."""
        if not self.hparams.hha_input:
            return image
        if depth is None or intrinsics is None:
            raise ValueError("GeoAwareModule(hha_input=True) needs depth and intrinsics at test time too")
        with torch.no_grad():
            encoded = hha(depth, intrinsics)  # (B, 3, H, W) in [0, 1]
        return torch.cat([image, (encoded - 0.5) / 0.25], 1)  # (B, 6, H, W)

    def forward(
        self, image: torch.Tensor, depth: torch.Tensor | None = None, intrinsics: torch.Tensor | None = None
    ) -> torch.Tensor:
        """RGB (B, 3, H, W) -> logits (B, K, H, W); the "+HHA" row also needs depth (B, 1, H, W) and K (B, 3, 3)."""
        return self.model(self.network_input(image, depth, intrinsics))["logits"]

    def predict_depth(self, image: torch.Tensor) -> torch.Tensor | None:
        """Depth (B, 1, H, W) in metres from RGB alone, when the depth branch is on (not for the HHA row)."""
        if not self.hparams.depth_branch or self.hparams.hha_input:
            return None
        return self.model(image)["depth"]

    def run(self, batch: dict) -> dict:
        """All network outputs of a batch: ``logits`` and, as configured, ``distilled``, ``side``, ``depth``."""
        x = self.network_input(batch["image"], batch.get("depth"), batch.get("intrinsics"))
        return self.model(x, depth_frames=self.depth_frames(batch))

    def depth_frames(self, batch: dict) -> torch.Tensor | None:
        """(B,) bool: frames with any depth supervision (``depth_valid`` & depth > 0); None = treat all as such."""
        if self.model.depth is None or "depth" not in batch:
            return None
        valid = batch["depth"] > 0
        if batch.get("depth_valid") is not None:
            valid = valid & batch["depth_valid"]
        return valid.flatten(1).any(1)

    # ---- losses (Eq. 6-8) -------------------------------------------------------------------------------
    def segmentation_loss(self, logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        if self.hparams.seg_loss == "ce":
            return self.cross_entropy(logits, label)
        return self.focal(logits, label)  # Eq. 6

    def loss_terms(self, out: dict, batch: dict) -> dict[str, torch.Tensor]:
        """Eq. 8 from network outputs: ``seg`` (L_s), ``distilled``, ``side<k>`` (L_sk), ``depth`` (L_d), weighted."""
        terms = {"seg": self.segmentation_loss(out["logits"], batch["label"])}
        if "distilled" in out:
            terms["distilled"] = self.hparams.side_weight * self.segmentation_loss(out["distilled"], batch["label"])
        for k, side in enumerate(out.get("side", []), start=1):
            terms[f"side{k}"] = self.hparams.side_weight * self.segmentation_loss(side, batch["label"])
        if "depth" in out:
            # Frames without depth (partial supervision, Table 5) have depth_valid all False: no L_d, no gradient.
            mask = batch.get("depth_valid")
            terms["depth"] = self.hparams.depth_weight * self.berhu(out["depth"], batch["depth"], mask)  # Eq. 7
        return terms

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        return self.loss_terms(self.run(batch), batch)

    # ---- evaluation -------------------------------------------------------------------------------------
    def eval_outputs(self, batch: dict) -> dict[str, torch.Tensor]:
        # One forward for both tasks; the HHA row reads depth and intrinsics from the batch here too.
        out = self.run(batch)
        return {"logits": out["logits"], "depth": out.get("depth")}

    def eval_logits(self, batch: dict) -> torch.Tensor:
        return self.eval_outputs(batch)["logits"]

    def eval_step(self, batch: dict, stage: str) -> dict[str, torch.Tensor]:
        out = super().eval_step(batch, stage)
        if self.depth_metrics is not None and out["depth"] is not None and "depth" in batch:
            target = batch["depth"]
            self.depth_metrics[stage].update(out["depth"], target)
        return out

    def on_eval_epoch_end(self, stage: str) -> None:
        super().on_eval_epoch_end(stage)
        if self.depth_metrics is None or self.depth_metrics[stage].update_count == 0:
            return
        result = self.depth_metrics[stage].compute()
        self.depth_metrics[stage].reset()
        self.log_dict({f"{stage}/depth_{k}": v for k, v in result.items()})
        self.last_results[stage].update({f"depth_{k}": v.detach().cpu() for k, v in result.items()})

    # ---- optimisation -----------------------------------------------------------------------------------
    def encoder_parameters(self) -> list[nn.Parameter]:
        return list(self.model.encoder.parameters())

    def param_groups(self) -> list[dict]:
        """Groups ``encoder`` (``encoder_lr_mult``), ``semantic``, ``spf`` and ``depth``; the middle two get clipped."""
        m = self.model
        parts = {
            "encoder": [m.encoder],
            "semantic": m.semantic_modules(),
            "spf": [m.spf] if m.spf is not None else [],
            "depth": m.depth_modules(),
        }
        groups, seen = [], set()
        for name, modules in parts.items():
            params = [p for mod in modules for p in mod.parameters() if p.requires_grad]
            seen.update(id(p) for p in params)
            if params:
                mult = self.hparams.encoder_lr_mult if name == "encoder" else 1.0
                groups.append({"params": params, "lr_mult": mult, "name": name})
        missing = [n for n, p in self.named_parameters() if p.requires_grad and id(p) not in seen]
        if missing:
            raise RuntimeError(f"GeoAwareModule.param_groups: parameters in no group: {missing}")
        return groups

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.hparams.grad_clip is None:
            return
        for group in optimizer.param_groups:
            if group.get("name") in CLIPPED_GROUPS:
                torch.nn.utils.clip_grad_norm_(group["params"], self.hparams.grad_clip)

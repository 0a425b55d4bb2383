"""S4NetModule: geometry-consistent semi-supervised segmentation (S4-Net) and sequence auto-labelling.

Stekovic, Fraundorfer, Lepetit, "Casting Geometric Constraints in Semantic Segmentation as Semi-Supervised
Learning" (WACV 2020). ``L = L_S + λ L_G`` (Eq. 2): L_S is weighted cross-entropy on labelled source images; L_G
(Eq. 3) is cross-entropy of the prediction for a target frame e against the teacher's predictions for its neighbours
e', warped into e by Eq. 4 and merged. With depth prediction (Sec. 3.3) ``L_D = L_DS + λ_D L_DG`` is added.
"""

import copy

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import OptimizerCallable
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import nn

from indoor_parsing.data.sample import validate_batch
from indoor_parsing.losses import cross_entropy, l1_depth
from indoor_parsing.methods.base import STAGES, SegmentationModule
from indoor_parsing.methods.s4net_consistency import (
    CoverageMonitor,
    merge_labels,
    photometric_consistency,
    to_unit_rgb,
    warp_neighbors,
)
from indoor_parsing.metrics.segmentation import SegmentationMetrics
from indoor_parsing.models.s4net import S4Net

__all__ = ["S4NetModule", "merge_labels", "photometric_consistency", "warp_neighbors"]
TARGET_KEYS = ("image", "intrinsics", "pose")  # + "depth" when L_G warps with sensor depth


class S4NetModule(SegmentationModule):
    """S4-Net: supervised source loss + multi-view geometric consistency on an unlabelled target sequence.

    Trains on the batches of :class:`~indoor_parsing.data.multiview.S4NetDataModule` (``{"source", "target"}``);
    on a plain DataModule (or with ``consistency_weight=0``) it is the supervised source stage.

    Args:
        consistency_weight: λ of L_G (0.01 in the paper; 0 = source-only stage).
        teacher_refresh: the frozen teacher Θ' is copied from Θ every this many optimiser steps (100).
        boundary_width: pixels this close to a boundary of a neighbour's predicted segments get no L_G.
        occlusion_abs_tol, occlusion_rel_tol: depth disagreement above ``abs + rel * z`` marks an occluded pixel.
        aux_head: PSPNet's auxiliary segmentation branch; every segmentation term is repeated on it.
        aux_weight: weight of the auxiliary terms relative to the main ones (0.4 as in PSPNet).
        depth_prediction: depth decoder sharing the encoder, trained with L_D = L_DS + λ_D L_DG (Sec. 3.3).
        depth_consistency_weight: λ_D (0.1).
        warp_depth: "sensor" (target depth maps) or "predicted" (the depth decoder's output, detached, Sec. 3.3;
            needed on RGB-only target sequences). Predicted depths get a scale-tolerant occlusion test.
        photometric_alpha: SSIM weight in the photometric loss.
        max_depth: bound of the predicted depth (metres).
        init_checkpoint: checkpoint of the source stage whose network weights start the fit (None = from scratch).
        arch, encoder_name, class_weighting, optimizer: as :class:`~indoor_parsing.methods.base.SegmentationModule`,
            with this method's defaults.
        **kwargs: the other arguments of :class:`~indoor_parsing.methods.base.Method`.
    """

    required_keys = ("image", "label")

    def __init__(
        self,
        arch: str = "DeepLabV3Plus",
        encoder_name: str = "resnet50",
        class_weighting: str = "median_frequency",
        optimizer: OptimizerCallable = torch.optim.Adam,
        consistency_weight: float = 0.01,
        teacher_refresh: int = 100,
        boundary_width: int = 2,
        occlusion_abs_tol: float = 0.05,
        occlusion_rel_tol: float = 0.05,
        aux_head: bool = False,
        aux_weight: float = 0.4,
        depth_prediction: bool = False,
        depth_consistency_weight: float = 0.1,
        warp_depth: str = "sensor",
        photometric_alpha: float = 0.85,
        max_depth: float = 10.0,
        init_checkpoint: str | None = None,
        **kwargs,
    ):
        if warp_depth not in ("sensor", "predicted") or (warp_depth == "predicted" and not depth_prediction):
            raise ValueError(f"warp_depth must be 'sensor', or 'predicted' with depth_prediction, got {warp_depth!r}")
        if teacher_refresh < 1 or boundary_width < 0:
            raise ValueError("teacher_refresh must be >= 1 and boundary_width >= 0")
        super().__init__(
            arch=arch, encoder_name=encoder_name, class_weighting=class_weighting, optimizer=optimizer, **kwargs
        )
        uses_target = consistency_weight > 0 or (depth_prediction and depth_consistency_weight > 0)
        self.teacher = copy.deepcopy(self.model).requires_grad_(False).eval() if uses_target else None
        self.register_buffer("teacher_step", torch.tensor(-1, dtype=torch.long))  # step of the last refresh
        self.teacher_refresh_steps: list[int] = []
        self.seq_metrics = nn.ModuleDict()
        self.coverage = CoverageMonitor()
        self.last_coverage: dict[str, float] = {}
        self.eval_names: list[str] = []

    def build_model(self) -> nn.Module:
        hp = self.hparams
        return S4Net(hp.arch, hp.encoder_name, hp.encoder_weights, hp.num_classes, aux_head=hp.aux_head,
                     depth_head=hp.depth_prediction, max_depth=hp.max_depth)  # fmt: skip

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model(image)["logits"]

    def predict_depth(self, image: torch.Tensor) -> torch.Tensor | None:
        """Predicted depth (B, 1, H, W) in metres when the depth decoder is on, else None."""
        return self.model(image)["depth"] if self.hparams.depth_prediction else None

    def train(self, mode: bool = True):
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()  # frozen: no dropout, no BatchNorm statistics updates
        return self

    # ---- teacher ----------------------------------------------------------------------------------------
    def refresh_teacher_if_due(self, step: int) -> bool:
        """Copy Θ into the teacher Θ' at step 0 and every ``teacher_refresh`` steps after; True if it did."""
        if self.teacher is None:
            return False
        last = int(self.teacher_step)
        if last >= 0 and step - last < self.hparams.teacher_refresh:
            return False
        self.teacher.load_state_dict(self.model.state_dict())
        self.teacher_step.fill_(step)
        self.teacher_refresh_steps.append(step)
        return True

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        self.refresh_teacher_if_due(self.global_step)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if stage == "fit" and self.hparams.init_checkpoint:
            self.load_source_weights(self.hparams.init_checkpoint)
        elif stage == "fit" and self.teacher is not None:
            rank_zero_warn("S4-Net adaptation without init_checkpoint: the teacher starts as an untrained network "
                           "(the paper starts from the source stage)")  # fmt: skip
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        if stage == "fit" and self.teacher is not None and self.hparams.warp_depth == "sensor":
            if getattr(datamodule, "rgb_only", False):
                raise ValueError(self._rgb_only_message())
        self.eval_names = list(getattr(datamodule, "eval_names", []) or [])
        for s in STAGES:
            for name in self.eval_names:
                if f"{s}_{name}" not in self.seq_metrics:
                    self.seq_metrics[f"{s}_{name}"] = SegmentationMetrics(
                        self.num_classes, self.ignore_index, self.class_names
                    ).to(self.device)

    def load_source_weights(self, path: str) -> None:
        """Load the network (``model.*``) of a source-stage checkpoint; decoders it lacks (depth) stay as built."""
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        state = ckpt.get("state_dict", ckpt)
        weights = {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}
        own = self.model.state_dict()
        wrong = [k for k, v in weights.items() if k not in own or own[k].shape != v.shape]
        if not weights or wrong:
            raise ValueError(f"{path}: not a checkpoint of this S4Net network (unexpected or mis-shaped: {wrong[:5]})")
        missing = sorted(set(own) - set(weights))
        self.model.load_state_dict(weights, strict=False)
        rank_zero_info(f"S4-Net: loaded {len(weights)} network tensors from {path}")
        if missing:
            rank_zero_warn(f"{path}: {len(missing)} network tensors are not in the checkpoint and keep their "
                           f"initialisation (e.g. {missing[0]})")  # fmt: skip

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Let source-stage and adapted checkpoints load into either kind of module (the teacher is optional)."""
        super().on_load_checkpoint(checkpoint)
        state = checkpoint["state_dict"]
        if self.teacher is None:
            for key in [k for k in state if k.startswith("teacher.")]:
                del state[key]
        elif not any(k.startswith("teacher.") for k in state):
            state.update({f"teacher.{k[6:]}": v for k, v in list(state.items()) if k.startswith("model.")})

    # ---- losses -----------------------------------------------------------------------------------------
    def validate_training_batch(self, batch: dict) -> None:
        validate_batch(self.source_part(batch), self.required_keys, where="source.")
        target = batch.get("target") if "source" in batch else None
        if target is not None:
            if self.hparams.warp_depth == "sensor" and self.teacher is not None and "depth" not in target:
                raise ValueError(self._rgb_only_message())
            validate_batch(target, TARGET_KEYS, where="target.")

    def training_logs(self, terms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every term, even alone, and with L_G how much of the target it reached (0: the source trains alone)."""
        logs = {f"train/{k}": v.detach() for k, v in terms.items()}
        if "geo" in terms:
            logs.update({f"train/{k}": v for k, v in self.last_coverage.items()})
        return logs

    @staticmethod
    def _rgb_only_message() -> str:
        return ("S4-Net: the target sequence has no depth (RGB-only), but L_G warps with sensor depth; use the "
                "depth-predicting variant (depth_prediction: true, warp_depth: predicted)")  # fmt: skip

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        """L_S (+ aux) and L_DS on the source part; L_G (+ aux) and L_DG on the target part when present."""
        hp = self.hparams
        source, target = (batch["source"], batch.get("target")) if "source" in batch else (batch, None)
        out = self.model(source["image"])
        terms = {"seg": self.cross_entropy(out["logits"], source["label"])}  # L_S, median-frequency weighted
        if "aux" in out:
            terms["seg_aux"] = hp.aux_weight * self.cross_entropy(out["aux"], source["label"])
        if "depth" in out and "depth" in source:
            terms["depth"] = l1_depth(out["depth"], source["depth"], source.get("depth_valid"))  # L_DS
        if target is not None and self.teacher is not None and target.get("neighbors"):
            terms.update(self.target_losses(target))
        return terms

    def target_losses(self, target: dict) -> dict[str, torch.Tensor]:
        """λ L_G (Eq. 3) and, with depth prediction, λ_D L_DG on one target batch with its neighbours."""
        hp = self.hparams
        nbs = target["neighbors"]
        out = self.model(target["image"])
        with torch.no_grad():
            teacher = self.teacher(torch.cat([nb["image"] for nb in nbs]))  # all neighbours in one pass
        B = target["image"].shape[0]
        probs = teacher["logits"].softmax(1).split(B)
        predicted = hp.warp_depth == "predicted"
        photometric = "depth" in out and hp.depth_consistency_weight > 0
        nb_depths = teacher["depth"].split(B) if "depth" in teacher else [None] * len(nbs)
        views = []
        for nb, prob, nb_depth in zip(nbs, probs, nb_depths, strict=True):
            usable = nb.get("usable", torch.ones(B, dtype=torch.bool, device=prob.device))  # False: padding slot
            views.append({"prob": prob, "depth": nb_depth if predicted else nb["depth"], "intrinsics": nb["intrinsics"],
                          "pose": nb["pose"], "usable": usable})  # fmt: skip
            if photometric:
                views[-1]["rgb"] = to_unit_rgb(nb["image"])
        geo = (hp.boundary_width, hp.occlusion_abs_tol, hp.occlusion_rel_tol)
        K, T = target["intrinsics"], target["pose"]
        depth = out["depth"] if predicted else target["depth"]
        # Eq. 4 warp; the merged label carries no gradient, so warping with the live predicted depth here equals
        # warping with it detached (Sec. 3.3), and the same warp then serves L_DG.
        warped = warp_neighbors(depth, K, T, views, *geo, scale_invariant=predicted)
        with torch.no_grad():
            label = merge_labels(warped, self.ignore_index)
        self.last_coverage = self.coverage.update(label, warped, self.ignore_index)
        terms = {"geo": hp.consistency_weight * cross_entropy(out["logits"], label, ignore_index=self.ignore_index)}
        if "aux" in out:
            aux = cross_entropy(out["aux"], label, ignore_index=self.ignore_index)
            terms["geo_aux"] = hp.consistency_weight * hp.aux_weight * aux
        if photometric:
            if not predicted:  # L_DG always warps with the predicted depth, whatever L_G warps with
                for v, d in zip(views, nb_depths, strict=True):
                    v["depth"] = d
                warped = warp_neighbors(out["depth"], K, T, views, *geo, scale_invariant=True)
            seg = out["logits"].detach().argmax(1)
            photo = photometric_consistency(to_unit_rgb(target["image"]), seg, warped, hp.photometric_alpha)
            terms["photo"] = hp.depth_consistency_weight * photo
        return terms

    # ---- evaluation on several target sequences -----------------------------------------------------------
    def _seq_eval_step(self, batch: dict, stage: str, dataloader_idx: int) -> None:
        logits = self.eval_logits(batch)
        label = batch["label"]
        names = self.eval_names
        if dataloader_idx == 0:
            self.score(self.metrics[stage], logits, batch)
        if names:
            self.score(self.seq_metrics[f"{stage}_{names[dataloader_idx]}"], logits, batch)
        loss = F.cross_entropy(logits, label, ignore_index=self.ignore_index)
        if torch.isfinite(loss):
            name = f"{stage}/loss" if dataloader_idx == 0 else f"{stage}/{names[dataloader_idx]}/loss"
            self.log(name, loss, batch_size=label.shape[0], sync_dist=True, add_dataloader_idx=False)

    def validation_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._seq_eval_step(batch, "val", dataloader_idx)

    def test_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._seq_eval_step(batch, "test", dataloader_idx)

    def on_eval_epoch_end(self, stage: str) -> None:
        super().on_eval_epoch_end(stage)  # the first loader under the base names (val/mIoU: checkpoint monitor)
        for name in self.eval_names:
            self.log_segmentation(self.seq_metrics[f"{stage}_{name}"], f"{stage}/{name}")

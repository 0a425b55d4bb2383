"""Method: the step / metric / logging logic every method shares; SegmentationModule: the smp baseline."""

import abc
import random

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from indoor_parsing.data.sample import validate_batch
from indoor_parsing.losses import cross_entropy, median_frequency_weights
from indoor_parsing.metrics.segmentation import SUMMARY_KEYS, SegmentationMetrics
from indoor_parsing.models.baseline import SmpSegmenter
from indoor_parsing.training.distributed import broadcast_module
from indoor_parsing.training.schedulers import PolyLR, StepFractionLR

STAGES = ("val", "test")


class TrainImageSize(L.Callback):
    """Records the (H, W) of the training images on the method; its checkpoints keep it for inference."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        image = batch.get("image", (batch.get("source") or {}).get("image")) if isinstance(batch, dict) else None
        if image is not None:  # plain batches, or S4-Net's {"source", "target"}
            pl_module.train_image_size = tuple(int(s) for s in image.shape[-2:])


class Method(L.LightningModule, metaclass=abc.ABCMeta):
    """What every method shares: metrics, logging, class weights, the training step, optimiser / scheduler
    construction, prediction and exact resume.

    A method overrides ``build_model`` and ``losses`` (named loss terms of one batch), and where it needs them the
    declared hooks: ``validate_training_batch``, ``training_logs`` (extra ``train/*`` values),
    ``manual_optimization_step`` (methods that step their optimisers themselves), ``eval_step(batch, stage)`` /
    ``on_eval_epoch_end(stage)`` (``log_segmentation`` logs a confusion matrix). A subclass takes its own arguments
    and forwards ``**kwargs`` to these; it re-declares one of them only to change its default.

    Args:
        num_classes: K (linked from the DataModule by the CLI).
        class_names: K names (linked from the DataModule), for per-class logs and tables.
        encoder_name: smp encoder name.
        encoder_weights: ``imagenet`` for real datasets, None for tests and SynthRooms.
        class_weighting: "none" or "median_frequency" (computed from the training split).
        ignore_index: label id without loss or metric.
        optimizer: optimiser factory taking parameter groups (from the CLI / config).
        scheduler: LR scheduler factory taking the optimiser, or None.
        scheduler_interval: "epoch" or "step".
        encoder_lr_mult: learning-rate multiplier of the encoder's parameters (``lr_mult`` of its group).
    """

    required_keys: tuple[str, ...] = ("image", "label")

    def __init__(
        self,
        num_classes: int = 20,
        class_names: list[str] | None = None,
        encoder_name: str = "resnet18",
        encoder_weights: str | None = None,
        class_weighting: str = "none",
        ignore_index: int = 255,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        scheduler: LRSchedulerCallable | None = None,
        scheduler_interval: str = "epoch",
        encoder_lr_mult: float = 1.0,
    ):
        super().__init__()
        if class_weighting not in ("none", "median_frequency"):
            raise ValueError(f"class_weighting must be 'none' or 'median_frequency', got {class_weighting!r}")
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(f"scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}")
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.num_classes = num_classes
        self.class_names = list(class_names) if class_names else [f"class_{k}" for k in range(num_classes)]
        self.ignore_index = ignore_index
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.register_buffer("class_weights", torch.ones(num_classes), persistent=True)
        self.model = self.build_model()
        self.metrics = nn.ModuleDict(
            {s: SegmentationMetrics(num_classes, ignore_index, self.class_names) for s in STAGES}
        )
        self.last_results: dict[str, dict] = {}
        self._validated = False

    # ---- what a method overrides ----------------------------------------------------------------------
    @abc.abstractmethod
    def build_model(self) -> nn.Module:
        """The method's network (a plain nn.Module, the output contract of DESIGN.md); called once in __init__."""

    def encoder_parameters(self) -> list[nn.Parameter]:
        """Parameters that get ``encoder_lr_mult`` (a pretrained backbone)."""
        net = getattr(self.model, "net", None)
        encoder = getattr(net, "encoder", None) or getattr(self.model, "encoder", None)
        return list(encoder.parameters()) if encoder is not None else []

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """RGB (B, 3, H, W) -> logits (B, K, H, W): all a deployed model needs."""
        return self.model(image)["logits"]

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        """Named, already weighted loss terms of one training batch; their sum is optimised."""
        source = self.source_part(batch)  # the baseline trains on the labelled part of {"source", "target"} batches
        logits = self(source["image"])
        return {"ce": self.cross_entropy(logits, source["label"])}

    # ---- shared machinery -------------------------------------------------------------------------------
    def cross_entropy(self, logits: torch.Tensor, label: torch.Tensor, weighted: bool = True) -> torch.Tensor:
        weight = self.class_weights if weighted and self.hparams.class_weighting != "none" else None
        return cross_entropy(logits, label, weight=weight, ignore_index=self.ignore_index)

    def setup(self, stage: str) -> None:
        if stage == "fit" and self.hparams.class_weighting == "median_frequency":
            counts, image_pixels = self.trainer.datamodule.class_pixel_counts()
            weights = median_frequency_weights(torch.as_tensor(counts), torch.as_tensor(image_pixels))
            self.class_weights.copy_(weights.float())

    @staticmethod
    def source_part(batch: dict) -> dict:
        """The labelled part of a training batch: ``batch["source"]`` of ``{"source", "target"}`` batches, else all."""
        return batch["source"] if "source" in batch else batch

    def validate_training_batch(self, batch: dict) -> None:
        """Checked on the first training batch: the labelled part has ``required_keys``."""
        where = "source." if "source" in batch else ""
        validate_batch(self.source_part(batch), self.required_keys, where=where)

    def train_batch_size(self, batch: dict) -> int:
        return self.source_part(batch)["image"].shape[0]

    def training_logs(self, terms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``train/<term>`` values logged besides ``train/loss``: each term, when there are several."""
        return {f"train/{k}": v.detach() for k, v in terms.items()} if len(terms) > 1 else {}

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor | None:
        """Plain or ``{"source", "target"}`` batches: the sum of ``losses(batch)``, or, with automatic optimisation
        off, the method's ``manual_optimization_step(batch)``: it steps the optimisers, returns detached terms."""
        if not self._validated:
            if not self.automatic_optimization and not callable(getattr(self, "manual_optimization_step", None)):
                raise TypeError(f"{type(self).__name__}: automatic optimisation off, no manual_optimization_step")
            self.validate_training_batch(batch)
            self._validated = True
        if self.automatic_optimization:
            terms = self.losses(batch)
            loss = logged = sum(terms.values())
        else:
            terms = self.manual_optimization_step(batch)
            loss, logged = None, sum(t.detach() for t in terms.values())
        B = self.train_batch_size(batch)
        self.log("train/loss", logged, prog_bar=True, batch_size=B)
        logs = self.training_logs(terms)
        if logs:
            self.log_dict(logs, batch_size=B)
        return loss

    def eval_logits(self, batch: dict) -> torch.Tensor:
        """Logits (B, K, H, W): models predict at the input size, which is the label's (data/sample.py)."""
        return self(batch["image"])

    def eval_outputs(self, batch: dict) -> dict[str, torch.Tensor]:
        """What evaluation and prediction read: ``logits`` at the label's resolution, plus method extras."""
        return {"logits": self.eval_logits(batch)}

    def score(self, metric: SegmentationMetrics, logits: torch.Tensor, batch: dict) -> None:
        """Update a confusion matrix; against ``label_full`` at each frame's stored size when the batch has it."""
        if "label_full" not in batch:
            metric.update(logits.argmax(1), batch["label"])
            return
        for b, (h, w) in enumerate(batch["meta"]["orig_size"]):
            full = F.interpolate(logits[b : b + 1], size=(int(h), int(w)), mode="bilinear", align_corners=False)
            metric.update(full.argmax(1), batch["label_full"][b : b + 1, : int(h), : int(w)])

    def eval_step(self, batch: dict, stage: str) -> dict[str, torch.Tensor]:
        """One validation / test batch of ``stage``: score it and log ``<stage>/loss``; returns the eval outputs."""
        out = self.eval_outputs(batch)
        self.score(self.metrics[stage], out["logits"], batch)
        loss = F.cross_entropy(out["logits"], batch["label"], ignore_index=self.ignore_index)
        if torch.isfinite(loss):
            self.log(f"{stage}/loss", loss, batch_size=batch["image"].shape[0], sync_dist=True)
        return out

    def on_validation_start(self) -> None:
        # DDP keeps parameters equal but not statistics (BatchNorm without sync_batchnorm, DN targets): it broadcasts
        # rank 0's buffers before a forward only under automatic optimisation. Every process evaluates rank 0's
        # state, the one its checkpoint holds.
        broadcast_module(self, buffers_only=True)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.eval_step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self.eval_step(batch, "test")

    def on_eval_epoch_end(self, stage: str) -> None:
        """End of a validation / test epoch of ``stage`` (``val`` or ``test``): log and reset its metrics."""
        self.log_segmentation(self.metrics[stage], stage, prog_bar=True)

    def log_segmentation(self, metric: SegmentationMetrics, prefix: str, prog_bar: bool = False) -> dict:
        """Compute and reset ``metric``; log ``<prefix>/<summary>`` and ``<prefix>/iou/<class>``; keep the result in
        ``last_results[prefix]``."""
        result = metric.compute()
        metric.reset()
        self.last_results[prefix] = {k: v.detach().cpu() for k, v in result.items()}
        self.log_dict({f"{prefix}/{k}": result[k] for k in SUMMARY_KEYS}, prog_bar=prog_bar)
        for name, iou in zip(self.class_names, result["iou"], strict=True):
            if torch.isfinite(iou):
                self.log(f"{prefix}/iou/{name}", iou)
        return result

    def on_validation_epoch_end(self) -> None:
        self.on_eval_epoch_end("val")

    def on_test_epoch_end(self) -> None:
        self.on_eval_epoch_end("test")

    def predict_step(self, batch: dict, batch_idx: int) -> dict:
        """Per frame: label map (H0, W0) at the frame's original size, its confidence, and ``meta``."""
        logits = self.eval_outputs(batch)["logits"]
        labels, confidence = [], []
        for b, (h, w) in enumerate(batch["meta"]["orig_size"]):
            prob = F.interpolate(logits[b : b + 1], size=(int(h), int(w)), mode="bilinear").softmax(1)[0]
            conf, label = prob.max(0)  # (H0, W0)
            labels.append(label)
            confidence.append(conf)
        return {"label": labels, "confidence": confidence, "meta": batch["meta"]}

    # ---- optimisation -----------------------------------------------------------------------------------
    def param_groups(self) -> list[dict]:
        """Parameter groups; a group's ``lr_mult`` scales the optimiser's learning rate."""
        enc = {id(p) for p in self.encoder_parameters()}
        rest = [p for p in self.parameters() if id(p) not in enc and p.requires_grad]
        groups = [{"params": rest, "lr_mult": 1.0, "name": "head"}]
        if enc:
            groups.insert(0, {"params": [p for p in self.encoder_parameters() if p.requires_grad],
                              "lr_mult": self.hparams.encoder_lr_mult, "name": "encoder"})  # fmt: skip
        return groups

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.param_groups())
        for group in optimizer.param_groups:
            group["lr"] = group["lr"] * group.get("lr_mult", 1.0)
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        if isinstance(scheduler, PolyLR | StepFractionLR) and scheduler.total_steps is None:
            scheduler.total_steps = int(self.trainer.estimated_stepping_batches)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": self.hparams.scheduler_interval}}  # fmt: skip

    # ---- exact resume, and what inference needs ----------------------------------------------------------
    def configure_callbacks(self) -> list[L.Callback]:
        return [TrainImageSize()]

    # The global legacy numpy RNG is what third-party code draws from, so that is the state to save.
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # Read by indoor_parsing.inference.checkpoints: the class to rebuild and the size to resize inputs to.
        checkpoint["inference"] = {"class": f"{type(self).__module__}.{type(self).__qualname__}",
                                   "image_size": getattr(self, "train_image_size", None)}  # fmt: skip
        name, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
        checkpoint["rng_states"] = {  # tensors and plain types only: loadable with torch.load(weights_only=True)
            "torch": torch.get_rng_state(), "numpy": (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss,
                                                      cached),
            "python": random.getstate(),
            **({"cuda": torch.cuda.get_rng_state_all()} if torch.cuda.is_available() else {}),
        }  # fmt: skip

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        size = (checkpoint.get("inference") or {}).get("image_size")
        if size:
            self.train_image_size = tuple(size)
        states = checkpoint.get("rng_states")
        if states and self._trainer is not None and self._trainer.state.fn == "fit":
            torch.set_rng_state(states["torch"])
            name, keys, pos, has_gauss, cached = states["numpy"]
            np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))  # noqa: NPY002
            random.setstate(states["python"])
            if "cuda" in states and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(states["cuda"])


class SegmentationModule(Method):
    """The baseline: an smp network trained with cross-entropy.

    Args:
        arch: smp architecture (``Unet``, ``FPN``, ``PSPNet``, ``DeepLabV3Plus``, ...).
        arch_kwargs: further arguments of that architecture (e.g. ``decoder_channels``); None: smp's defaults.
        **kwargs: see :class:`Method`.
    """

    def __init__(self, arch: str = "Unet", arch_kwargs: dict | None = None, **kwargs):
        super().__init__(**kwargs)  # saves ``arch`` with the other hyper-parameters before build_model reads it

    def build_model(self) -> nn.Module:
        hp = self.hparams
        return SmpSegmenter(
            hp.arch, hp.encoder_name, hp.encoder_weights, hp.num_classes, arch_kwargs=hp.get("arch_kwargs")
        )

"""Pictures of predictions: overlays, depth maps, sample panels, confusion matrices, and the W&B callback using them.

The picture functions are plain numpy / matplotlib (Agg, no pyplot state), usable from notebooks without wandb;
:class:`WandbMedia` logs them at the end of each validation epoch when the trainer has a W&B logger.
"""

import math

import lightning as L
import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from indoor_parsing.data.sample import denormalize_image
from indoor_parsing.data.taxonomy import overlay
from indoor_parsing.metrics.segmentation import metrics_from_confusion

# ---- picture functions ------------------------------------------------------------------------------------


def to_rgb(image: torch.Tensor) -> np.ndarray:
    """One normalised image (3, H, W) of the batch contract -> (H, W, 3) uint8."""
    return denormalize_image(image.detach().float().cpu()).permute(1, 2, 0).numpy()


def depth_to_rgb(depth: np.ndarray, vmax: float | None = None, cmap: str = "turbo") -> np.ndarray:
    """Depth (H, W) metres -> (H, W, 3) uint8 colour map over [0, vmax]; missing depth (0 or non-finite) is black.

    ``vmax`` defaults to the 99th percentile of the valid depth, so that a few far pixels do not flatten the map.
    """
    depth = np.asarray(depth, np.float32)
    valid = np.isfinite(depth) & (depth > 0)
    if vmax is None:
        vmax = float(np.percentile(depth[valid], 99)) if valid.any() else 1.0
    scaled = np.clip(np.where(valid, depth, 0) / max(vmax, 1e-6), 0, 1)
    rgb = (colormaps[cmap](scaled)[..., :3] * 255).round().astype(np.uint8)  # (H, W, 3)
    rgb[~valid] = 0
    return rgb


def sample_panel(
    rgb: np.ndarray,
    label: np.ndarray,
    pred: np.ndarray,
    num_classes: int,
    depth: np.ndarray | None = None,
    pred_depth: np.ndarray | None = None,
    alpha: float = 0.5,
    gap: int = 2,
) -> np.ndarray:
    """Image | ground truth | prediction [| depth | predicted depth] side by side, ``gap`` white pixels apart.

    Both depth tiles share one colour scale (the ground truth's when there is one) so they can be compared.

    Shape:
        rgb (H, W, 3) uint8; label, pred (H, W) train ids; depth, pred_depth (H, W) metres -> (H, n W + (n-1) gap, 3).
    """
    tiles = [rgb, overlay(rgb, label, num_classes, alpha), overlay(rgb, pred, num_classes, alpha)]
    if pred_depth is not None:
        ref = depth if depth is not None and (depth > 0).any() else pred_depth
        valid = np.isfinite(ref) & (ref > 0)
        vmax = float(np.percentile(ref[valid], 99)) if valid.any() else 1.0
        tiles += [depth_to_rgb(depth, vmax)] if depth is not None else []
        tiles.append(depth_to_rgb(pred_depth, vmax))
    elif depth is not None:
        tiles.append(depth_to_rgb(depth))
    H = rgb.shape[0]
    spacer = np.full((H, gap, 3), 255, np.uint8)
    parts = [p for tile in tiles for p in (tile, spacer)][:-1]
    return np.concatenate(parts, 1)


def normalize_rows(conf: np.ndarray) -> np.ndarray:
    """(K, K) counts (rows = ground truth) -> row fractions; rows without pixels stay 0."""
    conf = np.asarray(conf, np.float64)
    total = conf.sum(1, keepdims=True)
    return np.divide(conf, total, out=np.zeros_like(conf), where=total > 0)


def figure_to_array(fig: Figure) -> np.ndarray:
    """Render a matplotlib figure with Agg -> (H, W, 3) uint8."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def confusion_image(conf: np.ndarray, class_names: list[str] | None = None, dpi: int = 100) -> np.ndarray:
    """Row-normalised confusion matrix (rows = ground truth) as a picture: (H, W, 3) uint8.

    Values are printed in the cells when there are at most 25 classes.
    """
    conf = np.asarray(conf)
    if conf.ndim != 2 or conf.shape[0] != conf.shape[1]:
        raise ValueError(f"confusion_image: expected a square (K, K) matrix, got {conf.shape}")
    K = conf.shape[0]
    names = list(class_names) if class_names is not None else [str(k) for k in range(K)]
    if len(names) != K:
        raise ValueError(f"confusion_image: {len(names)} class names for a {K}x{K} matrix")
    frac = normalize_rows(conf)
    side = max(4.0, 0.35 * K + 2.0)
    fig = Figure(figsize=(side, side), dpi=dpi, layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(K), names, rotation=90, fontsize=7)
    ax.set_yticks(range(K), names, fontsize=7)
    ax.set_xlabel("prediction")
    ax.set_ylabel("ground truth")
    if K <= 25:
        for i, j in zip(*np.nonzero(frac >= 0.005), strict=True):
            ax.text(j, i, f"{frac[i, j]:.2f}", ha="center", va="center", fontsize=5,
                    color="white" if frac[i, j] > 0.5 else "black")  # fmt: skip
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return figure_to_array(fig)


def iou_rows(conf: np.ndarray | torch.Tensor, class_names: list[str]) -> list[list]:
    """Rows ``[class, IoU, accuracy, ground-truth pixels]`` of a confusion matrix; None where undefined."""
    conf = torch.as_tensor(np.asarray(conf))
    result = metrics_from_confusion(conf)
    acc = torch.diagonal(conf).double() / conf.sum(1).double().clamp_min(1)
    rows = []
    for k, name in enumerate(class_names):
        iou, support = float(result["iou"][k]), int(conf[k].sum())
        rows.append([name, None if math.isnan(iou) else iou, float(acc[k]) if support else None, support])
    return rows


def predicted_depth(module: torch.nn.Module, image: torch.Tensor) -> torch.Tensor | None:
    """(B, 1, H, W) metres from a method that exposes ``predict_depth(image)`` (None for the others)."""
    fn = getattr(module, "predict_depth", None)
    return fn(image) if callable(fn) else None


# ---- the callback -----------------------------------------------------------------------------------------


def _slice(batch, n: int):
    """The first ``n`` samples of a (nested) batch."""
    if isinstance(batch, torch.Tensor):
        return batch[:n]
    if isinstance(batch, dict):
        return {k: _slice(v, n) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], dict):
        return [_slice(v, n) for v in batch]  # neighbour views
    return batch[:n] if isinstance(batch, (list, tuple)) else batch


def _wandb_logger(trainer: L.Trainer):
    from lightning.pytorch.loggers import WandbLogger

    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            return logger
    return None


class WandbMedia(L.Callback):
    """At each validation epoch end: sample panels, the per-class IoU table and the confusion matrix, to W&B.

    Does nothing when the trainer has no W&B logger (e.g. the CSV / TensorBoard loggers, or ``fast_dev_run``).
    The panels come from the first validation frames, so the same frames are shown every epoch. Methods that
    predict depth show it when they expose ``predict_depth(image) -> (B, 1, H, W)``.

    Args:
        num_samples: frames shown.
        every_n_epochs: log every this many validation epochs.
        alpha: opacity of the class colours over the image.
        confusion: log the row-normalised confusion-matrix picture.
        iou_table: log the per-class IoU table.
        depth: show ground-truth and predicted depth tiles.
        stage: metric collection of the module read for the table and matrix (``pl_module.metrics[stage]``).
    """

    def __init__(
        self,
        num_samples: int = 4,
        every_n_epochs: int = 1,
        alpha: float = 0.5,
        confusion: bool = True,
        iou_table: bool = True,
        depth: bool = True,
        stage: str = "val",
    ):
        if num_samples < 0 or every_n_epochs < 1:
            raise ValueError("WandbMedia: num_samples must be >= 0 and every_n_epochs >= 1")
        self.num_samples, self.every_n_epochs, self.alpha = num_samples, every_n_epochs, alpha
        self.confusion, self.iou_table, self.depth, self.stage = confusion, iou_table, depth, stage
        self.samples: list[dict] = []
        self.logged: list[str] = []  # keys of the last log call (for tests and debugging)

    def _active(self, trainer: L.Trainer) -> bool:
        return (
            _wandb_logger(trainer) is not None
            and not trainer.sanity_checking
            and trainer.current_epoch % self.every_n_epochs == 0
        )

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.samples = []

    @torch.no_grad()
    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0):
        need = self.num_samples - len(self.samples)
        if need <= 0 or dataloader_idx != 0 or not trainer.is_global_zero or not self._active(trainer):
            return
        sub = _slice(batch, need)
        pred = pl_module.eval_logits(sub).argmax(1).cpu().numpy()  # (n, H, W)
        pdepth = predicted_depth(pl_module, sub["image"]) if self.depth else None
        meta = sub.get("meta", {})
        for b in range(pred.shape[0]):
            caption = "/".join(str(meta[k][b]) for k in ("scene", "sequence", "index") if k in meta)
            item = {"rgb": to_rgb(sub["image"][b]), "label": sub["label"][b].cpu().numpy(), "pred": pred[b],
                    "caption": caption}  # fmt: skip
            if self.depth and "depth" in sub:
                item["depth"] = sub["depth"][b, 0].float().cpu().numpy()
            if pdepth is not None:
                item["pred_depth"] = pdepth[b, 0].float().cpu().numpy()
            self.samples.append(item)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Runs before the module's own hook, which computes and resets the metric: the matrix is still there.
        if not self._active(trainer):
            return
        conf = None
        metrics = getattr(pl_module, "metrics", None)
        if (self.confusion or self.iou_table) and metrics is not None and self.stage in metrics:
            metric = metrics[self.stage]
            with metric.sync_context():  # all processes take part; the sum over them is read
                conf = metric.confmat.detach().cpu().numpy().copy()
        if trainer.is_global_zero:
            self.log_media(_wandb_logger(trainer), pl_module, conf, trainer.global_step)
        self.samples = []

    def log_media(self, logger, pl_module: L.LightningModule, conf: np.ndarray | None, step: int) -> None:
        import wandb

        K = pl_module.num_classes
        names = list(getattr(pl_module, "class_names", [str(k) for k in range(K)]))
        payload: dict = {}
        if self.samples:
            payload[f"{self.stage}/samples"] = [
                wandb.Image(
                    sample_panel(s["rgb"], s["label"], s["pred"], K, s.get("depth"), s.get("pred_depth"), self.alpha),
                    caption=s["caption"] or None,
                )
                for s in self.samples
            ]
        if conf is not None and conf.sum() > 0:
            if self.iou_table:
                payload[f"{self.stage}/iou_table"] = wandb.Table(
                    columns=["class", "IoU", "accuracy", "pixels"], data=iou_rows(conf, names)
                )
            if self.confusion:
                payload[f"{self.stage}/confusion"] = wandb.Image(confusion_image(conf, names))
        if payload:
            logger.experiment.log({**payload, "trainer/global_step": step})
        self.logged = sorted(payload)

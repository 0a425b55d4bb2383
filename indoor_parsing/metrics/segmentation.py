"""Dataset-level segmentation metrics from one confusion matrix: pixel acc, mean acc, mIoU, fwIoU, per-class IoU.

All metrics are computed once from the confusion matrix summed over the whole evaluation set (and over DDP
processes), the protocol of the NYU-Dv2 / SUN RGB-D / ScanNet benchmarks; no per-image averaging.
"""

import math

import torch
from torch import Tensor
from torchmetrics import Metric

from indoor_parsing.data.taxonomy import IGNORE

SUMMARY_KEYS = ("pixel_acc", "mean_acc", "mIoU", "fwIoU")


def metrics_from_confusion(conf: Tensor) -> dict[str, Tensor]:
    """Metrics from a (K, K) confusion matrix ``n`` (rows = ground truth, columns = prediction).

    With ``t_i = Σ_j n_ij`` (ground-truth pixels of class i) and ``p_i = Σ_j n_ji`` (pixels predicted as i):

    - ``pixel_acc`` = Σ_i n_ii / Σ_i t_i
    - ``mean_acc`` = mean of n_ii / t_i over classes present in the ground truth (t_i > 0)
    - ``iou`` (K,) = n_ii / (t_i + p_i − n_ii); NaN for classes absent from both ground truth and prediction
    - ``mIoU`` = mean of ``iou`` leaving out the NaN classes; a class predicted but absent from the ground truth has
      IoU 0 and counts (its false positives are real errors)
    - ``fwIoU`` = (1 / Σ_i t_i) Σ_i t_i n_ii / (t_i + p_i − n_ii)

    An empty matrix gives NaN everywhere.

    Args:
        conf: (K, K) integer counts.

    Returns:
        ``pixel_acc``, ``mean_acc``, ``mIoU``, ``fwIoU`` as float32 scalar tensors and ``iou`` as a float32 (K,)
        tensor, on ``conf``'s device.
    """
    if conf.dim() != 2 or conf.shape[0] != conf.shape[1]:
        raise ValueError(f"confusion matrix: expected a square (K, K) tensor, got {tuple(conf.shape)}")
    # float64 keeps counts above 2^24 exact; MPS has no float64.
    n = conf.to(torch.float32 if conf.device.type == "mps" else torch.float64)
    tp = n.diagonal()  # (K,)
    gt = n.sum(1)  # (K,) t_i
    pred = n.sum(0)  # (K,) p_i
    union = gt + pred - tp
    nan = torch.full_like(tp, math.nan)
    iou = torch.where(union > 0, tp / union.clamp_min(1), nan)
    acc = torch.where(gt > 0, tp / gt.clamp_min(1), nan)
    total = gt.sum()
    # A class with t_i = 0 has weight 0 in fwIoU; zeroing it also drops its NaN IoU.
    fw = torch.where(gt > 0, gt * iou.nan_to_num(0.0), torch.zeros_like(gt)).sum() / total
    out = {
        "pixel_acc": tp.sum() / total,
        "mean_acc": acc.nanmean(),
        "mIoU": iou.nanmean(),
        "fwIoU": fw,
        "iou": iou,
    }
    return {k: v.float() for k, v in out.items()}


class SegmentationMetrics(Metric):
    """Pixel accuracy, mean accuracy, mIoU, frequency-weighted IoU and per-class IoU over a whole dataset.

    The only state is one (K, K) int64 confusion matrix (rows = ground truth, columns = prediction), sum-reduced
    across DDP processes by torchmetrics when ``compute()`` is called. ``compute()`` returns the dict of
    :func:`metrics_from_confusion`; classes absent from both ground truth and prediction get IoU NaN and are left
    out of the means, ``mean_acc`` averages over classes present in the ground truth.

    Args:
        num_classes: K.
        ignore_index: target value whose pixels are not counted.
        class_names: K names, kept for reports (:func:`format_table`).
        validate_args: check that ids lie in [0, K); costs one device sync per update.
        **kwargs: passed to :class:`torchmetrics.Metric` (e.g. ``sync_on_compute``).

    Shape:
        preds: (B, H, W) integer class ids, or (B, K, H, W) scores/logits (argmax over K).
        target: (B, H, W) integer ids, ``ignore_index`` where unlabelled.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(
        self,
        num_classes: int,
        ignore_index: int = IGNORE,
        class_names: list[str] | None = None,
        validate_args: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if num_classes < 1:
            raise ValueError(f"SegmentationMetrics: num_classes must be >= 1, got {num_classes}")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"SegmentationMetrics: {len(class_names)} class_names for num_classes={num_classes}")
        if 0 <= ignore_index < num_classes:
            raise ValueError(f"SegmentationMetrics: ignore_index={ignore_index} is a valid class id (K={num_classes})")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.class_names = list(class_names) if class_names is not None else None
        self.validate_args = validate_args
        zeros = torch.zeros(num_classes, num_classes, dtype=torch.int64)
        self.add_state("confmat", default=zeros, dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add one batch to the confusion matrix (see the class docstring for shapes)."""
        K = self.num_classes
        if target.is_floating_point() or target.is_complex():
            raise ValueError(f"SegmentationMetrics: target must hold integer class ids, got {target.dtype}")
        if preds.dim() == target.dim() + 1:
            if preds.shape[1] != K:
                raise ValueError(
                    f"SegmentationMetrics: logits have {preds.shape[1]} channels, expected num_classes={K} "
                    f"(preds {tuple(preds.shape)})"
                )
            preds = preds.argmax(1)  # (B, H, W)
        elif preds.is_floating_point():
            raise ValueError(
                f"SegmentationMetrics: preds of shape {tuple(preds.shape)} must be integer ids, or (B, K, H, W) "
                f"logits, got {preds.dtype}"
            )
        if preds.shape != target.shape:
            raise ValueError(
                f"SegmentationMetrics: preds {tuple(preds.shape)} and target {tuple(target.shape)} differ in size"
            )
        valid = target != self.ignore_index
        t = target[valid].long()  # (N,)
        p = preds[valid].long()  # (N,)
        if self.validate_args and t.numel():
            # Out-of-range ids would silently land in another cell of the flattened matrix.
            if t.min() < 0 or t.max() >= K:
                raise ValueError(
                    f"SegmentationMetrics: target ids must be in [0, {K}) or {self.ignore_index}, "
                    f"found range [{int(t.min())}, {int(t.max())}]"
                )
            if p.min() < 0 or p.max() >= K:
                raise ValueError(
                    f"SegmentationMetrics: predicted ids must be in [0, {K}), "
                    f"found range [{int(p.min())}, {int(p.max())}]"
                )
        self.confmat += torch.bincount(t * K + p, minlength=K * K).reshape(K, K)

    def compute(self) -> dict[str, Tensor]:
        """The :func:`metrics_from_confusion` dict of the (process-summed) confusion matrix."""
        return metrics_from_confusion(self.confmat)


def _names(result: dict, class_names: list[str] | None) -> list[str]:
    K = result["iou"].numel()
    if class_names is None:
        return [f"class_{i}" for i in range(K)]
    if len(class_names) != K:
        raise ValueError(f"{len(class_names)} class names for a result with {K} classes")
    return list(class_names)


def format_table(result: dict, class_names: list[str] | None = None) -> str:
    """Markdown table of a :func:`metrics_from_confusion` result: the four summaries, then per-class IoU, in %.

    Classes with NaN IoU (absent from ground truth and prediction) are shown as ``n/a``.
    """

    def pct(v) -> str:
        v = float(v)
        return "n/a" if math.isnan(v) else f"{100 * v:.2f}"

    lines = ["| metric | % |", "|---|---:|"]
    lines += [f"| {k} | {pct(result[k])} |" for k in SUMMARY_KEYS]
    per_class = zip(_names(result, class_names), result["iou"].tolist(), strict=True)
    lines += [f"| IoU {name} | {pct(v)} |" for name, v in per_class]
    return "\n".join(lines) + "\n"


def to_csv_rows(result: dict, class_names: list[str] | None = None) -> list[list[str]]:
    """Rows ``[name, value]`` for ``csv.writer``: a header, the four summaries, then ``iou/<class>``.

    Values are fractions in [0, 1] printed with 6 decimals (``nan`` for absent classes), so a report can be
    re-read without the rounding of :func:`format_table`.
    """
    rows = [["name", "value"]]
    rows += [[k, f"{float(result[k]):.6f}"] for k in SUMMARY_KEYS]
    per_class = zip(_names(result, class_names), result["iou"].tolist(), strict=True)
    rows += [[f"iou/{name}", f"{v:.6f}"] for name, v in per_class]
    return rows

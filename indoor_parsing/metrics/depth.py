"""Depth metrics over a whole evaluation set: RMSE, mean absolute relative error and δ < 1.25 accuracy.

The states are sums over valid pixels (sum-reduced across DDP processes), so the result is a dataset-level pixel
average, never an average of per-image values (Eigen et al., NIPS 2014 define the same three over all test pixels).
"""

import torch
from torch import Tensor
from torchmetrics import Metric


class DepthMetrics(Metric):
    """``rmse`` = sqrt(mean (d − d*)²), ``abs_rel`` = mean |d − d*| / d*, ``delta1`` = mean [max(d/d*, d*/d) < 1.25].

    Valid pixels have target depth > 0, a finite prediction and lie inside ``mask`` when given. With no valid pixel
    every value is NaN.

    Args:
        threshold: the δ threshold (1.25).
        **kwargs: passed to :class:`torchmetrics.Metric`.

    Shape:
        preds, target: (B, 1, H, W) metres (target 0 = missing); mask: optional bool (B, 1, H, W).
    """

    is_differentiable = False
    full_state_update = False

    def __init__(self, threshold: float = 1.25, **kwargs) -> None:
        super().__init__(**kwargs)
        self.threshold = threshold
        for name in ("sq_err", "abs_rel", "delta1", "count"):
            # float64 sums: float32 loses whole pixels past 2^24 of them.
            self.add_state(name, default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor, mask: Tensor | None = None) -> None:
        if preds.shape != target.shape:
            raise ValueError(f"DepthMetrics: preds {tuple(preds.shape)} and target {tuple(target.shape)} differ")
        if mask is not None and (mask.dtype != torch.bool or mask.shape != target.shape):
            raise ValueError(f"DepthMetrics: mask must be bool {tuple(target.shape)}, got {mask.dtype} "
                             f"{tuple(mask.shape)}")  # fmt: skip
        valid = (target > 0) & torch.isfinite(preds)
        if mask is not None:
            valid &= mask
        d, t = preds[valid].double(), target[valid].double()  # (N,)
        ratio = torch.maximum(d / t, t / d.clamp_min(1e-12))
        self.sq_err += ((d - t) ** 2).sum()
        self.abs_rel += ((d - t).abs() / t).sum()
        self.delta1 += (ratio < self.threshold).sum()
        self.count += valid.sum()

    def compute(self) -> dict[str, Tensor]:
        n = self.count
        nan = torch.full_like(n, float("nan"))
        safe = n.clamp_min(1)
        out = {
            "rmse": torch.where(n > 0, (self.sq_err / safe).sqrt(), nan),
            "abs_rel": torch.where(n > 0, self.abs_rel / safe, nan),
            "delta1": torch.where(n > 0, self.delta1 / safe, nan),
        }
        return {k: v.float() for k, v in out.items()}

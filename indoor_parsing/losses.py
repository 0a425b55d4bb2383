"""Base losses shared by the methods: (weighted) cross-entropy, focal-style CE, berHu, masked L2, SSIM photometric.

Every loss averages over the pixels it supervises (non-ignored labels, valid depth, covered features, masked
pixels) and returns an exact 0 that keeps the autograd graph when there are none, so a batch without supervision
neither produces NaN nor breaks ``backward()``. Unsupervised pixels get exactly zero gradient: they are removed with
``torch.where``, never by multiplying a possibly non-finite value by 0.
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from indoor_parsing.data.taxonomy import IGNORE


def _check_same_shape(where: str, **tensors: Tensor) -> None:
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"{where}: shapes differ: " + ", ".join(f"{k} {v}" for k, v in shapes.items()))


def _check_labels(where: str, logits: Tensor, target: Tensor) -> None:
    if logits.dim() != target.dim() + 1 or logits.shape[:1] + logits.shape[2:] != target.shape:
        raise ValueError(f"{where}: logits {tuple(logits.shape)} do not match target {tuple(target.shape)}")


def _masked_mean(values: Tensor, mask: Tensor, where: str) -> Tensor:
    """Mean of ``values`` where ``mask``; 0 (with graph) when the mask is empty. No host sync."""
    if mask.dtype != torch.bool:
        raise ValueError(f"{where}: mask must be a bool tensor, got {mask.dtype}")
    if mask.dim() != values.dim() or any(m not in (1, v) for m, v in zip(mask.shape, values.shape, strict=True)):
        raise ValueError(f"{where}: mask {tuple(mask.shape)} does not fit values {tuple(values.shape)}")
    mask = mask.expand_as(values)
    total = torch.where(mask, values, torch.zeros_like(values)).sum()
    return total / mask.sum().clamp_min(1)


def _valid_depth(target: Tensor, mask: Tensor | None, where: str) -> Tensor:
    """Pixels with depth supervision: target > 0 (0 = missing) and inside ``mask`` when given."""
    if mask is None:
        return target > 0
    if mask.dtype != torch.bool or mask.shape != target.shape:
        raise ValueError(f"{where}: mask must be bool {tuple(target.shape)}, got {mask.dtype} {tuple(mask.shape)}")
    return (target > 0) & mask


def cross_entropy(logits: Tensor, target: Tensor, weight: Tensor | None = None, ignore_index: int = IGNORE) -> Tensor:
    """Pixel-wise cross-entropy, mean over non-ignored pixels (weighted mean Σ w_y ℓ / Σ w_y with ``weight``).

    Same value as ``F.cross_entropy`` except that a batch with no labelled pixel (or only zero-weight classes)
    gives 0 instead of NaN.

    Args:
        logits: (B, K, H, W) unnormalised scores.
        target: (B, H, W) int64 ids, ``ignore_index`` where unlabelled.
        weight: optional (K,) class weights (e.g. :func:`median_frequency_weights`).
        ignore_index: label value that is not supervised.
    """
    _check_labels("cross_entropy", logits, target)
    valid = target != ignore_index  # (B, H, W)
    loss = F.cross_entropy(logits, target, weight=weight, ignore_index=ignore_index, reduction="none")  # (B, H, W)
    if weight is None:
        return _masked_mean(loss, valid, "cross_entropy")
    w = weight.to(logits.dtype)[torch.where(valid, target, 0)]  # (B, H, W) w_y, any value where ignored
    return torch.where(valid, loss, 0.0).sum() / torch.where(valid, w, 0.0).sum().clamp_min(1e-12)


def median_frequency_weights(counts: Tensor, image_pixels: Tensor) -> Tensor:
    """Median frequency balancing (Eigen & Fergus, ICCV 2015): ``w_c = median(freq) / freq_c``.

    ``freq_c = counts_c / image_pixels_c`` is the pixel frequency of class c among the images where c is present.
    The median is over the classes that were seen (the mean of the two middle values for an even count); classes
    never seen get weight 0.

    Args:
        counts: (K,) labelled pixels of each class over the training set.
        image_pixels: (K,) total pixels of the training images that contain class c.

    Returns:
        (K,) float32 weights.
    """
    if counts.dim() != 1 or counts.shape != image_pixels.shape:
        raise ValueError(
            f"median_frequency_weights: expected two (K,) tensors, got {tuple(counts.shape)} and "
            f"{tuple(image_pixels.shape)}"
        )
    counts, image_pixels = counts.double(), image_pixels.double()
    if (counts < 0).any() or (counts > image_pixels).any():
        raise ValueError("median_frequency_weights: need 0 <= counts <= image_pixels for every class")
    seen = counts > 0
    if not seen.any():
        raise ValueError("median_frequency_weights: no class has any pixel")
    freq = counts / image_pixels.clamp_min(1)  # (K,)
    median = freq[seen].quantile(0.5)  # linear interpolation = mean of the two middle values
    return torch.where(seen, median / freq.clamp_min(1e-30), 0.0).float()


class FocalStyleCE(nn.Module):
    """Focal-style cross-entropy of Geometry-Aware Distillation (Jiao et al., CVPR 2019, Eq. 6).

    ``L_s = −(1/N) Σ_i Σ_c (1 − p_ic)^γ ℓ*_ic log p_ic`` with one-hot ``ℓ*``, N = non-ignored pixels; γ = 0 is
    plain cross-entropy.

    Args:
        gamma: focusing exponent γ.
        ignore_index: label value that is not supervised (no loss, no gradient).

    Shape:
        logits: (B, K, H, W); target: (B, H, W) int64; output: scalar.
    """

    def __init__(self, gamma: float = 2.0, ignore_index: int = IGNORE) -> None:
        super().__init__()
        self.gamma = gamma
        self.ignore_index = ignore_index

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        _check_labels("FocalStyleCE", logits, target)
        valid = target != self.ignore_index  # (B, H, W)
        safe = torch.where(valid, target, 0).unsqueeze(1)  # (B, 1, H, W) any id where ignored
        log_p = F.log_softmax(logits, dim=1).gather(1, safe).squeeze(1)  # (B, H, W) log p_iy
        loss = -((1 - log_p.exp()) ** self.gamma) * log_p  # Eq. 6, the one-hot keeps only c = y
        return _masked_mean(loss, valid, "FocalStyleCE")


class BerHu(nn.Module):
    """Reverse Huber (berHu) depth loss L_d (Jiao et al., CVPR 2019, Eq. 7; Laina et al., 3DV 2016).

    Per pixel ``B(x) = |x|`` if ``|x| <= δ`` else ``(x² + δ²) / (2δ)``, with ``x = d − D*`` and
    ``δ = ratio · max_i |x_i|`` over the valid pixels of the batch; δ is detached (a constant of the step, as in the
    paper). Valid pixels have target depth > 0 and lie inside ``mask`` when given; the loss is their mean.

    Args:
        ratio: δ as a fraction of the largest absolute error (0.2 in the paper).

    Shape:
        pred, target: (B, 1, H, W) metres (target 0 = missing); mask: optional bool (B, 1, H, W); output: scalar.
    """

    def __init__(self, ratio: float = 0.2) -> None:
        super().__init__()
        self.ratio = ratio

    def forward(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        _check_same_shape("BerHu", pred=pred, target=target)
        valid = _valid_depth(target, mask, "BerHu")
        x = (pred - target).abs()  # (B, 1, H, W)
        # Eq. 7's threshold δ = ratio · the batch's largest error (1/5, as Laina et al. set it); the clamp keeps the
        # unselected quadratic branch finite when every valid error is 0.
        delta = (self.ratio * torch.where(valid, x, 0.0).amax()).detach().clamp_min(1e-12)
        loss = torch.where(x <= delta, x, (x**2 + delta**2) / (2 * delta))  # Eq. 7
        return _masked_mean(loss, valid, "BerHu")


def masked_l2(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Feature distillation L_p of 3D-to-2D Distillation (Liu et al., CVPR 2021).

    ``Σ_{i covered} ||f_i − f'_i||²`` (squared L2 over channels) divided by the number of covered pixels, so the
    value does not depend on how much of the image the 3D teacher covers. The target is not detached here.

    Args:
        pred: (B, C, h, w) 2D student features.
        target: (B, C, h, w) projected 3D teacher features.
        mask: bool (B, 1, h, w), where a teacher feature exists.
    """
    _check_same_shape("masked_l2", pred=pred, target=target)
    sq = ((pred - target) ** 2).sum(1, keepdim=True)  # (B, 1, h, w)
    return _masked_mean(sq, mask, "masked_l2")


def ssim(x: Tensor, y: Tensor, window: int = 3) -> Tensor:
    """Per-pixel SSIM map (Wang et al., TIP 2004, Eq. 13) over a ``window``² box filter, as in Monodepth.

    Borders are reflection-padded; constants ``C1 = 0.01²``, ``C2 = 0.03²`` assume intensities in [0, 1].

    Shape:
        x, y: (B, C, H, W); output: (B, C, H, W), 1 where the images agree locally.
    """
    _check_same_shape("ssim", x=x, y=y)
    if window < 1 or window % 2 == 0:
        raise ValueError(f"ssim: window must be odd and positive, got {window}")
    c1, c2 = 0.01**2, 0.03**2
    pad = window // 2
    x = F.pad(x, [pad] * 4, mode="reflect")
    y = F.pad(y, [pad] * 4, mode="reflect")
    mu_x, mu_y = F.avg_pool2d(x, window, 1), F.avg_pool2d(y, window, 1)  # (B, C, H, W)
    var_x = F.avg_pool2d(x * x, window, 1) - mu_x**2
    var_y = F.avg_pool2d(y * y, window, 1) - mu_y**2
    cov = F.avg_pool2d(x * y, window, 1) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return num / den


def photometric_loss(x: Tensor, y: Tensor, mask: Tensor, alpha: float = 0.85) -> Tensor:
    """Appearance matching loss (Monodepth, Godard et al., CVPR 2017, Eq. 5), used by S4-Net's L_DG.

    Per pixel ``α (1 − SSIM) / 2 + (1 − α) |x − y|`` averaged over channels, then over the pixels in ``mask``.
    ``mask`` selects which pixels' losses count; through SSIM's window a pixel just outside the mask can still
    receive gradient from an in-mask neighbour, one farther than ``window // 2`` cannot.

    Args:
        x: (B, C, H, W) image, e.g. a neighbour view warped into the target view, in [0, 1].
        y: (B, C, H, W) reference image in [0, 1].
        mask: bool (B, 1, H, W), e.g. pixels with a valid, unoccluded warp.
        alpha: SSIM weight (0.85 in Monodepth).
    """
    _check_same_shape("photometric_loss", x=x, y=y)
    dssim = ((1 - ssim(x, y)) / 2).clamp(0, 1)  # (B, C, H, W)
    per_pixel = (alpha * dssim + (1 - alpha) * (x - y).abs()).mean(1, keepdim=True)  # (B, 1, H, W)
    return _masked_mean(per_pixel, mask, "photometric_loss")


def l1_depth(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean absolute depth error over pixels with target depth > 0 (and inside ``mask`` when given).

    Shape:
        pred, target: (B, 1, H, W) metres; mask: optional bool (B, 1, H, W); output: scalar.
    """
    _check_same_shape("l1_depth", pred=pred, target=target)
    return _masked_mean((pred - target).abs(), _valid_depth(target, mask, "l1_depth"), "l1_depth")

"""Base losses against hand-computed values on 2x2 tensors, and zero gradient where nothing is supervised."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from indoor_parsing.losses import (
    BerHu,
    FocalStyleCE,
    cross_entropy,
    l1_depth,
    masked_l2,
    median_frequency_weights,
    photometric_loss,
    ssim,
)

IGNORE = 255
LN2, LN3 = math.log(2), math.log(3)


def _logits() -> tuple[torch.Tensor, torch.Tensor]:
    """(1, 3, 2, 2) logits whose softmax is easy by hand, and a target with one ignored pixel.

    pixel (0,0): softmax [1/4, 1/2, 1/4], target 1 -> p_y = 1/2
    pixel (0,1): softmax [1/2, 1/4, 1/4], target 0 -> p_y = 1/2
    pixel (1,0): softmax [1/3, 1/3, 1/3], target 2 -> p_y = 1/3
    pixel (1,1): large logits, ignored
    """
    probs = torch.tensor([[1.0, 2.0, 1.0], [2.0, 1.0, 1.0], [1.0, 1.0, 1.0], [50.0, -3.0, 7.0]])  # (4, K)
    logits = probs.log().T.reshape(1, 3, 2, 2).clone()
    logits[0, :, 1, 1] = torch.tensor([50.0, -3.0, 7.0])
    target = torch.tensor([[[1, 0], [2, IGNORE]]])
    return logits.requires_grad_(), target


def test_cross_entropy_hand_values_and_weights():
    logits, target = _logits()
    assert cross_entropy(logits, target).item() == pytest.approx((2 * LN2 + LN3) / 3)
    # Weighted mean Σ w_y ℓ / Σ w_y with w = [1, 2, 3]: (2 ln2 + 1 ln2 + 3 ln3) / 6 = ln(6) / 2
    weight = torch.tensor([1.0, 2.0, 3.0])
    assert cross_entropy(logits, target, weight).item() == pytest.approx(math.log(6) / 2)
    assert cross_entropy(logits, target, weight).item() == pytest.approx(
        F.cross_entropy(logits, target, weight=weight, ignore_index=IGNORE).item()
    )


def test_cross_entropy_ignored_pixels_get_no_gradient_and_all_ignored_is_zero():
    logits, target = _logits()
    cross_entropy(logits, target, torch.tensor([1.0, 2.0, 3.0])).backward()
    assert torch.all(logits.grad[0, :, 1, 1] == 0)
    assert torch.all(logits.grad[0, :, 0, 0] != 0)
    logits.grad = None
    loss = cross_entropy(logits, torch.full_like(target, IGNORE))
    loss.backward()
    assert loss.item() == 0.0 and torch.all(logits.grad == 0)


def test_median_frequency_weights():
    # freq = [10/100, 30/100, -, 20/100] -> median 0.2 -> w = [2, 2/3, 0 (never seen), 1]
    w = median_frequency_weights(torch.tensor([10, 30, 0, 20]), torch.tensor([100, 100, 50, 100]))
    assert w.tolist() == pytest.approx([2.0, 2 / 3, 0.0, 1.0])
    # Even number of seen classes: median of [0.1, 0.4] is 0.25; frequency is per image containing the class.
    w = median_frequency_weights(torch.tensor([10, 20, 0]), torch.tensor([100, 50, 0]))
    assert w.tolist() == pytest.approx([2.5, 0.625, 0.0])
    with pytest.raises(ValueError, match="counts <= image_pixels"):
        median_frequency_weights(torch.tensor([10, 5]), torch.tensor([5, 5]))


def test_focal_style_ce_hand_values():
    logits, target = _logits()
    # Eq. 6: (1 - p_y)^2 (-log p_y) -> (1/4) ln2, (1/4) ln2, (4/9) ln3 over 3 pixels
    loss = FocalStyleCE()(logits, target)
    assert loss.item() == pytest.approx((0.5 * LN2 + 4 / 9 * LN3) / 3)
    assert FocalStyleCE(gamma=0.0)(logits, target).item() == pytest.approx(cross_entropy(logits, target).item())
    loss.backward()
    assert torch.all(logits.grad[0, :, 1, 1] == 0)
    assert torch.all(logits.grad[0, :, 0, 0] != 0)
    logits.grad = None
    empty = FocalStyleCE()(logits, torch.full_like(target, IGNORE))
    empty.backward()
    assert empty.item() == 0.0 and torch.all(logits.grad == 0)


def _depth() -> tuple[torch.Tensor, torch.Tensor]:
    # errors x = d - D*: -0.5, 0.1, 1.0, and a missing target (0) at (1,1)
    pred = torch.tensor([[[[1.0, 2.1], [3.0, 5.0]]]], dtype=torch.float64, requires_grad=True)
    target = torch.tensor([[[[1.5, 2.0], [2.0, 0.0]]]], dtype=torch.float64)
    return pred, target


def test_berhu_hand_values_and_gradients():
    pred, target = _depth()
    # δ = 0.2 * 1.0 = 0.2; B = (0.25+0.04)/0.4 = 0.725, 0.1, (1+0.04)/0.4 = 2.6
    loss = BerHu()(pred, target)
    assert loss.item() == pytest.approx((0.725 + 0.1 + 2.6) / 3)
    loss.backward()
    # dB/dx = x/δ on the quadratic side (δ detached), sign(x) on the linear side; missing depth gets nothing.
    expected = torch.tensor([[[[-0.5 / 0.2, 1.0], [1.0 / 0.2, 0.0]]]], dtype=torch.float64) / 3
    torch.testing.assert_close(pred.grad, expected)


def test_berhu_mask_and_no_valid_pixel():
    pred, target = _depth()
    mask = torch.tensor([[[[False, True], [True, True]]]])
    loss = BerHu()(pred, target, mask)
    assert loss.item() == pytest.approx((0.1 + 2.6) / 2)  # δ from the remaining errors: still 0.2
    loss.backward()
    assert pred.grad[0, 0, 0, 0] == 0 and pred.grad[0, 0, 1, 1] == 0
    pred.grad = None
    empty = BerHu()(pred, torch.zeros_like(target))
    empty.backward()
    assert empty.item() == 0.0 and empty.requires_grad and torch.all(pred.grad == 0)
    perfect = BerHu()(pred, pred.detach().clone())  # every error 0: δ = 0 must not produce NaN
    perfect.backward()
    assert perfect.item() == 0.0 and torch.isfinite(pred.grad).all()


def test_masked_l2_hand_values_and_gradient():
    pred = torch.tensor([[[[1.0, 2.0], [0.0, 4.0]], [[1.0, 0.0], [3.0, 9.0]]]], requires_grad=True)  # (1, 2, 2, 2)
    target = torch.zeros(1, 2, 2, 2)
    mask = torch.tensor([[[[True, True], [True, False]]]])
    # ||f - f'||^2 per covered pixel: 1+1, 4+0, 0+9 -> sum 15 over 3 covered pixels
    loss = masked_l2(pred, target, mask)
    assert loss.item() == pytest.approx(5.0)
    loss.backward()
    assert torch.all(pred.grad[0, :, 1, 1] == 0)
    torch.testing.assert_close(pred.grad[0, :, 0, 0], torch.tensor([2.0, 2.0]) / 3)
    with pytest.raises(ValueError, match="mask must be a bool tensor"):
        masked_l2(pred, target, mask.float())


def _ssim_reference(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Direct per-pixel SSIM over 3x3 reflect-padded windows, one (H, W) channel."""
    c1, c2 = 0.01**2, 0.03**2
    xp, yp = np.pad(x, 1, mode="reflect"), np.pad(y, 1, mode="reflect")
    out = np.zeros_like(x)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            a, b = xp[i : i + 3, j : j + 3], yp[i : i + 3, j : j + 3]
            cov = ((a - a.mean()) * (b - b.mean())).mean()
            out[i, j] = ((2 * a.mean() * b.mean() + c1) * (2 * cov + c2)) / (
                (a.mean() ** 2 + b.mean() ** 2 + c1) * (a.var() + b.var() + c2)
            )
    return out


def test_ssim_hand_value_and_reference():
    # float64: the box-filter variance E[x²] − μ² loses ~1e-8 to cancellation in float32, 1e-5 of C2.
    x, y = torch.full((1, 1, 2, 2), 0.2, dtype=torch.float64), torch.full((1, 1, 2, 2), 0.6, dtype=torch.float64)
    # Constant images: σ = 0, SSIM = (2·0.2·0.6 + C1) / (0.2² + 0.6² + C1) = 0.2401 / 0.4001
    torch.testing.assert_close(ssim(x, y), torch.full_like(x, 0.2401 / 0.4001))
    torch.testing.assert_close(ssim(x, x), torch.ones_like(x))
    torch.testing.assert_close(ssim(x.float(), y.float()), torch.full((1, 1, 2, 2), 0.2401 / 0.4001), atol=1e-4, rtol=0)
    rng = np.random.default_rng(0)
    a, b = rng.random((3, 4)), rng.random((3, 4))
    got = ssim(torch.from_numpy(a)[None, None], torch.from_numpy(b)[None, None])[0, 0].numpy()
    np.testing.assert_allclose(got, _ssim_reference(a, b), rtol=1e-10)


def test_photometric_loss_hand_value():
    x, y = torch.full((1, 3, 2, 2), 0.2, dtype=torch.float64), torch.full((1, 3, 2, 2), 0.6, dtype=torch.float64)
    mask = torch.tensor([[[[True, False], [True, True]]]])
    # 0.85 · (1 − 0.2401/0.4001)/2 + 0.15 · 0.4 at every pixel
    expected = 0.85 * (1 - 0.2401 / 0.4001) / 2 + 0.15 * 0.4
    assert photometric_loss(x, y, mask).item() == pytest.approx(expected)
    assert photometric_loss(y, y, mask).item() == pytest.approx(0.0, abs=1e-7)


def test_photometric_loss_masked_pixels_get_no_gradient():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 4, 4, generator=gen, requires_grad=True)
    y = torch.rand(1, 3, 4, 4, generator=gen)
    mask = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    mask[..., 0, 0] = True
    photometric_loss(x, y, mask).backward()
    # SSIM's 3x3 window reaches one pixel around the masked-in (0, 0); pixels farther away get exactly nothing.
    assert torch.all(x.grad[..., 2:, :] == 0) and torch.all(x.grad[..., :, 2:] == 0)
    assert torch.all(x.grad[..., 0, 0] != 0)
    x.grad = None
    photometric_loss(x, y, mask, alpha=0.0).backward()  # pure L1: only the masked-in pixel
    assert torch.count_nonzero(x.grad) == 3


def test_l1_depth_hand_values_and_gradient():
    pred, target = _depth()
    loss = l1_depth(pred, target)
    assert loss.item() == pytest.approx((0.5 + 0.1 + 1.0) / 3)
    loss.backward()
    assert pred.grad[0, 0, 1, 1] == 0
    mask = torch.tensor([[[[True, False], [True, True]]]])
    assert l1_depth(pred, target, mask).item() == pytest.approx((0.5 + 1.0) / 2)
    with pytest.raises(ValueError, match="l1_depth: shapes differ"):
        l1_depth(pred, target[..., :1])

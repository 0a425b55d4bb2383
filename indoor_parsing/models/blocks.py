"""Small blocks every network shares, and the model output contract.

Every image model in this package maps (B, C_in, H, W) of any size to a dict: ``logits`` (B, K, H, W) at the input
size, plus named extras, image-sized predictions (``aux``, ``side``, ``distilled``, ``depth``) at the input size too
and features (``f2d``, ``sim3d``) at the network's stride. An extra the configured network does not compute is
absent. A model pads its input with :func:`pad_to_multiple` and brings its predictions back with
:func:`to_input_size`, the one place where predictions are resized.
"""

import torch
import torch.nn.functional as F
from torch import nn


def pad_to_multiple(x: torch.Tensor, multiple: int, value: float = 0.0) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad (B, C, H, W) at the bottom/right to multiples of ``multiple``; returns the padded tensor and (H, W)."""
    H, W = x.shape[-2:]
    ph, pw = (-H) % multiple, (-W) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), value=value)
    return x, (H, W)


def to_input_size(t: torch.Tensor, padded: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """A prediction on the padded input, back at the input: bilinear up to the padded size, padding cropped.

    Args:
        t: (B, C, h, w) prediction, h <= padded height (a strided map) or equal (no resize).
        padded: (H', W') of the padded input the network saw.
        size: (H, W) of the input before :func:`pad_to_multiple`.

    Shape:
        (B, C, h, w) -> (B, C, H, W).
    """
    if tuple(t.shape[-2:]) != tuple(padded):
        t = F.interpolate(t, size=tuple(padded), mode="bilinear", align_corners=False)
    return t[..., : size[0], : size[1]]


def conv_bn(in_channels: int, out_channels: int) -> nn.Sequential:
    """1x1 conv (no bias) + BN."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))


def conv_bn_relu(in_channels: int, out_channels: int, k: int = 3) -> nn.Sequential:
    """k x k conv (no bias, same padding) + BN + ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, k, padding=k // 2, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(True)
    )


class AuxHead(nn.Sequential):
    """PSPNet's deep-supervision branch (Zhao et al., CVPR 2017): conv3x3-BN-ReLU, dropout, conv1x1 on a mid feature.

    smp's ``aux_params`` builds an image-level *classification* head, which cannot carry a per-pixel loss; PSPNet's
    auxiliary loss is a per-pixel segmentation loss, so the branch is built here.

    Shape:
        (B, C, h, w) -> (B, K, h, w).
    """

    def __init__(self, in_channels: int, num_classes: int, hidden: int = 256, dropout: float = 0.1):
        super().__init__(conv_bn_relu(in_channels, hidden), nn.Dropout2d(dropout), nn.Conv2d(hidden, num_classes, 1))

"""One wrapper over smp / timm encoders: ``out_channels``, ``reductions`` and a list of feature maps."""

import segmentation_models_pytorch as smp
import torch
from torch import nn


class Encoder(nn.Module):
    """A backbone returning its stage features, coarse last.

    Args:
        name: any smp encoder name (``resnet18``, ``resnet50``, ``efficientnet-b0``, ``tu-<timm name>``, ...).
        weights: pretrained weights name (``imagenet``) or None (tests, demo, SynthRooms).
        in_channels: input channels (3 for RGB, 6 for RGB + HHA).
        depth: number of stages (5 = reductions 2..32).
        output_stride: 32, 16 or 8 (dilated last stages, as PSPNet / DeepLab use).

    Shape:
        input (B, in_channels, H, W) -> list of ``depth`` maps, map k is (B, out_channels[k], H / reductions[k], ...).
    """

    def __init__(
        self, name: str = "resnet18", weights: str | None = None, in_channels: int = 3, depth: int = 5,
        output_stride: int = 32,
    ):  # fmt: skip
        super().__init__()
        self.body = smp.encoders.get_encoder(
            name, in_channels=in_channels, depth=depth, weights=weights, output_stride=output_stride
        )
        self.out_channels: list[int] = list(self.body.out_channels[1:])
        self.reductions: list[int] = [min(2 ** (k + 1), output_stride) for k in range(depth)]
        self.output_stride = output_stride

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.body(x)[1:]  # stage 0 is the input itself

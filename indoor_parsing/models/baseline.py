"""The baseline network: any smp architecture and encoder (PSPNet, DeepLabV3+, FPN, Unet, ...)."""

import segmentation_models_pytorch as smp
import torch
from torch import nn

from indoor_parsing.models.blocks import pad_to_multiple, to_input_size


class SmpSegmenter(nn.Module):
    """An smp segmentation model that accepts any input size (padded to the encoder's stride, output cropped).

    Args:
        arch: smp architecture class name (``Unet``, ``FPN``, ``PSPNet``, ``DeepLabV3Plus``, ...).
        encoder_name: smp encoder name.
        encoder_weights: pretrained weights or None.
        num_classes: K.
        in_channels: input channels.
        arch_kwargs: further keyword arguments of the smp architecture, e.g. ``{"decoder_channels": [128, 64, 32,
            16, 8]}`` for a narrower Unet decoder.

    Shape:
        (B, in_channels, H, W) -> {"logits": (B, K, H, W)}.
    """

    def __init__(
        self,
        arch: str,
        encoder_name: str,
        encoder_weights: str | None,
        num_classes: int,
        in_channels: int = 3,
        arch_kwargs: dict | None = None,
    ):
        super().__init__()
        self.net = smp.create_model(
            arch, encoder_name=encoder_name, encoder_weights=encoder_weights, classes=num_classes,
            in_channels=in_channels, **(arch_kwargs or {}),
        )  # fmt: skip
        self.stride = 32

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x, size = pad_to_multiple(x, self.stride)
        return {"logits": to_input_size(self.net(x), x.shape[-2:], size)}

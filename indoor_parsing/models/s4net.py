"""S4-Net's network: an smp segmenter whose encoder optionally also feeds a depth decoder and a pixel auxiliary head.

Stekovic, Fraundorfer, Lepetit, "Casting Geometric Constraints in Semantic Segmentation as Semi-Supervised
Learning" (WACV 2020). The segmentation network is DeepLabV3+ or PSPNet; Sec. 3.3 adds a depth decoder that shares
the encoder.
"""

import segmentation_models_pytorch as smp
import torch
from torch import nn

from indoor_parsing.models.blocks import AuxHead, pad_to_multiple, to_input_size


class S4Net(nn.Module):
    """Encoder -> segmentation decoder (+ auxiliary head) and, optionally, a depth decoder on the same features.

    Args:
        arch: smp architecture of the segmentation (and depth) decoder: ``DeepLabV3Plus``, ``PSPNet``, ...
        encoder_name: smp encoder name.
        encoder_weights: pretrained weights (``imagenet``) or None.
        num_classes: K.
        aux_head: add the auxiliary segmentation head on the second-to-last encoder stage (PSPNet).
        depth_head: add the depth decoder (S4-Net Sec. 3.3); same decoder architecture, one output channel.
        max_depth: predicted depth is ``max_depth * sigmoid(.)`` metres, bounded so warps stay in a sane range.

    Shape:
        (B, 3, H, W) -> {"logits": (B, K, H, W), "aux": (B, K, H, W) with ``aux_head``, "depth": (B, 1, H, W)
        metres with ``depth_head``}.
    """

    stride = 32  # inputs are padded to a multiple of every smp architecture's largest reduction

    def __init__(
        self, arch: str = "DeepLabV3Plus", encoder_name: str = "resnet50", encoder_weights: str | None = None,
        num_classes: int = 20, aux_head: bool = False, depth_head: bool = False, max_depth: float = 10.0,
    ):  # fmt: skip
        super().__init__()
        seg = smp.create_model(arch, encoder_name=encoder_name, encoder_weights=encoder_weights, classes=num_classes)
        # The parts are registered one by one so the state dict names every shared tensor once.
        self.encoder, self.decoder, self.head = seg.encoder, seg.decoder, seg.segmentation_head
        self.aux = AuxHead(self.encoder.out_channels[-2], num_classes) if aux_head else None
        self.depth_decoder = self.depth_out = None
        if depth_head:
            # A twin model gives a decoder wired for this encoder's channels; its own encoder is dropped.
            twin = smp.create_model(arch, encoder_name=encoder_name, encoder_weights=None, classes=1)
            self.depth_decoder, self.depth_out = twin.decoder, twin.segmentation_head
        self.max_depth = max_depth

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x, size = pad_to_multiple(x, self.stride)
        padded = x.shape[-2:]
        features = self.encoder(x)  # [input, stage 1, ..., stage n]
        out = {"logits": to_input_size(self.head(self.decoder(features)), padded, size)}
        if self.aux is not None:
            out["aux"] = to_input_size(self.aux(features[-2]), padded, size)  # from (B, K, H / r, W / r)
        if self.depth_decoder is not None:
            depth = self.depth_out(self.depth_decoder(features))  # (B, 1, H', W')
            out["depth"] = self.max_depth * torch.sigmoid(to_input_size(depth, padded, size))
        return out

"""S4-Net's network: an smp segmenter whose encoder optionally also feeds a depth decoder and a pixel auxiliary head.

Stekovic, Fraundorfer, Lepetit, "Casting Geometric Constraints in Semantic Segmentation as Semi-Supervised
Learning" (WACV 2020). The segmentation network is DeepLabV3+ or PSPNet; Sec. 3.3 adds a depth decoder that shares
the encoder.
"""

import segmentation_models_pytorch as smp
import torch
from torch import nn

from indoor_parsing.models.encoders import pad_to_multiple


class AuxHead(nn.Module):
    """PSPNet's deep-supervision branch (Zhao et al., CVPR 2017): conv3x3-BN-ReLU-dropout-conv1x1 on a mid feature.

    smp's ``aux_params`` builds an image-level *classification* head, which cannot carry a per-pixel loss; PSPNet's
    auxiliary loss is a per-pixel segmentation loss, so the branch is built here.
    """

    def __init__(self, in_channels: int, num_classes: int, hidden: int = 256, dropout: float = 0.1):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 3, padding=1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Dropout2d(dropout), nn.Conv2d(hidden, num_classes, 1),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


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
        (B, 3, H, W) -> {"seg": (B, K, H, W), "aux": (B, K, H, W) or None, "depth": (B, 1, H, W) or None}.
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

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor | None]:
        x, (H, W) = pad_to_multiple(x, self.stride)
        features = self.encoder(x)  # [input, stage 1, ..., stage n]
        out = {"seg": self.head(self.decoder(features))[..., :H, :W], "aux": None, "depth": None}
        if self.aux is not None:
            aux = self.aux(features[-2])  # (B, K, H / r, W / r)
            out["aux"] = nn.functional.interpolate(aux, size=x.shape[-2:], mode="bilinear")[..., :H, :W]
        if self.depth_decoder is not None:
            depth = self.depth_out(self.depth_decoder(features))  # (B, 1, H', W')
            out["depth"] = self.max_depth * torch.sigmoid(depth[..., :H, :W])
        return out

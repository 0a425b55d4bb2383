"""GeoAwareNet: Geometry-Aware Distillation for Indoor Semantic Segmentation (Jiao et al., CVPR 2019), Fig. 2.

Shared encoder -> semantic and depth decoders (four up-projection stages each, stride 32 -> 2); the depth branch's
stage features are the depth-aware embedding G (Eq. 1-2). FeatProp fuses G into the semantic branch at every
decoder scale (plain addition, VanConv or GAP, Eq. 3-5) and propagates the decoder scales into the last decoder
layer. SPF (Fig. 4) then refines the last layer with encoder features, one side output per block.
"""

import torch
import torch.nn.functional as F
from torch import nn

from indoor_parsing.models.encoders import Encoder, pad_to_multiple
from indoor_parsing.models.gap import GAP, AddFusion, VanConv

FUSIONS = ("none", "add", "vanconv", "gap")
_DEPTH_INIT_M = 2.5  # softplus(bias) at initialisation: a typical indoor depth, so berHu starts small


def _conv_bn_relu(in_channels: int, out_channels: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, k, padding=k // 2, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(True)
    )


class UpProjection(nn.Module):
    """Up-projection (Laina et al., 3DV 2016) with 3x3 kernels: x2 upsample, two convs plus a projection shortcut."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.branch = nn.Sequential(
            _conv_bn_relu(in_channels, out_channels),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                                      nn.BatchNorm2d(out_channels))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)  # (B, C_in, 2h, 2w)
        return F.relu(self.branch(x) + self.shortcut(x))


class Decoder(nn.Module):
    """Four up-projection stages from the encoder's last feature; returns every stage's output (stride 16 .. 2)."""

    def __init__(self, in_channels: int, channels: tuple[int, ...]) -> None:
        super().__init__()
        widths = [in_channels, *channels]
        self.stages = nn.ModuleList(UpProjection(widths[k], widths[k + 1]) for k in range(len(channels)))


class SPFBlock(nn.Module):
    """One SPF block (Fig. 4): 1x1 conv + ReLU on the previous feature, concatenated with the level's encoder feature
    (resized, 1x1 conv + ReLU), then a 3x3 conv (+ BN + ReLU, for stable training at lr 1e-2), and a side output."""

    def __init__(self, in_channels: int, skip_channels: int, channels: int, num_classes: int) -> None:
        super().__init__()
        self.prev = nn.Sequential(nn.Conv2d(in_channels, channels, 1), nn.ReLU(True))
        self.skip = nn.Conv2d(skip_channels, channels, 1)
        self.fuse = _conv_bn_relu(2 * channels, channels)
        self.side = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # A 1x1 conv commutes with bilinear resizing (weights sum to 1), so it runs at the encoder's resolution:
        # same result as resize-then-conv without upsampling 2048 ResNet-50 channels by 16x.
        skip = F.relu(F.interpolate(self.skip(skip), size=x.shape[-2:], mode="bilinear", align_corners=False))
        x = self.fuse(torch.cat([self.prev(x), skip], 1))  # (B, C_spf, h, w)
        return x, self.side(x)


class GeoAwareNet(nn.Module):
    """Shared encoder, semantic + depth decoders, FeatProp (add / VanConv / GAP) and SPF (Jiao et al., CVPR 2019).

    Args:
        num_classes: K.
        encoder_name: encoder of :class:`Encoder` (ResNet-50 in the paper).
        encoder_weights: ``imagenet`` or None.
        in_channels: 3 (RGB) or 6 (RGB + HHA, the "+HHA" row of Table 4).
        decoder_channels: widths of the four up-projection stages (both decoders).
        depth_branch: the depth decoder and head (DepEm); False = semantic branch only.
        fusion: how G enters the semantic branch at each decoder scale: ``"none"`` (DepEm: shared encoder only),
            ``"add"`` (FeatProp), ``"vanconv"`` or ``"gap"``.
        scale_propagation: FeatProp's propagation of every decoder scale into the last decoder layer.
        gap_form, gap_key_channels, gap_positive: :class:`GAP` options.
        spf: four SPF blocks with side outputs; False = a 1x1 classifier on the last decoder layer.
        spf_channels: width of the SPF blocks.

    Shape:
        (B, in_channels, H, W) -> dict: ``logits`` (B, K, H, W); ``side`` list of (B, K, H, W) side outputs of SPF
        blocks 1-3 (the 4th is ``logits``); ``depth`` (B, 1, H, W) metres (softplus head) or None.
    """

    def __init__(
        self, num_classes: int, encoder_name: str = "resnet50", encoder_weights: str | None = None,
        in_channels: int = 3, decoder_channels: tuple[int, ...] = (256, 128, 64, 64), depth_branch: bool = True,
        fusion: str = "gap", scale_propagation: bool = True, gap_form: str = "linear", gap_key_channels: int = 32,
        gap_positive: str = "softplus", spf: bool = True, spf_channels: int = 64,
    ) -> None:  # fmt: skip
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"GeoAwareNet: fusion must be one of {FUSIONS}, got {fusion!r}")
        if fusion != "none" and not depth_branch:
            raise ValueError(f"GeoAwareNet: fusion={fusion!r} needs depth_branch=True (G comes from the depth branch)")
        if len(decoder_channels) != 4:
            raise ValueError(f"GeoAwareNet: decoder_channels needs four widths, got {decoder_channels}")
        self.encoder = Encoder(encoder_name, encoder_weights, in_channels=in_channels, depth=5)
        top = self.encoder.out_channels[-1]
        chans = tuple(int(c) for c in decoder_channels)
        self.semantic = Decoder(top, chans)
        self.depth = Decoder(top, chans) if depth_branch else None
        if fusion == "none":
            self.fusion = None
        else:
            make = {"add": lambda c: AddFusion(), "vanconv": lambda c: VanConv(c, c),
                    "gap": lambda c: GAP(c, c, gap_key_channels, gap_form, gap_positive)}[fusion]  # fmt: skip
            self.fusion = nn.ModuleList(make(c) for c in chans)
        # FeatProp: decoder scales 1-3 projected onto the last layer's width and summed into it.
        self.scale_proj = nn.ModuleList(nn.Conv2d(c, chans[-1], 1) for c in chans[:-1]) if scale_propagation else None
        if spf:
            skips = self.encoder.out_channels[1:][::-1]  # encoder levels at strides 32, 16, 8, 4
            ins = [chans[-1]] + [spf_channels] * 3
            self.spf = nn.ModuleList(SPFBlock(i, s, spf_channels, num_classes) for i, s in zip(ins, skips, strict=True))
            self.classifier = None
        else:
            self.spf = None
            self.classifier = nn.Conv2d(chans[-1], num_classes, 1)
        if depth_branch:
            self.depth_head = nn.Conv2d(chans[-1], 1, 3, padding=1)
            nn.init.constant_(self.depth_head.bias, float(torch.log(torch.expm1(torch.tensor(_DEPTH_INIT_M)))))
        else:
            self.depth_head = None

    def semantic_modules(self) -> list[nn.Module]:
        """The semantic branch: decoder, fusion, scale propagation and classifier (SPF excluded)."""
        return [m for m in (self.semantic, self.fusion, self.scale_proj, self.classifier) if m is not None]

    def depth_modules(self) -> list[nn.Module]:
        return [m for m in (self.depth, self.depth_head) if m is not None]

    def forward(self, x: torch.Tensor) -> dict:
        x, (H, W) = pad_to_multiple(x, 32)
        feats = self.encoder(x)  # strides 2, 4, 8, 16, 32
        s = d = feats[-1]
        sem_scales, g = [], None
        for k, stage in enumerate(self.semantic.stages):
            s = stage(s)  # (B, C_k, h_k, w_k)
            if self.depth is not None:
                d = self.depth.stages[k](d)  # Eq. 1-2: G_k, the depth-aware embedding at this scale
                g = d
            if self.fusion is not None:
                s = self.fusion[k](s, g)  # FeatProp / VanConv / GAP (Eq. 5)
            sem_scales.append(s)
        if self.scale_proj is not None:
            size = s.shape[-2:]
            for proj, f in zip(self.scale_proj, sem_scales[:-1], strict=True):
                s = s + F.interpolate(proj(f), size=size, mode="bilinear", align_corners=False)
        side = []
        if self.spf is not None:
            for block, skip in zip(self.spf, feats[1:][::-1], strict=True):
                s, logits = block(s, skip)
                side.append(logits)
            logits = side.pop()  # the last SPF's output is the prediction
        else:
            logits = self.classifier(s)
        size = x.shape[-2:]

        def full(t: torch.Tensor) -> torch.Tensor:  # stride 2 -> input resolution, padding cropped
            return F.interpolate(t, size=size, mode="bilinear", align_corners=False)[..., :H, :W]

        depth = None
        if self.depth_head is not None:
            depth = F.softplus(full(self.depth_head(g)))  # (B, 1, H, W) metres, > 0
        return {"logits": full(logits), "side": [full(t) for t in side], "depth": depth}

"""GeoAwareNet: Geometry-Aware Distillation for Indoor Semantic Segmentation (Jiao et al., CVPR 2019), Fig. 2.

Shared encoder -> semantic and depth decoders (four up-projection stages each, stride 32 -> 2); the depth decoder's
stage features are the depth-aware embedding G_k (Eq. 1-2). FeatProp sums G_k into the semantic decoder at every
scale, and scale propagation adds each decoder's scales 1-3 into its last layer. ONE geometry-aware propagation block
(GAP, Eq. 3-5) then distils the semantic branch's last feature over the affinity of the final embedding G; a head
predicts from the distilled feature, and SPF (Fig. 4) refines it with encoder features, one side output per block.
"""

import torch
import torch.nn.functional as F
from torch import nn

from indoor_parsing.models.blocks import conv_bn_relu, pad_to_multiple, to_input_size
from indoor_parsing.models.encoders import Encoder
from indoor_parsing.models.gap import GAP, VanConv

FUSIONS = ("none", "vanconv", "gap")
PLACEMENTS = ("end", "every_scale")
_DEPTH_INIT_M = 2.5  # softplus(bias) at initialisation: a typical indoor depth, so berHu starts small


def he_init(modules: list[nn.Module]) -> None:
    """He (Kaiming) normal initialisation of every conv (He et al., ICCV 2015, fan-in); BN to identity, biases 0."""
    for module in modules:
        for layer in module.modules():
            if isinstance(layer, nn.Conv2d):
                nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)
            elif isinstance(layer, nn.BatchNorm2d):
                nn.init.ones_(layer.weight)
                nn.init.zeros_(layer.bias)


def stop_gradient(t: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
    """``t`` with its gradient stopped for the frames where ``keep`` (B,) is False; unchanged when keep is None."""
    if keep is None:
        return t
    return torch.where(keep.view(-1, *([1] * (t.dim() - 1))), t, t.detach())


class UpProjection(nn.Module):
    """Up-projection (Laina et al., 3DV 2016) with 3x3 kernels: x2 upsample, two convs plus a projection shortcut.

    ``upsample=False`` keeps the resolution: the stage that mirrors a dilated (not downsampling) encoder stage.
    """

    def __init__(self, in_channels: int, out_channels: int, upsample: bool = True) -> None:
        super().__init__()
        self.upsample = upsample
        self.branch = nn.Sequential(
            conv_bn_relu(in_channels, out_channels),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                                      nn.BatchNorm2d(out_channels))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)  # (B, C_in, 2h, 2w)
        return F.relu(self.branch(x) + self.shortcut(x))


class Decoder(nn.Module):
    """Four up-projection stages from the encoder's last feature; ``forward`` returns every stage (stride 16 .. 2).

    From a stride-16 (dilated) encoder the first stage keeps the resolution, so the stages still end at stride 2.
    """

    def __init__(self, in_channels: int, channels: tuple[int, ...], encoder_output_stride: int = 32) -> None:
        super().__init__()
        widths = [in_channels, *channels]
        self.stages = nn.ModuleList(
            UpProjection(widths[k], widths[k + 1], upsample=k > 0 or encoder_output_stride == 32)
            for k in range(len(channels))
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out


class ScalePropagation(nn.Module):
    """FeatProp's scale propagation: decoder scales 1-3, 1x1-projected and upsampled, added to the last layer."""

    def __init__(self, channels: tuple[int, ...]) -> None:
        super().__init__()
        self.proj = nn.ModuleList(nn.Conv2d(c, channels[-1], 1) for c in channels[:-1])

    def forward(self, scales: list[torch.Tensor]) -> torch.Tensor:
        out = scales[-1]  # (B, C_4, h, w)
        for proj, f in zip(self.proj, scales[:-1], strict=True):
            out = out + F.interpolate(proj(f), size=out.shape[-2:], mode="bilinear", align_corners=False)
        return out


class SPFBlock(nn.Module):
    """One SPF block (Fig. 4): the previous feature through 1x1 conv + ReLU; the level's encoder feature through
    1x1 conv + ReLU, then resized (activation before the resize, as drawn); concatenated, a 3x3 conv (+ BN + ReLU,
    for stable training at lr 1e-2), and a 1x1 side classifier."""

    def __init__(self, in_channels: int, skip_channels: int, channels: int, num_classes: int) -> None:
        super().__init__()
        self.prev = nn.Sequential(nn.Conv2d(in_channels, channels, 1), nn.ReLU(True))
        self.skip = nn.Sequential(nn.Conv2d(skip_channels, channels, 1), nn.ReLU(True))
        self.fuse = conv_bn_relu(2 * channels, channels)
        self.side = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Conv + ReLU at the encoder's resolution, then the resize: no 2048-channel map upsampled 16-fold.
        skip = F.interpolate(self.skip(skip), size=x.shape[-2:], mode="bilinear", align_corners=False)
        x = self.fuse(torch.cat([self.prev(x), skip], 1))  # (B, C_spf, h, w)
        return x, self.side(x)


class GeoAwareNet(nn.Module):
    """Shared encoder, semantic + depth decoders, FeatProp, GAP and SPF (Jiao et al., CVPR 2019, Fig. 2).

    Every switch adds or changes one component (the rows of Table 4).

    Args:
        num_classes: K.
        encoder_name: encoder of :class:`Encoder` (ResNet-50 in the paper).
        encoder_weights: ``imagenet`` or None.
        in_channels: 3 (RGB) or 6 (RGB + HHA, the "+HHA" row of Table 4).
        decoder_channels: widths of the four up-projection stages (both decoders).
        depth_branch: the depth decoder and head (DepEm); False = semantic branch only.
        featprop: FeatProp, the sum ``s_k + G_k`` of depth-decoder features into the semantic decoder at every scale.
        scale_propagation: each decoder's scales 1-3 propagated into its last layer.
        fusion: the block that distils the semantic features with G: ``"gap"`` (Eq. 3-5), ``"vanconv"`` (Fig. 3
            bottom) or ``"none"``.
        gap_placement: ``"end"`` (one block on the semantic branch's last feature, Fig. 2) or ``"every_scale"``
            (one block per decoder scale, after the FeatProp sum; a variant).
        gap_form, gap_key_channels, gap_positive: :class:`GAP` options.
        spf: four SPF blocks with side outputs; False = the distilled head is the prediction.
        spf_channels: width of the SPF blocks.
        encoder_output_stride: 32 (the paper's encoder) or 16 (last stage dilated; the decoders' first stage then
            keeps the resolution, mirroring it, so both still end at stride 2). For small inputs: at 96x128, 16
            keeps a 6x8 bottleneck grid instead of 3x4.

    Shape:
        x (B, in_channels, H, W), depth_frames optional (B,) bool -> dict: ``logits`` (B, K, H, W) the prediction;
        with SPF, ``distilled`` (B, K, H, W) the head on the distilled features (without SPF it is ``logits``) and
        ``side`` list of (B, K, H, W), SPF blocks 1-3 (the 4th is ``logits``); ``depth`` (B, 1, H, W) metres with the
        depth branch.
    """

    def __init__(
        self, num_classes: int, encoder_name: str = "resnet50", encoder_weights: str | None = None,
        in_channels: int = 3, decoder_channels: tuple[int, ...] = (256, 128, 64, 64), depth_branch: bool = True,
        featprop: bool = True, scale_propagation: bool = True, fusion: str = "gap", gap_placement: str = "end",
        gap_form: str = "linear", gap_key_channels: int = 32, gap_positive: str = "softplus", spf: bool = True,
        spf_channels: int = 64, encoder_output_stride: int = 32,
    ) -> None:  # fmt: skip
        super().__init__()
        if fusion not in FUSIONS:
            hint = " (the plain sum is featprop=True)" if fusion == "add" else ""
            raise ValueError(f"GeoAwareNet: fusion must be one of {FUSIONS}, got {fusion!r}{hint}")
        if gap_placement not in PLACEMENTS:
            raise ValueError(f"GeoAwareNet: gap_placement must be one of {PLACEMENTS}, got {gap_placement!r}")
        if (featprop or fusion != "none") and not depth_branch:
            raise ValueError("GeoAwareNet: featprop and fusion need depth_branch=True (G comes from the depth branch)")
        if gap_placement != "end" and fusion == "none":
            raise ValueError("GeoAwareNet: gap_placement='every_scale' needs a fusion block ('gap' or 'vanconv')")
        if encoder_output_stride not in (16, 32):
            raise ValueError(f"GeoAwareNet: encoder_output_stride must be 16 or 32, got {encoder_output_stride}")
        if len(decoder_channels) != 4:
            raise ValueError(f"GeoAwareNet: decoder_channels needs four widths, got {decoder_channels}")
        self.featprop = featprop
        self.every_scale = gap_placement == "every_scale"
        self.encoder = Encoder(encoder_name, encoder_weights, in_channels=in_channels, depth=5,
                               output_stride=encoder_output_stride)  # fmt: skip
        top = self.encoder.out_channels[-1]
        chans = tuple(int(c) for c in decoder_channels)
        self.semantic = Decoder(top, chans, encoder_output_stride)
        self.semantic_scales = ScalePropagation(chans) if scale_propagation else None
        self.depth = Decoder(top, chans, encoder_output_stride) if depth_branch else None
        self.depth_scales = ScalePropagation(chans) if scale_propagation and depth_branch else None
        self.depth_head = nn.Conv2d(chans[-1], 1, 3, padding=1) if depth_branch else None
        if fusion == "none":
            self.fusion = None
        else:
            make = {"vanconv": lambda c: VanConv(c, c),
                    "gap": lambda c: GAP(c, c, gap_key_channels, gap_form, gap_positive)}[fusion]  # fmt: skip
            self.fusion = nn.ModuleList(make(c) for c in (chans if self.every_scale else chans[-1:]))
        self.head = nn.Conv2d(chans[-1], num_classes, 1)  # prediction from the distilled features
        if spf:
            skips = self.encoder.out_channels[1:][::-1]  # encoder levels at strides 32, 16, 8, 4 (OS 16: 16, 16, 8, 4)
            ins = [chans[-1]] + [spf_channels] * 3
            self.spf = nn.ModuleList(SPFBlock(i, s, spf_channels, num_classes) for i, s in zip(ins, skips, strict=True))
        else:
            self.spf = None
        he_init(self.semantic_modules() + ([self.spf] if self.spf is not None else []) + self.depth_modules())
        if self.depth_head is not None:
            nn.init.constant_(self.depth_head.bias, float(torch.log(torch.expm1(torch.tensor(_DEPTH_INIT_M)))))

    def semantic_modules(self) -> list[nn.Module]:
        """The semantic branch: decoder, scale propagation, fusion and the distilled head (SPF excluded)."""
        return [m for m in (self.semantic, self.semantic_scales, self.fusion, self.head) if m is not None]

    def depth_modules(self) -> list[nn.Module]:
        """The depth-only parts: depth decoder, its scale propagation and the depth head."""
        return [m for m in (self.depth, self.depth_scales, self.depth_head) if m is not None]

    def forward(self, x: torch.Tensor, depth_frames: torch.Tensor | None = None) -> dict:
        x, size = pad_to_multiple(x, 32)
        feats = self.encoder(x)  # strides 2, 4, 8, 16, 32 (capped at encoder_output_stride)
        g_scales, g, depth = [], None, None
        if self.depth is not None:
            g_scales = self.depth(feats[-1])  # Eq. 1-2: G_k, the depth-aware embedding at each scale
            g = self.depth_scales(g_scales) if self.depth_scales is not None else g_scales[-1]
            depth = self.depth_head(g)
            # Table 5: frames without depth run the depth branch for inference only; the semantic branch reads their
            # G without gradient, so no loss of theirs reaches the depth-only parts.
            g_scales = [stop_gradient(t, depth_frames) for t in g_scales]
            g = stop_gradient(g, depth_frames)
        s, sem_scales = feats[-1], []
        for k, stage in enumerate(self.semantic.stages):
            s = stage(s)  # (B, C_k, h_k, w_k)
            if self.featprop:
                s = s + g_scales[k]  # FeatProp: depth features summed into the semantic decoder
            if self.every_scale:
                s = self.fusion[k](s, g_scales[k])  # variant: GAP (Eq. 5) at this scale
            sem_scales.append(s)
        s = self.semantic_scales(sem_scales) if self.semantic_scales is not None else s
        if self.fusion is not None and not self.every_scale:
            s = self.fusion[0](s, g)  # Eq. 5: the one GAP block, on the semantic branch's last feature
        distilled = self.head(s)
        side = []
        if self.spf is not None:
            for block, skip in zip(self.spf, feats[1:][::-1], strict=True):
                s, logits = block(s, skip)
                side.append(logits)
        padded = x.shape[-2:]

        def full(t: torch.Tensor) -> torch.Tensor:  # stride 2 -> input resolution, padding cropped
            return to_input_size(t, padded, size)

        out = {"logits": full(side[-1] if side else distilled)}
        if side:
            out |= {"distilled": full(distilled), "side": [full(t) for t in side[:-1]]}
        if depth is not None:
            out["depth"] = F.softplus(full(depth))  # (B, 1, H, W) metres, > 0
        return out

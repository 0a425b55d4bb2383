"""PSPNet (Zhao et al., CVPR 2017) as the 2D student of 3D-to-2D Distillation (Liu, Qi, Fu, CVPR 2021), with DN.

``mode`` selects the row of the paper's comparison:

- ``baseline``: PSPNet; f_2D (the 3x3 bottleneck after pyramid pooling) -> classifier.
- ``distill``: f_2D -> Conv1 -> DN1 -> Conv2 = f_3D_sim (Fig. 2); Conv3 maps f_3D_sim to f_2D's width and DN2 moves
  it to f_2D's channel-wise distribution; classifier on concat(f_2D, DN2(Conv3(f_3D_sim))). Each "Conv" is a 3x3
  then a 1x1 convolution.
- ``multitask``: the same branch, supervised by depth through a 1x1 depth head instead of by 3D features.
- ``cascade``: a depth network, trained first and frozen (methods/cascade_depth.py), predicts depth from RGB; PSPNet
  reads RGB + predicted depth (4 channels).
"""

import torch
import torch.nn.functional as F
from torch import nn

from indoor_parsing.models.blocks import AuxHead, conv_bn_relu, pad_to_multiple, to_input_size
from indoor_parsing.models.encoders import Encoder

MODES = ("baseline", "distill", "multitask", "cascade")


def conv3_conv1(cin: int, cout: int) -> nn.Sequential:
    """The paper's "Conv": a 3x3 then a 1x1 convolution."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(True), nn.Conv2d(cout, cout, 1))


class DistributionNorm(nn.Module):
    """Dimension normalisation (Table 1, DN; Sec. 3.2): ``y = Δσ ⊙ (σ̄ ⊙ (x − μ) / σ + μ̄) + Δμ``.

    ``μ, σ`` are channel-wise batch statistics of ``x`` while training and their running averages at inference (as
    BN); ``μ̄, σ̄`` are channel-wise target statistics; ``Δσ`` (init 1) and ``Δμ`` (init 0) are learnable per channel.
    DN1 (``track_target=False``) targets the teacher's global 3D feature statistics, precomputed over all teacher
    point features and set once from the feature cache (:meth:`set_target`). DN2 (``track_target=True``) targets the
    channel-wise statistics of f_2D, a running estimate over the training batches seen so far (the first batch sets
    it): a batch is normalised with the estimate from the batches before it, never with its own f_2D statistics.
    Target statistics are buffers (saved in checkpoints) and never receive gradient.

    Args:
        channels: C of ``x`` (and of the target statistics).
        momentum: running-average factor of the batch statistics and of DN2's target.
        eps: added to the variance.
        track_target: DN2 (running target from a reference feature) instead of DN1 (a fixed, set target).

    Shape:
        x (B, C, H, W), reference (B, C, H', W') -> (B, C, H, W).
    """

    def __init__(self, channels: int, momentum: float = 0.1, eps: float = 1e-5, track_target: bool = False):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, eps=eps, momentum=momentum, affine=False)  # (x − μ) / σ, channel-wise
        self.register_buffer("target_mean", torch.zeros(channels))  # μ̄
        self.register_buffer("target_std", torch.ones(channels))  # σ̄
        self.register_buffer("target_seen", torch.zeros((), dtype=torch.bool))  # DN2: estimate initialised
        self.delta_std = nn.Parameter(torch.ones(channels))  # Δσ
        self.delta_mean = nn.Parameter(torch.zeros(channels))  # Δμ
        self.track_target = track_target
        self.momentum = momentum

    @torch.no_grad()
    def set_target(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.target_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.target_std.copy_(torch.as_tensor(std, dtype=torch.float32))
        self.target_seen.fill_(True)

    @torch.no_grad()
    def _track(self, reference: torch.Tensor) -> None:
        """DN2: fold the reference's channel-wise statistics into the running target (after it was used)."""
        if reference.shape[1] != self.target_mean.numel():
            raise ValueError(f"DistributionNorm: reference has {reference.shape[1]} channels, expected "
                             f"{self.target_mean.numel()}")  # fmt: skip
        ref = reference.detach().float().transpose(0, 1).flatten(1)  # (C, B*H'*W'), float32 under autocast
        mean, std = ref.mean(1), ref.std(1)  # (C,)
        if not bool(self.target_seen):
            self.set_target(mean, std)
            return
        self.target_mean.lerp_(mean, self.momentum)
        self.target_std.lerp_(std, self.momentum)

    def forward(self, x: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
        update = self.track_target and self.training
        if update and reference is None:
            raise ValueError("DistributionNorm(track_target=True) needs the reference feature while training")
        if update and not bool(self.target_seen):
            self._track(reference)  # the very first batch: no earlier estimate exists
            update = False
        # copies: the in-place DN2 update below must not change what backward saved
        mean, std = self.target_mean.clone().view(1, -1, 1, 1), self.target_std.clone().view(1, -1, 1, 1)
        y = std * self.norm(x) + mean  # Table 1, DN: σ̄ ⊙ (x − μ) / σ + μ̄
        y = self.delta_std.view(1, -1, 1, 1) * y + self.delta_mean.view(1, -1, 1, 1)  # Δσ ⊙ (...) + Δμ
        if update:
            self._track(reference)
        return y


class PyramidPooling(nn.Module):
    """PSPNet's pyramid pooling module: pooled at ``bins``, reduced, upsampled and concatenated to the input.

    Shape:
        (B, C, h, w) -> (B, 2C, h, w) for 4 bins (C + 4 * C/4).
    """

    def __init__(self, in_channels: int, bins: tuple[int, ...] = (1, 2, 3, 6)):
        super().__init__()
        red = in_channels // len(bins)
        self.stages = nn.ModuleList(nn.Sequential(nn.AdaptiveAvgPool2d(b), conv_bn_relu(in_channels, red, 1))
                                    for b in bins)  # fmt: skip
        self.out_channels = in_channels + red * len(bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pooled = [F.interpolate(s(x), size, mode="bilinear", align_corners=True) for s in self.stages]
        return torch.cat([x, *pooled], 1)


class DepthNet(nn.Module):
    """Monocular depth for the Cascade row: encoder (output stride 8) + 3x3/1x1 head, softplus metres.

    Trained on its own first (:class:`~indoor_parsing.methods.cascade_depth.CascadeDepthModule`), then frozen inside
    :class:`PSPNetStudent` (``frozen=True``: no parameter needs a gradient, BN stays in inference mode).

    Shape:
        (B, 3, H, W) -> (B, 1, H, W) metres (a tensor: a depth model, not a segmenter).
    """

    def __init__(self, encoder_name: str, encoder_weights: str | None, channels: int = 128, frozen: bool = False):
        super().__init__()
        self.encoder = Encoder(encoder_name, encoder_weights, output_stride=8)
        self.head = nn.Sequential(conv_bn_relu(self.encoder.out_channels[-1], channels), nn.Conv2d(channels, 1, 1))
        self.frozen = frozen
        if frozen:
            self.requires_grad_(False)

    def train(self, mode: bool = True) -> "DepthNet":
        return super().train(mode and not self.frozen)  # a frozen net keeps its BN running statistics

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x, size = pad_to_multiple(image, 8)
        depth = F.softplus(self.head(self.encoder(x)[-1]))  # (B, 1, H8/8, W8/8)
        return to_input_size(depth, x.shape[-2:], size)


class PSPNetStudent(nn.Module):
    """PSPNet on a dilated encoder (output stride 8) with the 3D-to-2D distillation branch.

    Args:
        num_classes: K.
        encoder_name: encoder of :class:`Encoder` (``resnet50`` in the paper).
        encoder_weights: ``imagenet`` or None.
        mode: one of :data:`MODES`.
        feat_channels: C3, the teacher's feature channels (96 in the paper).
        norm: ``dn`` (dimension normalisation, Table 1) or ``bn`` (plain BatchNorm; Table 7's ablation).
        bins: pyramid pooling bins.
        decoder_channels: channels of f_2D.
        aux: auxiliary head on the stage-4 features (PSPNet's deep supervision).
        dropout: dropout before the classifiers.
        cascade_depth_scale: metres divided out of the predicted depth before it enters the Cascade network.

    Shape:
        image (B, 3, H, W) -> dict with ``logits`` (B, K, H, W); ``f2d`` (B, decoder_channels, h, w), h = ceil(H / 8);
        ``aux`` (B, K, H, W) while training; ``sim3d`` (B, C3, h, w) in distill / multitask; ``depth`` (B, 1, H, W)
        in multitask and in cascade (the frozen depth network's prediction, no gradient).
    """

    stride = 8

    def __init__(self, num_classes: int, encoder_name: str = "resnet50", encoder_weights: str | None = None,
                 mode: str = "distill", feat_channels: int = 96, norm: str = "dn", bins: tuple[int, ...] = (1, 2, 3, 6),
                 decoder_channels: int = 512, aux: bool = True, dropout: float = 0.1,
                 cascade_depth_scale: float = 5.0):  # fmt: skip
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"PSPNetStudent: mode must be one of {MODES}, got {mode!r}")
        if norm not in ("dn", "bn"):
            raise ValueError(f"PSPNetStudent: norm must be 'dn' or 'bn', got {norm!r}")
        self.mode, self.norm_kind = mode, norm
        self.cascade_depth_scale = cascade_depth_scale
        self.depth_net = DepthNet(encoder_name, encoder_weights, frozen=True) if mode == "cascade" else None
        in_ch = 4 if mode == "cascade" else 3
        self.encoder = Encoder(encoder_name, encoder_weights, in_channels=in_ch, output_stride=self.stride)
        c4, c5 = self.encoder.out_channels[-2:]
        self.ppm = PyramidPooling(c5, tuple(bins))
        self.bottleneck = conv_bn_relu(self.ppm.out_channels, decoder_channels)  # -> f_2D
        cls_in = decoder_channels
        if mode in ("distill", "multitask"):
            self.conv1 = conv3_conv1(decoder_channels, feat_channels)
            self.norm1 = self._norm(feat_channels, track_target=False)
            self.conv2 = conv3_conv1(feat_channels, feat_channels)  # -> f_3D_sim
            self.conv3 = conv3_conv1(feat_channels, decoder_channels)
            self.norm2 = self._norm(decoder_channels, track_target=True)  # f_2D's channel-wise statistics
            self.depth_head = nn.Conv2d(feat_channels, 1, 1) if mode == "multitask" else None
            cls_in = 2 * decoder_channels
        self.classifier = nn.Sequential(nn.Dropout2d(dropout), nn.Conv2d(cls_in, num_classes, 1))
        self.aux_head = None
        if aux:
            self.aux_head = AuxHead(c4, num_classes, 256, dropout)

    def _norm(self, channels: int, track_target: bool) -> nn.Module:
        # Multitask has no 3D statistics to aim at; it and the Table 7 ablation use plain BN.
        if self.norm_kind == "dn" and self.mode == "distill":
            return DistributionNorm(channels, track_target=track_target)
        return nn.BatchNorm2d(channels)

    def _apply_norm(self, norm: nn.Module, x: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
        return norm(x, reference) if isinstance(norm, DistributionNorm) else norm(x)

    def set_feature_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Global per-channel mean / std of the teacher's features (DN1's target)."""
        if not isinstance(getattr(self, "norm1", None), DistributionNorm):
            return
        self.norm1.set_target(mean, std)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        x, size = pad_to_multiple(image, self.stride)
        padded = x.shape[-2:]
        out = {}
        if self.depth_net is not None:
            with torch.no_grad():  # the frozen, pretrained depth network (the paper's cascade)
                depth = self.depth_net(x)  # (B, 1, H8, W8), H8 = 8 ceil(H / 8)
            out["depth"] = to_input_size(depth, padded, size)
            x = torch.cat([x, depth / self.cascade_depth_scale], 1)  # (B, 4, H8, W8)
        feats = self.encoder(x)
        f2d = self.bottleneck(self.ppm(feats[-1]))  # (B, D, h, w)
        out["f2d"] = f2d
        head_in = f2d
        if self.mode in ("distill", "multitask"):
            sim3d = self.conv2(self._apply_norm(self.norm1, self.conv1(f2d)))  # Sec. 3.2 DN1 -> f_3D_sim (B, C3, h, w)
            back = self._apply_norm(self.norm2, self.conv3(sim3d), reference=f2d)  # Sec. 3.2 DN2 -> (B, D, h, w)
            out["sim3d"] = sim3d
            head_in = torch.cat([f2d, back], 1)  # (B, 2D, h, w)
            if self.depth_head is not None:
                out["depth"] = to_input_size(F.softplus(self.depth_head(sim3d)), padded, size)  # from (B, 1, h, w)
        out["logits"] = to_input_size(self.classifier(head_in), padded, size)  # from (B, K, h, w)
        if self.aux_head is not None and self.training:
            out["aux"] = to_input_size(self.aux_head(feats[-2]), padded, size)
        return out

"""The 3D teacher of 3D-to-2D Distillation: a MinkUNet sparse-voxel U-Net (Choy et al., CVPR 2019).

The backend interface is small on purpose (DESIGN.md: MinkowskiEngine lives here only, imported lazily):

- :func:`point_inputs` turns a point cloud into per-point input features (colour, as the MinkowskiEngine ScanNet
  models use);
- :meth:`Teacher3D.forward` voxelises a batch of points (``voxel_size``, averaging the features of the points that
  share a voxel), runs the U-Net and slices the voxel outputs back to the points: per-point logits and per-point
  penultimate features (the features the 2D student distils; 96 channels with the paper's planes).

Another backend only has to provide a module with the same ``forward`` signature.

Module names follow MinkowskiEngine's ``examples/minkunet.py`` (and the ``Res16UNet`` family of
SpatioTemporalSegmentation), so their checkpoints load with :meth:`Teacher3D.load_external`; the expected keys are
``conv0p1s1.kernel``, ``bn0.bn.{weight,bias,running_mean,running_var}``, ``conv{1..4}p{1,2,4,8}s2.kernel``,
``bn{1..4}.bn.*``, ``block{1..8}.<i>.{conv1,conv2}.kernel``, ``block{k}.<i>.{norm1,norm2}.bn.*``,
``block{k}.0.downsample.{0.kernel,1.bn.*}``, ``convtr{4..7}p{16,8,4,2}s2.kernel``, ``bntr{4..7}.bn.*``,
``final.{kernel,bias}`` (MinkowskiEngine >= 0.5 kernels are (kernel volume, C_in, C_out)).
"""

import logging
from pathlib import Path

import torch
from torch import nn

from indoor_parsing.io import DataFileError
from indoor_parsing.models.minkowski_backend import import_minkowski

log = logging.getLogger(__name__)

# Presets of (layers per block) from MinkowskiEngine's model zoo; ``planes`` ends with the feature channels.
MINKUNET14 = (1, 1, 1, 1, 1, 1, 1, 1)
MINKUNET18 = (2, 2, 2, 2, 2, 2, 2, 2)
MINKUNET34 = (2, 3, 4, 6, 2, 2, 2, 2)
PAPER_PLANES = (32, 64, 128, 256, 256, 128, 96, 96)  # MinkUNet34C / Res16UNet34C: 96 feature channels


def point_inputs(rgb: torch.Tensor) -> torch.Tensor:
    """uint8 colours (N, 3) -> input features (N, 3) in [-0.5, 0.5] (MinkowskiEngine's ScanNet convention)."""
    return rgb.float() / 255.0 - 0.5


class MinkUNet(nn.Module):
    """MinkUNet (MinkowskiEngine ``examples/minkunet.py``) returning the penultimate features and the logits.

    Args:
        in_channels: per-point input channels.
        num_classes: K.
        planes: channels of the 8 blocks (4 down, 4 up); the last one is the feature width.
        layers: BasicBlocks per block (``MINKUNET14`` / ``18`` / ``34``).
        init_dim: channels of the stem.
        conv0_kernel: kernel size of the stem convolution (5 in the MinkowskiEngine zoo).
        bn_momentum: batch-norm momentum.
    """

    def __init__(self, in_channels: int, num_classes: int, planes: tuple[int, ...] = PAPER_PLANES,
                 layers: tuple[int, ...] = MINKUNET14, init_dim: int = 32, conv0_kernel: int = 5,
                 bn_momentum: float = 0.1):  # fmt: skip
        super().__init__()
        if len(planes) != 8 or len(layers) != 8:
            raise ValueError(f"MinkUNet: planes and layers need 8 entries each, got {planes} and {layers}")
        ME = import_minkowski()
        from MinkowskiEngine.modules.resnet_block import BasicBlock

        D = 3
        self.bn_momentum = bn_momentum

        def conv(cin, cout, k, s=1, transpose=False, bias=False):
            cls = ME.MinkowskiConvolutionTranspose if transpose else ME.MinkowskiConvolution
            return cls(cin, cout, kernel_size=k, stride=s, bias=bias, dimension=D)

        def bn(c):
            return ME.MinkowskiBatchNorm(c, momentum=bn_momentum)

        def make_layer(inplanes, planes_, blocks):
            down = None
            if inplanes != planes_:
                down = nn.Sequential(conv(inplanes, planes_, 1), bn(planes_))
            out = [BasicBlock(inplanes, planes_, downsample=down, bn_momentum=bn_momentum, dimension=D)]
            out += [BasicBlock(planes_, planes_, bn_momentum=bn_momentum, dimension=D) for _ in range(1, blocks)]
            return nn.Sequential(*out)

        p, n = planes, layers
        self.conv0p1s1, self.bn0 = conv(in_channels, init_dim, conv0_kernel), bn(init_dim)
        self.conv1p1s2, self.bn1 = conv(init_dim, init_dim, 2, 2), bn(init_dim)
        self.block1 = make_layer(init_dim, p[0], n[0])
        self.conv2p2s2, self.bn2 = conv(p[0], p[0], 2, 2), bn(p[0])
        self.block2 = make_layer(p[0], p[1], n[1])
        self.conv3p4s2, self.bn3 = conv(p[1], p[1], 2, 2), bn(p[1])
        self.block3 = make_layer(p[1], p[2], n[2])
        self.conv4p8s2, self.bn4 = conv(p[2], p[2], 2, 2), bn(p[2])
        self.block4 = make_layer(p[2], p[3], n[3])
        self.convtr4p16s2, self.bntr4 = conv(p[3], p[4], 2, 2, transpose=True), bn(p[4])
        self.block5 = make_layer(p[4] + p[2], p[4], n[4])
        self.convtr5p8s2, self.bntr5 = conv(p[4], p[5], 2, 2, transpose=True), bn(p[5])
        self.block6 = make_layer(p[5] + p[1], p[5], n[5])
        self.convtr6p4s2, self.bntr6 = conv(p[5], p[6], 2, 2, transpose=True), bn(p[6])
        self.block7 = make_layer(p[6] + p[0], p[6], n[6])
        self.convtr7p2s2, self.bntr7 = conv(p[6], p[7], 2, 2, transpose=True), bn(p[7])
        self.block8 = make_layer(p[7] + init_dim, p[7], n[7])
        self.final = conv(p[7], num_classes, 1, bias=True)
        self.relu = ME.MinkowskiReLU(inplace=True)
        self.out_channels = p[7]
        for m in self.modules():  # MinkowskiEngine's ResNetBase.weight_initialization
            if isinstance(m, ME.MinkowskiConvolution | ME.MinkowskiConvolutionTranspose):
                nn.init.kaiming_normal_(m.kernel, mode="fan_out", nonlinearity="relu")
            if isinstance(m, ME.MinkowskiBatchNorm):
                nn.init.constant_(m.bn.weight, 1)
                nn.init.constant_(m.bn.bias, 0)

    def forward(self, x):
        """Sparse tensor -> (penultimate features, logits), both on the input's coordinates (stride 1)."""
        ME = import_minkowski()
        p1 = self.relu(self.bn0(self.conv0p1s1(x)))
        b1 = self.block1(self.relu(self.bn1(self.conv1p1s2(p1))))  # stride 2
        b2 = self.block2(self.relu(self.bn2(self.conv2p2s2(b1))))  # stride 4
        b3 = self.block3(self.relu(self.bn3(self.conv3p4s2(b2))))  # stride 8
        out = self.block4(self.relu(self.bn4(self.conv4p8s2(b3))))  # stride 16
        out = self.block5(ME.cat(self.relu(self.bntr4(self.convtr4p16s2(out))), b3))
        out = self.block6(ME.cat(self.relu(self.bntr5(self.convtr5p8s2(out))), b2))
        out = self.block7(ME.cat(self.relu(self.bntr6(self.convtr6p4s2(out))), b1))
        feats = self.block8(ME.cat(self.relu(self.bntr7(self.convtr7p2s2(out))), p1))
        return feats, self.final(feats)


class Teacher3D(nn.Module):
    """Points -> per-point logits and features through a voxelised MinkUNet.

    Args:
        num_classes: K.
        voxel_size: voxel edge in metres (5 cm in the paper).
        in_channels: per-point input channels (3 = colour, see :func:`point_inputs`).
        planes, layers, init_dim, conv0_kernel: :class:`MinkUNet` architecture.

    Shape:
        coords (N, 4) float ``[batch index, x, y, z]`` in metres, feats (N, in_channels) ->
        logits (N, K), features (N, planes[-1]).
    """

    def __init__(self, num_classes: int, voxel_size: float = 0.05, in_channels: int = 3,
                 planes: tuple[int, ...] = PAPER_PLANES, layers: tuple[int, ...] = MINKUNET14, init_dim: int = 32,
                 conv0_kernel: int = 5):  # fmt: skip
        super().__init__()
        if voxel_size <= 0:
            raise ValueError(f"Teacher3D: voxel_size must be > 0, got {voxel_size}")
        self.voxel_size = float(voxel_size)
        self.net = MinkUNet(in_channels, num_classes, tuple(planes), tuple(layers), init_dim, conv0_kernel)
        self.out_channels = self.net.out_channels

    def forward(self, coords: torch.Tensor, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if coords.dim() != 2 or coords.shape[1] != 4 or feats.shape[0] != coords.shape[0]:
            raise ValueError(f"Teacher3D: coords must be (N, 4) and feats (N, C), got {tuple(coords.shape)}, "
                             f"{tuple(feats.shape)}")  # fmt: skip
        ME = import_minkowski()
        grid = torch.cat([coords[:, :1], coords[:, 1:] / self.voxel_size], 1)  # voxel units; floor() = voxel id
        field = ME.TensorField(
            features=feats.float(), coordinates=grid.float(), device=str(feats.device),
            quantization_mode=ME.SparseTensorQuantizationMode.UNWEIGHTED_AVERAGE,
        )  # fmt: skip
        features, logits = self.net(field.sparse())
        # slice(): voxel outputs back to the points, in the caller's order.
        return logits.slice(field).F, features.slice(field).F  # (N, K), (N, C)

    def load_external(self, path: str | Path, trust: bool = False) -> dict[str, list[str]]:
        """Load a MinkowskiEngine / SpatioTemporalSegmentation checkpoint (keys in the module docstring).

        Accepts a bare state dict or one under ``state_dict`` / ``model_state`` / ``model``; strips ``module.``,
        ``model.`` and ``net.`` prefixes. Tensors whose shapes differ (e.g. ``final`` for another class count) are
        skipped and reported, so a backbone can be fine-tuned on new classes.

        Args:
            path: checkpoint file.
            trust: allow full unpickling (older checkpoints store config objects); only for files you trust.

        Returns:
            ``missing``, ``unexpected`` and ``mismatched`` key lists (also logged).
        """
        path = Path(path)
        if not path.is_file():
            raise DataFileError(f"{path}: teacher checkpoint not found")
        try:
            state = torch.load(path, map_location="cpu", weights_only=not trust)
        except Exception as err:  # noqa: BLE001 - torch raises several unpickling error types
            raise DataFileError(f"{path}: cannot read checkpoint ({err}); pass trust=True for pickled configs") from err
        for key in ("state_dict", "model_state", "model"):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
                break
        if not isinstance(state, dict):
            raise DataFileError(f"{path}: expected a state dict, got {type(state).__name__}")
        own = self.net.state_dict()
        mapped, unexpected, mismatched = {}, [], []
        for key, value in state.items():
            name = key
            for prefix in ("module.", "model.", "net."):
                name = name.removeprefix(prefix)
            if name not in own:
                unexpected.append(key)
            elif tuple(own[name].shape) != tuple(value.shape):
                mismatched.append(name)
            else:
                mapped[name] = value
        self.net.load_state_dict(mapped, strict=False)
        # BatchNorm's step counters are absent from older checkpoints and carry no weights.
        missing = sorted(k for k in set(own) - set(mapped) - set(mismatched) if not k.endswith("num_batches_tracked"))
        report = {"missing": missing, "unexpected": unexpected, "mismatched": mismatched}
        log.info("%s: loaded %d tensors; %s", path, len(mapped), {k: len(v) for k, v in report.items()})
        return report

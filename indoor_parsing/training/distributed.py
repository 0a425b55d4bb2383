"""What DDP needs beyond Lightning's defaults: SyncBatchNorm on CPU processes, state broadcast, unused parameters.

torch's ``SyncBatchNorm`` refuses CPU tensors, so ``sync_batchnorm: true`` (configs/trainer/ddp.yaml) would stop a
run on CPU processes (gloo). :class:`SyncBatchNorm` is the layer for CPU processes; :class:`SyncBatchNormPlugin` is
Lightning's ``TorchSyncBatchNorm`` converting to it on CPUs, and the CLI installs it whenever ``sync_batchnorm`` is
set.
"""

import itertools

import torch
import torch.distributed as dist
from lightning.pytorch.plugins.layer_sync import TorchSyncBatchNorm
from lightning.pytorch.strategies import DDPStrategy
from torch import nn
from torch.distributed.nn.functional import all_reduce
from torch.nn.modules.batchnorm import _BatchNorm


def world_size(group=None) -> int:
    """Processes of ``group`` (the default group) when one is initialised, else 1."""
    return dist.get_world_size(group) if dist.is_available() and dist.is_initialized() else 1


class SyncBatchNorm(_BatchNorm):
    """Batch normalisation with the statistics of the global batch (all processes), for CPU processes.

    torch's ``nn.SyncBatchNorm`` runs on GPUs only (and DDP refuses it in a CPU model). Here, in training mode with
    several processes, the per-channel sum, sum of squares and count are all-reduced (differentiably: the backward
    all-reduces their gradients, as torch's GPU kernel does) and the batch is normalised with the global mean and
    variance; the running statistics follow them. Otherwise it is plain batch normalisation.

    Args:
        num_features, eps, momentum, affine, track_running_stats: as ``nn.BatchNorm2d``.
        process_group: processes to synchronise over; None = all.

    Shape:
        (B, C, ...) -> (B, C, ...).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, process_group=None):  # fmt: skip
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        self.process_group = process_group

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"SyncBatchNorm: expected a (B, C, ...) input, got {x.dim()}D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and world_size(self.process_group) > 1):
            return super().forward(x)
        self._check_input_dim(x)
        C = x.shape[1]
        dims = [0, *range(2, x.dim())]
        xd = x.double()  # sums of squares in float64: no cancellation in E[x^2] - E[x]^2
        count = xd.new_full((1,), x.numel() // C)
        stats = all_reduce(torch.cat([xd.sum(dims), (xd * xd).sum(dims), count]), group=self.process_group)
        n = stats[-1]
        mean = stats[:C] / n  # (C,)
        var = (stats[C : 2 * C] / n - mean * mean).clamp_min(0)  # (C,) biased, as used for normalising
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(m * mean.to(self.running_mean))
                unbiased = var * n / (n - 1).clamp_min(1)
                self.running_var.mul_(1 - m).add_(m * unbiased.to(self.running_var))
        shape = (1, C) + (1,) * (x.dim() - 2)
        y = ((xd - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)).to(x.dtype)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


class SyncBatchNormPlugin(TorchSyncBatchNorm):
    """Lightning's ``sync_batchnorm`` conversion: torch's ``nn.SyncBatchNorm`` on GPUs, :class:`SyncBatchNorm` on CPUs.

    Both hold the same state, so the layers are converted by swapping their class.
    """

    def apply(self, model: nn.Module) -> nn.Module:
        for name, module in model.named_modules():
            if (isinstance(module, _BatchNorm) and not isinstance(module, nn.SyncBatchNorm | SyncBatchNorm)
                    and type(module).forward is not _BatchNorm.forward):  # fmt: skip
                raise ValueError(
                    f"sync_batchnorm: {name} is a {type(module).__module__}.{type(module).__qualname__}, whose forward "
                    "does more than batch normalisation (timm's BatchNormAct2d also applies its activation); "
                    "SyncBatchNorm would replace all of it. Set sync_batchnorm: false or use an encoder with plain "
                    "BatchNorm layers (smp's resnet*, mobilenet_v2, efficientnet-b*)"
                )
        model = super().apply(model)
        trainer = getattr(model, "_trainer", None)
        if trainer is not None and trainer.strategy.root_device.type == "cpu":
            for module in model.modules():
                if type(module) is nn.SyncBatchNorm:
                    module.__class__ = SyncBatchNorm
        return model

    def revert(self, model: nn.Module) -> nn.Module:
        for module in model.modules():
            if type(module) is SyncBatchNorm:
                module.__class__ = nn.SyncBatchNorm
        return super().revert(model)


def broadcast_module(module: nn.Module, src: int = 0, buffers_only: bool = False) -> None:
    """Overwrite ``module``'s parameters and buffers (or buffers only) with rank ``src``'s (no-op in one process)."""
    if world_size() < 2:
        return
    tensors = module.buffers() if buffers_only else itertools.chain(module.parameters(), module.buffers())
    with torch.no_grad():
        for t in tensors:
            dist.broadcast(t.data, src)


def detect_unused_parameters(trainer) -> None:
    """Ask a DDP strategy (before it wraps the model) to look for parameters a backward pass does not reach.

    Manual optimisation with several optimisers (a network and its discriminators) runs one backward per optimiser,
    each reaching only its own parameters; DDP otherwise waits for every parameter's gradient in every backward.
    """
    strategy = getattr(trainer, "strategy", None)
    if isinstance(strategy, DDPStrategy):
        strategy._ddp_kwargs["find_unused_parameters"] = True  # Lightning keeps the DDP constructor kwargs here

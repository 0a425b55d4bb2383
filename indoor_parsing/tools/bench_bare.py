"""The bare PyTorch loops the benchmarks compare Lightning against, and the cached batches they run on."""

import time

import lightning as L
import torch
from lightning.pytorch.utilities import CombinedLoader
from lightning.pytorch.utilities.model_helpers import is_overridden

from indoor_parsing.tools.bench_meters import sync

CACHED_BATCHES = 4


def _to(batch, device: torch.device, channels_last: bool):
    if isinstance(batch, torch.Tensor):
        batch = batch.to(device, non_blocking=True)
        return batch.contiguous(memory_format=torch.channels_last) if channels_last and batch.dim() == 4 else batch
    if isinstance(batch, dict):
        return {k: _to(v, device, channels_last) for k, v in batch.items()}
    if isinstance(batch, list) and batch and isinstance(batch[0], dict):
        return [_to(v, device, channels_last) for v in batch]
    return batch


def take_batches(loader, n: int, device: torch.device, channels_last: bool) -> list:
    out = []
    for batch in loader:
        if isinstance(loader, CombinedLoader):
            batch = batch[0]  # (batch, batch_idx, dataloader_idx)
        out.append(_to(batch, device, channels_last))
        if len(out) == n:
            break
    return out


class CyclingBatches:
    """``total`` batches cycling over a few prepared ones (a plain list would read as several dataloaders)."""

    def __init__(self, batches: list, total: int):
        self.batches, self.total = batches, total

    def __len__(self) -> int:
        return self.total

    def __iter__(self):
        return (self.batches[i % len(self.batches)] for i in range(self.total))


class CachedData(L.LightningDataModule):
    """The method's DataModule (class statistics, feature caches, ...) with training batches served from memory."""

    def __init__(self, inner: L.LightningDataModule, train: CyclingBatches):
        super().__init__()
        self.inner, self.train = inner, train

    def __getattr__(self, name: str):
        inner = self.__dict__.get("inner")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)

    def train_dataloader(self):
        return self.train


def _optimizer(module: L.LightningModule):
    opt = module.configure_optimizers()
    if isinstance(opt, dict):
        sched = opt["lr_scheduler"]
        return opt["optimizer"], sched["scheduler"], sched.get("interval", "epoch")
    return opt, None, "epoch"


def bare_train(module, batches: list, warmup: int, steps: int, device: torch.device, autocast: bool) -> list:
    """Per-step seconds of plain optimisation steps (the module's losses, its batch-start and pre-step hooks)."""
    opt, sched, interval = _optimizer(module)
    start_hook = is_overridden("on_train_batch_start", module, L.LightningModule)
    clip_hook = is_overridden("on_before_optimizer_step", module, L.LightningModule)
    module.train()
    times, last = [], None
    for i in range(warmup + steps + 1):  # step warmup + steps only closes the last timed interval
        sync(device)
        now = time.perf_counter()
        if i > warmup:
            times.append(now - last)
        last = now
        if i == warmup + steps:
            break
        batch = batches[i % len(batches)]
        if start_hook:
            module.on_train_batch_start(batch, i)
        with torch.autocast(device.type, torch.bfloat16, enabled=autocast):
            loss = sum(module.losses(batch).values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip_hook:
            module.on_before_optimizer_step(opt)
        opt.step()
        if sched is not None and interval == "step":
            sched.step()
    return times


@torch.inference_mode()
def bare_predict(module, batches: list, warmup: int, steps: int, device: torch.device, autocast: bool) -> list:
    module.eval()
    times = []
    for i in range(warmup + steps):
        sync(device)
        t = time.perf_counter()
        with torch.autocast(device.type, torch.bfloat16, enabled=autocast):
            module.predict_step(batches[i % len(batches)], i)
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return times

"""Meters of `indoor-parsing bench`: device synchronisation, peak memory of a block, per-step wall times."""

import time

import lightning as L
import torch


def sync(device: torch.device) -> None:
    """Waits for the device's queued work (CUDA); a no-op on CPUs."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PeakMemory:
    """Peak memory of a block in MiB: the CUDA allocator's peak on a GPU; on Linux CPUs the growth of the process's
    peak resident set (VmHWM, reset through /proc/self/clear_refs), NaN elsewhere."""

    def __init__(self, device: torch.device):
        self.device, self.peak_mib = device, float("nan")

    @staticmethod
    def _hwm_kib() -> int | None:
        try:
            with open("/proc/self/status") as f:
                return next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))
        except (OSError, StopIteration):
            return None

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            return self
        self._base = None
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current resident set
            self._base = self._hwm_kib()
        except OSError:
            pass
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            self.peak_mib = torch.cuda.max_memory_allocated(self.device) / 2**20
        elif self._base is not None:
            self.peak_mib = (self._hwm_kib() - self._base) / 1024


class StepTimer(L.Callback):
    """Per-step wall times after ``warmup``: training from one batch start to the next (so the work between steps
    counts), prediction from batch start to end. Medians of these resist the load of other processes."""

    def __init__(self, warmup: int, device: torch.device):
        self.warmup, self.device, self.train_times, self.predict_times, self._t = warmup, device, [], [], None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        sync(self.device)
        now = time.perf_counter()
        if batch_idx > self.warmup:
            self.train_times.append(now - self._t)
        self._t = now

    def on_predict_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        sync(self.device)
        self._t = time.perf_counter()

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        sync(self.device)
        if batch_idx >= self.warmup:
            self.predict_times.append(time.perf_counter() - self._t)

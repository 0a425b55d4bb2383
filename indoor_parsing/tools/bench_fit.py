"""The whole ``fit`` loop (real DataLoader and workers, Lightning, logging) against the bare loop on cached batches.

    indoor-parsing bench --fit-loop --method configs/experiments/baseline_resnet18_synthrooms.yaml --channels-last

``bench --method`` times the Lightning step on batches already in memory; this adds what a user's ``fit`` also pays
for: loading and collating batches (issue 14: "the loader never waited on"), host-to-device copies and the logging
of every step. "fit / bare" is the bare step's time over the fit step's (1.0 = fit at the bare loop's speed; the
target is >= 0.9). GFLOP per step is counted once by ``torch.utils.flop_counter`` on a forward + backward of the
method's losses; GFLOP/s = that over the measured step time, to compare with the machine's matmul peak.
"""

import math
import time
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from indoor_parsing.cli import cli
from indoor_parsing.tools import config_rewrite as cr
from indoor_parsing.tools.bench_bare import CACHED_BATCHES, bare_train, take_batches
from indoor_parsing.tools.bench_meters import sync
from indoor_parsing.training.channels_last import ChannelsLast


class FitStepTimer(L.Callback):
    """Wall time of every training step, batch end to batch end, so the wait for the next batch is included;
    ``waits`` is the part spent between a step's end and the next step's start (loading, collating, copying)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.ends: list[float] = []
        self.waits: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.ends:
            self.waits.append(time.perf_counter() - self.ends[-1])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        sync(self.device)
        self.ends.append(time.perf_counter())


def step_flops(module, batch) -> float:
    """Floating-point operations of one forward + backward of the method's training losses on ``batch``."""
    module.train()
    with FlopCounterMode(display=False) as counter:
        loss = sum(module.losses(batch).values())
        loss.backward()
    module.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def _fit_config(config: str, steps: int, workers: int | None, work: Path) -> Path:
    cfg = cr.load(Path(config))
    cr.without_pretrained_weights(cfg)
    if workers is not None:
        cr.set_loaders(cfg, num_workers=workers)
    trainer = cfg.setdefault("trainer", {})
    trainer.update(max_steps=steps, max_epochs=-1, limit_val_batches=0, num_sanity_val_steps=0, logger=False,
                   enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(work))  # fmt: skip
    trainer.pop("callbacks", None)  # W&B media and the like; the checkpoint (written after the last step) stays
    cfg.setdefault("checkpoint", {})["dirpath"] = str(work / "ckpt")
    return cr.dump(cfg, work / "fit_config.yaml")


def bench_fit_loop(config: str, steps: int, warmup: int, device: torch.device, channels_last: bool, work: Path,
                   workers: int | None = None) -> dict:  # fmt: skip
    """Seconds per step of ``fit`` on the config's own data and loaders, of the bare loop on cached batches of the
    same loader, their ratio, the loader's share of the fit step and GFLOP/s of both."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
        run = cli(["--config", str(_fit_config(config, warmup + steps, workers, work))], run=False)
    if not run.model.automatic_optimization:
        raise ValueError(f"{config}: manual optimisation (its own step); the fit-loop benchmark needs a plain step")
    timer = FitStepTimer(device)
    run.trainer.callbacks.append(timer)
    if channels_last:
        run.trainer.callbacks.append(ChannelsLast())
    run.trainer.fit(run.model, datamodule=run.datamodule)
    fit_s = float(np.median(np.diff(timer.ends)[warmup:]))
    wait_s = float(np.median(timer.waits[warmup:]))

    module = run.model.to(device)  # the trained weights time the same as fresh ones
    if channels_last:
        module = module.to(memory_format=torch.channels_last)
    batches = take_batches(run.datamodule.train_dataloader(), CACHED_BATCHES, device, channels_last)
    bare_s = float(np.median(bare_train(module, batches, min(warmup, 3), steps, device, autocast=False)))
    flops = step_flops(module, batches[0])
    return {
        "method": Path(config).stem, "layout": "channels_last" if channels_last else "contiguous",
        "workers": run.datamodule.num_workers, "fit_s": fit_s, "bare_s": bare_s, "fit_over_bare": bare_s / fit_s,
        "wait_s": wait_s, "wait_share": wait_s / fit_s, "gflop_per_step": flops / 1e9,
        "fit_gflops": flops / 1e9 / fit_s, "bare_gflops": flops / 1e9 / bare_s,
        "threads": torch.get_num_threads(),
    }  # fmt: skip


def fit_table(rows: list[dict]) -> str:
    cols = [("method", "method", "s"), ("layout", "layout", "s"), ("workers", "workers", "d"),
            ("threads", "threads", "d"), ("fit_s", "fit s/step", ".3f"), ("bare_s", "bare s/step", ".3f"),
            ("fit_over_bare", "fit / bare", ".3f"), ("wait_share", "loader wait", ".1%"),
            ("gflop_per_step", "GFLOP/step", ".1f"), ("fit_gflops", "fit GFLOP/s", ".1f"),
            ("bare_gflops", "bare GFLOP/s", ".1f")]  # fmt: skip
    lines = ["| " + " | ".join(c[1] for c in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        cells = [format(r[k], f) if not (isinstance(r[k], float) and math.isnan(r[k])) else "n/a" for k, _, f in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)

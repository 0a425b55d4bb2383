"""``indoor-parsing bench``: training throughput, inference latency and peak memory of methods, each next to a bare
PyTorch loop over the same model and loss, and data-loader throughput of prepared layouts.

    indoor-parsing bench --method configs/experiments/geoaware_resnet18_synthrooms.yaml --size 120 160 --batch 8
    indoor-parsing bench --method configs/experiments/baseline_resnet18_synthrooms.yaml --layout data/nyudv2

Model timings loop over a few batches prepared on the device beforehand, so they exclude data loading; the loader
is timed on its own. "overhead" = how much slower the Lightning path is than the bare loop (target: under 5%).
"""

import argparse
import logging
import math
import tempfile
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import torch

from indoor_parsing.cli import cli
from indoor_parsing.distill.extract import build_smoke_cache
from indoor_parsing.io import write_json
from indoor_parsing.tools import config_rewrite as cr
from indoor_parsing.tools.bench_bare import (
    CACHED_BATCHES,
    CachedData,
    CyclingBatches,
    bare_predict,
    bare_train,
    take_batches,
)
from indoor_parsing.tools.bench_fit import bench_fit_loop, fit_table
from indoor_parsing.tools.bench_loader import bench_loader, synthrooms_layout
from indoor_parsing.tools.bench_meters import PeakMemory, StepTimer


# ---- building a method on benchmark-sized data ------------------------------------------------------------
def build(config: str, size: tuple[int, int], batch: int, work: Path):
    """(module, datamodule) of an experiment config on benchmark-sized data, prepared and set up.

    SynthRooms is generated at ``size`` with a few scenes; other DataModules keep their data and get ``size`` as
    image size where the config sets one. Encoders start from random weights (timing does not depend on them).
    """
    cfg = cr.load(Path(config))
    cr.set_synthrooms(cfg, height=size[0], width=size[1], num_scenes=3, split=[1, 1, 1],
                      frames_per_sequence=max(2 * batch, 8))  # fmt: skip
    cr.set_loaders(cfg, image_size=list(size), batch_size=batch, num_workers=0)
    cr.without_pretrained_weights(cfg)
    cfg.setdefault("trainer", {}).update(logger=False, default_root_dir=str(work))
    cache = (cfg.get("data") or {}).get("init_args", {}).get("feature_cache")
    if cache and not (Path(cache) / "manifest.json").is_file():
        # Distill3D without extracted teacher features: a random-projection cache times the same.
        cfg["data"]["init_args"]["feature_cache"] = build_smoke_cache(cfg, work / "features")
    with warnings.catch_warnings():  # LightningCLI warns that sys.argv (our own options) is not what it parses
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
        run = cli(["--config", str(cr.dump(cfg, work / "bench_config.yaml"))], run=False)
    run.datamodule.prepare_data()
    run.datamodule.setup("fit")
    return run.model, run.datamodule


def bench_method(config: str, size, batch: int, steps: int, warmup: int, device: torch.device, precision: str,
                 channels_last: bool, work: Path, repeats: int = 3) -> dict:  # fmt: skip
    """Training images/s and predict latency (ms per batch), Lightning vs bare, with peak memory, of one setting.

    The two paths alternate ``repeats`` times and the best of each is kept, so that load from other processes
    (which only slows a run down) does not decide the comparison.
    """
    module, dm = build(config, size, batch, work)
    train = take_batches(dm.train_dataloader(), CACHED_BATCHES, device, channels_last)
    test = take_batches(dm.predict_dataloader(), CACHED_BATCHES, device, channels_last)
    if not train or not test:
        raise ValueError(f"{config}: the benchmark data gives no full training or prediction batch")
    if channels_last:
        module = module.to(memory_format=torch.channels_last)
    total, autocast, accel = warmup + steps, precision.startswith("bf16"), "gpu" if device.type == "cuda" else "cpu"
    row = {"method": Path(config).stem, "precision": precision + ("+channels_last" if channels_last else ""),
           "train_lightning": 0.0, "predict_lightning_ms": math.inf, "predict_bare_ms": math.inf}  # fmt: skip
    peaks = []
    for _ in range(repeats):
        timer = StepTimer(warmup, device)
        # One epoch of `total` batches: max_steps would count each optimiser of a manual-optimisation method.
        trainer = L.Trainer(accelerator=accel, devices=1, precision=precision, max_epochs=1, limit_val_batches=0,
                            num_sanity_val_steps=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, callbacks=[timer], default_root_dir=work)  # fmt: skip
        module.train()  # Lightning keeps the train / eval mode it finds; the last pass left eval mode
        with PeakMemory(device) as mem:
            trainer.fit(module, datamodule=CachedData(dm, CyclingBatches(train, total)))
        peaks.append(mem.peak_mib)
        row["train_lightning"] = max(row["train_lightning"], batch / float(np.median(timer.train_times)))
        module.to(device)  # Lightning's teardown moved it back to the CPU
        if module.automatic_optimization:  # a manual-optimisation step is the method's own; no generic bare loop
            seconds = float(np.median(bare_train(module, train, warmup, steps, device, autocast)))
            row["train_bare"] = max(row.get("train_bare", 0.0), batch / seconds)
        trainer.predict(module, dataloaders=CyclingBatches(test, total), return_predictions=False)
        row["predict_lightning_ms"] = min(row["predict_lightning_ms"], 1000 * float(np.median(timer.predict_times)))
        module.to(device)
        bare = bare_predict(module, test, warmup, steps, device, autocast)
        row["predict_bare_ms"] = min(row["predict_bare_ms"], 1000 * float(np.median(bare)))
    row["peak_mib"] = float(np.max(peaks))  # NaN where it could not be measured
    return row


# ---- command --------------------------------------------------------------------------------------------
def _table(rows: list[dict], cols: list[tuple[str, str, str]]) -> str:
    lines = ["| " + " | ".join(c[1] for c in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(format(r[c[0]], c[2]) if c[0] in r else "n/a" for c in cols) + " |")
    return "\n".join(lines)


def report(methods: list[dict], loaders: list[dict]) -> str:
    for r in methods:
        if "train_bare" in r:
            r["train_overhead"] = 100 * (r["train_bare"] / r["train_lightning"] - 1)
        r["predict_overhead"] = 100 * (r["predict_lightning_ms"] / r["predict_bare_ms"] - 1)
    out = []
    if methods:
        out.append(_table(methods, [
            ("method", "method", "s"), ("precision", "precision", "s"), ("train_lightning", "train img/s", ".1f"),
            ("train_bare", "bare img/s", ".1f"), ("train_overhead", "overhead %", "+.1f"),
            ("predict_lightning_ms", "predict ms/batch", ".1f"), ("predict_bare_ms", "bare ms/batch", ".1f"),
            ("predict_overhead", "overhead %", "+.1f"), ("peak_mib", "peak MiB", ".0f"),
        ]))  # fmt: skip
    if loaders:
        out.append(_table(loaders, [
            ("dataset", "dataset", "s"), ("workers", "workers", "d"), ("frames_per_s", "frames/s", ".1f"),
            ("frames_per_s_per_worker", "frames/s per worker", ".1f"),
        ]))  # fmt: skip
    return "\n\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="indoor-parsing bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--method", action="append", default=[], help="experiment config (repeatable)")
    p.add_argument("--size", type=int, nargs=2, default=(120, 160), metavar=("H", "W"))
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=20, help="timed steps (after --warmup)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3, help="alternations of the two paths (best of each is kept)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:i]")
    p.add_argument("--layout", action="append", default=[], help="prepared layout for the loader benchmark")
    p.add_argument("--loader-frames", type=int, default=64, help="frames timed per loader setting (0 = skip)")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    p.add_argument("--loader-size", type=int, nargs=2, default=(480, 640), metavar=("H", "W"))
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument(
        "--fit-loop",
        action="store_true",
        help="also time the whole fit loop (the config's data, loaders and workers) against the bare loop",
    )
    p.add_argument("--fit-workers", type=int, default=None, help="loader workers of the fit loop (default: config)")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                   help="also time bf16-mixed, contiguous and channels_last (default: on CUDA only; a CPU needs "
                        "AVX512-BF16 or AMX for it to pay)")  # fmt: skip
    args = p.parse_args(argv)
    if args.steps < 2 or args.warmup < 0 or args.repeats < 1:
        p.error("--steps must be >= 2 (step times are intervals), --warmup >= 0 and --repeats >= 1")
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # keep the tables readable
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    bf16 = device.type == "cuda" if args.bf16 is None else args.bf16
    settings = [("32-true", False)] + ([("bf16-mixed", False), ("bf16-mixed", True)] if bf16 else [])
    methods, loaders = [], []
    with tempfile.TemporaryDirectory(prefix="bench_") as tmp:
        for config in args.method:
            for precision, channels_last in settings:
                work = Path(tmp) / f"{Path(config).stem}_{precision}_{int(channels_last)}"
                work.mkdir()
                methods.append(bench_method(config, tuple(args.size), args.batch, args.steps, args.warmup, device,
                                            precision, channels_last, work, args.repeats))  # fmt: skip
        fits = []
        for config in args.method if args.fit_loop else []:
            for channels_last in (False, True):
                work = Path(tmp) / f"{Path(config).stem}_fit_{int(channels_last)}"
                work.mkdir()
                fits.append(bench_fit_loop(config, args.steps, args.warmup, device, channels_last, work,
                                           args.fit_workers))  # fmt: skip
        if args.loader_frames > 0:
            layouts = [Path(x) for x in args.layout] or [synthrooms_layout(tuple(args.loader_size))]
            for layout in layouts:
                for w in args.workers:
                    loaders.append(bench_loader(layout, w, args.loader_frames, args.batch, args.loader_size))
    print(f"device: {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
          f"batch {args.batch}, size {args.size[0]}x{args.size[1]}, {args.steps} timed steps\n")  # fmt: skip
    print(report(methods, loaders))
    if fits:
        print("\nwhole fit loop (data loading included) against the bare loop on cached batches:\n" + fit_table(fits))
    if args.json:
        write_json(args.json, {"device": str(device), "args": vars(args), "methods": methods, "loaders": loaders,
                               "fit_loop": fits})  # fmt: skip
    return 0

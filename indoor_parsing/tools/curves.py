"""``indoor-parsing curves``: validation mIoU against training steps and CPU minutes, one line per experiment config.

    indoor-parsing curves --steps 2500 --every 100 --synthrooms num_scenes=300

Each config is trained once (CPU, from random weights), validated every ``--every`` steps; every point is appended to
``<out>/curves.csv`` as it is measured and ``<out>/curves.png`` is redrawn after each config. A re-run skips a config
whose rows reach ``--steps`` and retrains a partial one from step 0 (its rows are dropped first), so a killed run
continues where it stopped, one config at a time. Wall and CPU seconds count training only: validation is timed
apart (``eval_wall_s``), so the curves read as training cost whatever ``--every`` is.
"""

import argparse
import csv
import io
import json
import math
import os
import time
from pathlib import Path

import lightning as L
import torch
import yaml

from indoor_parsing.io import atomic_path, write_text
from indoor_parsing.tools import config_rewrite as cr

DEFAULT_CONFIGS = [
    f"configs/experiments/{name}_resnet18_synthrooms.yaml"
    for name in ("baseline", "geoaware", "pspnet", "distill3d", "s4net")
]
COLUMNS = ["config", "seed", "overrides", "step", "wall_s", "cpu_s", "cpu_clock", "eval_wall_s", "val_mIoU",
           "val_pixel_acc", "train_loss"]  # fmt: skip
FEATURE_CACHE = "data.init_args.feature_cache"


# ---- measuring ------------------------------------------------------------------------------------------
def cpu_clock() -> tuple[float, str]:
    """CPU seconds used so far by this process and its children (loader workers), and what was counted.

    Live children are read with psutil; children that have exited and been joined are in ``os.times()``. Without
    psutil, live workers cannot be seen and the figure is wall seconds x torch threads.
    """
    own = time.process_time()
    done = os.times()
    reaped = done.children_user + done.children_system
    try:
        import psutil
    except ImportError:
        return math.nan, "unavailable"
    live = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            t = child.cpu_times()
            live += t.user + t.system
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            pass  # exited meanwhile: counted in os.times() once joined
    return own + reaped + live, "process+workers"


class CurveRecorder(L.Callback):
    """Per validation: step, training wall / CPU seconds so far (validation excluded), val mIoU / pixel accuracy
    and the mean training loss since the previous point, handed to ``on_point`` as a dict."""

    def __init__(self, on_point, threads: int):
        self.on_point, self.threads = on_point, threads
        self.wall = self.cpu = self.eval_wall = 0.0
        self.losses: list[float] = []

    def _mark(self) -> None:
        self._t, (self._c, self.clock) = time.perf_counter(), cpu_clock()

    def on_train_start(self, trainer, pl_module):
        self._mark()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is None:  # manual optimisation returns nothing: the logged value
            loss = trainer.callback_metrics.get("train/loss", math.nan)
        self.losses.append(float(loss))

    def on_validation_start(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        wall, (cpu, _) = time.perf_counter() - self._t, cpu_clock()
        self.wall += wall
        self.cpu += cpu - self._c if math.isfinite(cpu) else wall * self.threads
        self._t = time.perf_counter()

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        self.eval_wall += time.perf_counter() - self._t
        val = pl_module.last_results["val"]
        self.on_point({"step": trainer.global_step, "wall_s": round(self.wall, 2), "cpu_s": round(self.cpu, 2),
                       "cpu_clock": self.clock if self.clock != "unavailable" else f"wall x {self.threads}",
                       "eval_wall_s": round(self.eval_wall, 2), "val_mIoU": float(val["mIoU"]),
                       "val_pixel_acc": float(val["pixel_acc"]),
                       "train_loss": sum(self.losses) / len(self.losses) if self.losses else math.nan})  # fmt: skip
        self.losses = []
        self._mark()


# ---- configs --------------------------------------------------------------------------------------------
def parse_override(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (dotted config key), got {text!r}")
    return key, yaml.safe_load(value)  # 300 -> int, [1, 2] -> list, null -> None


def build_config(path: Path, args, run_dir: Path) -> Path:
    """The config at ``--seed``, trained ``--steps`` steps on the CPU and validated every ``--every`` steps."""
    config = cr.load(path)
    for key, value in args.override:
        cr.set_key(config, key, value)
    cr.set_synthrooms(config, **dict(args.synthrooms))  # every SynthRooms block, however deep the wrappers nest it
    cache = cr.get_key(config, FEATURE_CACHE)
    if cache is not None and not (Path(cache) / "manifest.json").is_file():
        cr.set_key(config, FEATURE_CACHE, teacher_features(args))
    config["seed_everything"] = args.seed
    cr.set_cpu_trainer(config, run_dir, max_steps=args.steps, max_epochs=-1, val_check_interval=args.every,
                       check_val_every_n_epoch=None, num_sanity_val_steps=0, logger=False,
                       enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    config["checkpoint"].update({"monitor": None, "save_top_k": 0, "save_last": False})  # a partial run restarts
    return cr.dump(config, run_dir / "config.yaml")


def teacher_features(args) -> str:
    """The Distill3D feature cache, from the claims check's teacher (fitted and extracted once under --teacher-out)."""
    from indoor_parsing.tools.claims.run import Runner, parse_args

    out = Path(args.teacher_out or args.out)
    Runner(parse_args(["--out", str(out), "--accelerator", "cpu"])).prepare_teacher()
    return str(out / "runs" / "teacher3d_features")


def train(config_path: Path, on_point) -> None:
    from indoor_parsing.cli import cli

    run = cli(["--config", str(config_path)], run=False)
    run.trainer.callbacks.append(CurveRecorder(on_point, threads=torch.get_num_threads()))
    run.trainer.fit(run.model, datamodule=run.datamodule)


# ---- the CSV and the picture ----------------------------------------------------------------------------
def read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_rows(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buf.getvalue())


def _key(row: dict) -> tuple[str, str, str]:
    return str(row["config"]), str(row["seed"]), str(row["overrides"])


def _short(overrides: str) -> str:
    """``a.b.key=1;c.d=2`` as ``key=1, d=2``: the last part of each dotted key, for a legend."""
    return ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, _, v in (o.partition("=") for o in overrides.split(";")))


def plot(rows: list[dict], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 5.4), layout="constrained")
    by_steps, by_cpu = fig.subplots(1, 2, sharey=True)
    lines: dict[tuple, list[dict]] = {}
    for row in rows:
        lines.setdefault(_key(row), []).append(row)
    seeds, variants = {k[1] for k in lines}, {k[2] for k in lines}
    for (config, seed, overrides), points in lines.items():
        points.sort(key=lambda r: int(r["step"]))
        label = config + (f" seed {seed}" if len(seeds) > 1 else "")
        label += f" ({_short(overrides)})" if len(variants) > 1 and overrides else ""
        miou = [100 * float(r["val_mIoU"]) for r in points]
        (line,) = by_steps.plot([int(r["step"]) for r in points], miou, marker=".", label=label)
        by_cpu.plot([float(r["cpu_s"]) / 60 for r in points], miou, marker=".", color=line.get_color())
    by_steps.set(xlabel="training steps", ylabel="val mIoU (%)", title="val mIoU vs steps")
    by_cpu.set(xlabel="training CPU minutes (validation excluded)", title="val mIoU vs CPU minutes")
    for ax in (by_steps, by_cpu):
        ax.grid(alpha=0.3)
    fig.legend(loc="outside lower center", ncols=2, fontsize=8)  # below both panels: labels can be long
    with atomic_path(path) as tmp:
        FigureCanvasAgg(fig).print_png(str(tmp))


# ---- command --------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="indoor-parsing curves", description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", type=Path, default=[Path(c) for c in DEFAULT_CONFIGS],
                   help="experiment configs (default: the baseline and each method's SynthRooms config)")  # fmt: skip
    p.add_argument("--steps", type=int, default=2500, help="training steps per config")
    p.add_argument("--every", type=int, default=100, help="validate every this many steps")
    p.add_argument("--out", type=Path, default=Path("docs/curves"), help="curves.csv, curves.png, runs/")
    p.add_argument("--override", type=parse_override, action="append", default=[], metavar="KEY=VALUE",
                   help="dotted config key, e.g. data.init_args.num_scenes=300 (repeatable)")  # fmt: skip
    p.add_argument(
        "--synthrooms",
        type=parse_override,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="setting of every SynthRooms DataModule, e.g. num_scenes=300 style=source_v2 (repeatable)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--teacher-out", type=Path, default=None,
                   help="where the Distill3D teacher is fitted and extracted (default: --out)")  # fmt: skip
    args = p.parse_args(argv)
    if args.steps < 1 or args.every < 1 or args.steps % args.every:
        p.error("--steps and --every must be positive and --steps a multiple of --every (the last point is at --steps)")
    missing = [str(c) for c in args.configs if not c.is_file()]
    if missing:
        p.error(f"config not found: {', '.join(missing)}")
    csv_path, png_path = args.out / "curves.csv", args.out / "curves.png"
    overrides = ";".join(
        [f"{k}={json.dumps(v)}" for k, v in args.override]  # part of a curve's identity
        + [f"synthrooms.{k}={json.dumps(v)}" for k, v in args.synthrooms]
    )
    for config in args.configs:
        key = (config.stem, str(args.seed), overrides)
        rows = read_rows(csv_path)
        done = [r for r in rows if _key(r) == key]
        if done and max(int(r["step"]) for r in done) >= args.steps:
            print(f"{config.stem}: {len(done)} points up to step {args.steps} in {csv_path}, skipped")
            continue
        if done:
            print(f"{config.stem}: partial ({len(done)} points), retraining from step 0")
            write_rows(csv_path, [r for r in rows if _key(r) != key])

        def on_point(point: dict, key=key) -> None:
            row = {"config": key[0], "seed": key[1], "overrides": key[2], **point}
            write_rows(csv_path, [*read_rows(csv_path), row])
            print(f"{key[0]} step {point['step']}: val mIoU {100 * point['val_mIoU']:.1f}%, "
                  f"{point['cpu_s'] / 60:.1f} CPU min", flush=True)  # fmt: skip

        run_dir = args.out / "runs" / f"{config.stem}__seed{args.seed}"
        train(build_config(config, args, run_dir), on_point)
        plot(read_rows(csv_path), png_path)
    rows = read_rows(csv_path)
    if rows:
        plot(rows, png_path)
        print(f"wrote {csv_path} and {png_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

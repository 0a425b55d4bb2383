"""`indoor-parsing claims --estimate DIR`: what the whole claims run would cost on this machine, measured.

    indoor-parsing claims --estimate runs/claims_estimate [--precision bf16-mixed] [--estimate-steps 40]

Every arm of the plan (and the 3D teacher, unless ``--out`` holds its record and weights) trains for a few steps
at the first of ``--seeds``, in ``DIR`` with the run's own settings (precision, ``--data-seed``, ``--synthrooms``);
a ``StepClock`` times each step, batch start to batch start after a warm-up (so loading counts), and the arm's full
cost is projected as

    short fit seconds + (the arm's steps - the short fit's steps) x median step seconds + its test seconds.

A training another comparison reuses costs nothing (Table 5's 0 % / 100 % arms are Table 4's). The total counts
every seed of ``--seeds`` (the seed rounds may skip the 4th and 5th where every claim is detectable at 3) and the
teacher once. Nothing is written under ``--out``; a second ``--estimate`` into the same ``DIR`` reuses its runs.
"""

import argparse
import statistics
import time
from pathlib import Path

import lightning as L

from indoor_parsing.distill.extract import file_sha256
from indoor_parsing.io import read_json, write_json, write_text
from indoor_parsing.tools.claims import records as rec
from indoor_parsing.tools.claims.plan import TEACHER_STEPS
from indoor_parsing.tools.claims.weights import TEACHER_WEIGHTS

CLOCK_FILE = "step_clock.json"
WARMUP = 5


class StepClock(L.Callback):
    """Seconds of every training step after ``warmup``, batch start to batch start; the median goes to ``path``.
    ``full_steps``, the arm's own budget, is only recorded (and tells apart short runs of arms that differ in it)."""

    def __init__(self, path: str, full_steps: int, warmup: int = WARMUP):
        self.path, self.full_steps, self.warmup, self.times, self._t = Path(path), full_steps, warmup, [], None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        now = time.perf_counter()
        if self._t is not None and trainer.global_step > self.warmup:
            self.times.append(now - self._t)
        self._t = now

    def on_train_end(self, trainer, pl_module):
        if not self.times:
            raise RuntimeError(f"{self.path}: no step timed; --estimate-steps must exceed the warm-up ({self.warmup})")
        write_json(self.path, {"steps": trainer.global_step, "full_steps": self.full_steps,
                               "step_seconds": statistics.median(self.times), "timed": len(self.times)})  # fmt: skip


def shorten(config: dict, run_dir: Path, cap: int) -> None:
    """Train ``cap`` steps (at most) and time them: the arm's config in an estimate."""
    trainer = config["trainer"]
    full, trainer["max_steps"] = trainer["max_steps"], min(trainer["max_steps"], cap)
    callbacks = trainer.get("callbacks") or []
    clock = {"class_path": f"{__name__}.StepClock",
             "init_args": {"path": str(Path(run_dir) / CLOCK_FILE), "full_steps": full}}  # fmt: skip
    trainer["callbacks"] = [*callbacks, clock]


def projected(record: dict, run_dir: Path, full_steps: int, extra: float = 0.0) -> dict:
    """The full training's projected fit seconds (and its measured test seconds) from the short run's record."""
    clock = read_json(Path(run_dir) / CLOCK_FILE)
    fit = record["fit_seconds"] + (full_steps - clock["steps"]) * clock["step_seconds"]
    test = record.get("seconds", record["fit_seconds"]) - record["fit_seconds"] + extra
    return {"step_seconds": clock["step_seconds"], "steps": full_steps, "fit_seconds": fit, "test_seconds": test}


def _teacher_done(args, runner_cls) -> bool:
    """``--out`` holds the teacher's record at these settings and its weights: a run would only extract features."""
    record = rec.load(args.out / "records" / "teacher3d.json", runner_cls(args).teacher_fingerprint())
    weights = args.out / TEACHER_WEIGHTS
    return record is not None and weights.is_file() and file_sha256(weights) == record.get("weights_sha256")


def _recorded(args, name: str) -> float | None:
    path = args.out / "records" / f"{name}.json"
    return read_json(path).get("fit_seconds") if path.is_file() else None


def run_estimate(comparisons, args, runner_cls) -> dict:
    """Train every arm briefly in ``args.estimate`` with ``runner_cls`` (run.Runner), print and write
    (estimate.json / .md) the projected cost."""
    short = argparse.Namespace(**{**vars(args), "out": args.estimate, "commit": False, "report_only": False,
                                  "estimate_cap": args.estimate_steps})  # fmt: skip
    runner, seed, rows = runner_cls(short), args.seeds[0], []
    for comp in comparisons:
        for arm in comp.arms:
            record = runner.arm(comp, arm, seed)
            name = rec.run_name(comp.name, arm.name, seed)
            row = {"comparison": comp.name, "arm": arm.name, "recorded_fit_seconds": _recorded(args, name)}
            if record.get("reused_from"):
                row.update(reused_from=record["reused_from"], steps=record["steps"], fit_seconds=0.0, test_seconds=0.0)
            else:
                row.update(projected(record, short.out / "runs" / name, record["steps"]))
            rows.append(row)
    teacher = None
    if runner.teacher is not None:
        extract = runner.teacher.get("extract_seconds", 0.0)
        if _teacher_done(args, runner_cls):
            teacher = {"steps": 0, "fit_seconds": 0.0, "test_seconds": extract, "note": "weights kept: extraction"}
        else:
            full = round(TEACHER_STEPS * args.budget)
            teacher = {**projected(runner.teacher, short.out / "runs" / "teacher3d", full, extract), "note": "fit"}
    per_seed = sum(r["fit_seconds"] + r["test_seconds"] for r in rows)
    once = teacher["fit_seconds"] + teacher["test_seconds"] if teacher else 0.0
    result = {"precision": short.precision, "channels_last": short.channels_last, "seed": seed, "seeds": args.seeds,
              "rows": rows, "teacher": teacher, "per_seed_seconds": per_seed,
              "total_seconds": once + per_seed * len(args.seeds),
              "min_seeds_seconds": once + per_seed * min(args.min_seeds, len(args.seeds))}  # fmt: skip
    write_json(short.out / "estimate.json", result)
    text = format_estimate(result)
    write_text(short.out / "estimate.md", text)
    print(text)
    return result


def format_estimate(result: dict) -> str:
    """The estimate as a Markdown table: per arm, then the totals."""
    precision = (result["precision"] or "the configs' own") + ", channels_last" * bool(result.get("channels_last"))
    lines = [f"Projected claims cost (precision {precision}; timed at seed {result['seed']})", "",
             "| comparison | arm | steps | s/step | fit min | test min | last recorded fit min |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in result["rows"]:
        step = f"{r['step_seconds']:.3f}" if "step_seconds" in r else f"reuses {r['reused_from']}"
        recorded = f"{r['recorded_fit_seconds'] / 60:.1f}" if r["recorded_fit_seconds"] is not None else ""
        lines.append(f"| {r['comparison']} | {r['arm']} | {r['steps']} | {step} | {r['fit_seconds'] / 60:.1f} | "
                     f"{r['test_seconds'] / 60:.1f} | {recorded} |")  # fmt: skip
    if (t := result["teacher"]) is not None:
        lines.append(f"| 3D teacher (once) | {t['note']} | {t['steps']} | {t.get('step_seconds', 0):.3f} | "
                     f"{t['fit_seconds'] / 60:.1f} | {t['test_seconds'] / 60:.1f} | |")  # fmt: skip
    n = len(result["seeds"])
    lines += ["", f"Per seed: {result['per_seed_seconds'] / 3600:.2f} h. All {n} seeds {result['seeds']}, the "
              f"teacher once: **{result['total_seconds'] / 3600:.2f} h**; the first round alone (--min-seeds): "
              f"{result['min_seeds_seconds'] / 3600:.2f} h."]  # fmt: skip
    return "\n".join(lines) + "\n"

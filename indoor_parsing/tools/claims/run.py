"""`indoor-parsing claims` (`make claims`): train each method next to its baseline over several seeds, report.

    indoor-parsing claims --out docs/claims --seeds 0 1 2 --budget 1.0

Every run's result is written (atomically) under ``<out>/runs`` as it finishes; a re-run skips finished runs, so a
killed claims run continues where it stopped. ``--budget`` scales every step count (e.g. 10 on a GPU).
"""

import argparse
import time
from pathlib import Path

import torch

from indoor_parsing.io import read_json, write_json
from indoor_parsing.tools import config_rewrite as cr
from indoor_parsing.tools.claims.plan import COMPARISONS, TEACHER_CONFIG, TEACHER_STEPS, Arm, Comparison
from indoor_parsing.tools.claims.report import METRICS, git_commit, write_report

CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "experiments"


def _set(config: dict, dotted: str, value) -> None:
    node = config
    *parents, last = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value


def _has(config: dict, dotted: str) -> bool:
    node = config
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


def _config(
    arm_config: str, overrides: dict, seed: int, steps: int, run_dir: Path, accelerator: str, where_present: dict
) -> Path:
    """The arm's config at the run's seed and step budget; ``where_present`` only replaces keys the config has."""
    config = cr.load(CONFIGS / arm_config)
    for key, value in overrides.items():
        _set(config, key, value)
    for key, value in where_present.items():
        if _has(config, key):
            _set(config, key, value)
    config["seed_everything"] = seed
    cr.set_cpu_trainer(config, run_dir, max_steps=steps, max_epochs=-1, logger=False, enable_progress_bar=False,
                       limit_val_batches=0, num_sanity_val_steps=0)  # fmt: skip
    config["trainer"]["accelerator"] = accelerator
    if accelerator != "cpu":
        config["trainer"]["precision"] = "bf16-mixed"
    config["checkpoint"].update({"monitor": None, "save_top_k": 0, "save_last": True})
    return cr.dump(config, run_dir / "config.yaml")


def _fit_and_test(config_path: Path) -> tuple[dict, dict]:
    """Fit, then test the final weights; returns ({eval set: metrics}, data settings)."""
    from indoor_parsing.cli import cli

    run = cli(["fit", "--config", str(config_path)])
    run.trainer.test(run.model, datamodule=run.datamodule, verbose=False)
    results = {}
    for stage, values in run.model.last_results.items():
        if stage == "test" or stage.startswith("test/"):
            name = stage.split("/", 1)[1] if "/" in stage else "test"
            results[name] = {k: float(values[k]) for k in METRICS}
    if len(results) > 1:
        results.pop("test", None)  # the first evaluation set, also logged under its own name
    settings = {k: v for k, v in getattr(run.datamodule, "manifest", {}).items() if k in ("settings", "dataset")}
    return results, settings


def run_arm(comp: Comparison, arm: Arm, seed: int, args, extra: dict) -> dict:
    run_dir = args.out / "runs" / f"{comp.name}__{arm.name}__seed{seed}".replace(" ", "_").replace("/", "-")
    done = run_dir / "result.json"
    if done.is_file():
        return read_json(done)
    steps = max(1, round(arm.steps * args.budget))
    overrides = dict(arm.overrides)
    if arm.init_from is not None:
        src = args.out / "runs" / f"{comp.name}__{arm.init_from}__seed{seed}".replace(" ", "_").replace("/", "-")
        overrides["model.init_args.init_checkpoint"] = str(src / "ckpt" / "last.ckpt")
    start = time.time()
    config = _config(arm.config, overrides, seed, steps, run_dir, args.accelerator, extra)
    applied = {k: v for k, v in extra.items() if _has(cr.load(CONFIGS / arm.config), k)}
    results, settings = _fit_and_test(config)
    record = {"comparison": comp.name, "arm": arm.name, "seed": seed, "steps": steps, "config": arm.config,
              "overrides": {**overrides, **applied}, "seconds": round(time.time() - start, 1), "results": results,
              "data": settings, "report": arm.report, "commit": git_commit()}  # fmt: skip
    write_json(done, record)
    return record


def prepare_teacher(args) -> tuple[dict, dict]:
    """Fit the 3D teacher once (seed 0, shared by every seed: a frozen teacher), test it and extract its features.

    Returns the config keys the distillation arms receive and the teacher's record (``runs/teacher3d/teacher.json``:
    steps, seconds, test metrics, commit).
    """
    from indoor_parsing.cli import cli
    from indoor_parsing.distill import extract

    teacher_dir = args.out / "runs" / "teacher3d"
    features = args.out / "runs" / "teacher3d_features"
    ckpt = teacher_dir / "ckpt" / "last.ckpt"
    record_path = teacher_dir / "teacher.json"
    extra = {"data.init_args.feature_cache": str(features)}
    if record_path.is_file() and (features / "manifest.json").is_file():
        return extra, read_json(record_path)
    record = read_json(record_path) if record_path.is_file() else {"config": TEACHER_CONFIG}
    if not ckpt.is_file():
        steps = round(TEACHER_STEPS * args.budget)
        start = time.time()
        run = cli(["fit", "--config", str(_config(TEACHER_CONFIG, {}, 0, steps, teacher_dir, args.accelerator, {}))])
        record.update(steps=steps, fit_seconds=round(time.time() - start, 1), commit=git_commit())
        run.trainer.test(run.model, datamodule=run.datamodule, verbose=False)
        record["results"] = {"test": {k: float(run.model.last_results["test"][k]) for k in METRICS}}
        write_json(record_path, record)
    if not (features / "manifest.json").is_file():
        paired = next(a for a in COMPARISONS[1].arms if "paired (DN)" in a.name)
        cfg = cr.load(CONFIGS / paired.config)
        start = time.time()
        extract.main(["--config", str(cr.dump(cfg, teacher_dir / "extract_config.yaml")), "--teacher", str(ckpt),
                      "--out", str(features)])  # fmt: skip
        record["extract_seconds"] = round(time.time() - start, 1)
        write_json(record_path, record)
    return extra, record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="indoor-parsing claims", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/claims"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budget", type=float, default=1.0, help="multiplies every step count")
    parser.add_argument("--only", nargs="*", default=None, help="comparison names to run (default: all)")
    parser.add_argument("--accelerator", default="gpu" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    if len(args.seeds) < 3:
        print("note: fewer than 3 seeds; the report's spreads are not meaningful")
    records, teacher = [], None
    for comp in COMPARISONS:
        if args.only and comp.name not in args.only:
            continue
        extra = {}
        if comp.needs_teacher:
            extra, teacher = prepare_teacher(args)
        for seed in args.seeds:
            for arm in comp.arms:
                records.append(run_arm(comp, arm, seed, args, extra))
    paths = write_report(records, args.out, seeds=args.seeds, budget=args.budget, teacher=teacher)
    print("\n".join(f"wrote {p}" for p in paths))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

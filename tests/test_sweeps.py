"""Every W&B sweep file is valid: its schema, its parameter names and values against the CLI, and one sampled run."""

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from indoor_parsing import cli as cli_module
from indoor_parsing import lightning_cli
from tests.config_tools import shrink_config

REPO = Path(__file__).resolve().parents[1]
SWEEPS = sorted((REPO / "configs" / "sweeps").glob("*.yaml"))
METHODS = ("grid", "random", "bayes")
DISTRIBUTIONS = (
    "constant", "categorical", "int_uniform", "uniform", "q_uniform", "log_uniform", "log_uniform_values",
    "q_log_uniform_values", "inv_log_uniform_values", "normal", "q_normal", "log_normal", "q_log_normal",
)  # fmt: skip


def _ids(paths):
    return [p.stem for p in paths]


def candidates(spec: dict) -> list:
    """Values a parameter spec can produce that are worth parsing: every listed value, or the range ends."""
    if "value" in spec:
        return [spec["value"]]
    if "values" in spec:
        return list(spec["values"])
    return [spec["min"], spec["max"]]


def sample(spec: dict, rng: np.random.Generator):
    """One value from a parameter spec, as the W&B sweep controller would draw it (the forms used here)."""
    if "value" in spec:
        return spec["value"]
    if "values" in spec:
        return spec["values"][rng.integers(len(spec["values"]))]
    dist, lo, hi = spec.get("distribution"), spec["min"], spec["max"]
    if dist == "log_uniform_values":
        return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    if dist == "int_uniform" or (dist is None and isinstance(lo, int) and isinstance(hi, int)):
        return int(rng.integers(lo, hi + 1))
    return float(rng.uniform(lo, hi))


def cli_args(sweep: dict, tmp_path: Path, params: dict) -> list[str]:
    """The sweep's command as CLI arguments (after the program), experiment configs shrunk, ``${args}`` filled."""
    command = list(sweep["command"])
    assert command[0] == "${env}" and command[1].endswith("indoor-parsing"), command[:2]
    args = []
    for token in command[2:]:
        if token == "${args}":
            args += [f"--{k}={v}" for k, v in params.items()]
        elif token.startswith("configs/"):
            path = REPO / token
            assert path.is_file(), f"{token} (in the sweep's command) does not exist"
            args.append(str(shrink_config(path, tmp_path) if token.startswith("configs/experiments/") else path))
        else:
            args.append(token)
    return args


@pytest.mark.parametrize("path", SWEEPS, ids=_ids(SWEEPS))
def test_sweep_schema(path):
    sweep = yaml.safe_load(path.read_text())
    assert sweep["method"] in METHODS
    assert sweep["metric"]["goal"] in ("maximize", "minimize")
    assert sweep["metric"]["name"].startswith("val/")  # checkpoints and early termination watch validation metrics
    assert "${args}" in sweep["command"] and sweep["command"][2] == "fit"
    assert sweep.get("early_terminate", {"type": "hyperband"})["type"] == "hyperband"
    assert sweep["parameters"]
    for name, spec in sweep["parameters"].items():
        assert name.split(".")[0] in ("model", "data", "trainer", "seed_everything"), name
        assert len({"value", "values", "min"} & set(spec)) == 1, f"{name}: give one of value / values / min+max"
        if "min" in spec:
            assert spec["min"] < spec["max"], name
            assert spec.get("distribution", "uniform") in DISTRIBUTIONS, name
            if "log" in spec.get("distribution", ""):
                assert spec["min"] > 0, name
        if sweep["method"] == "grid":
            assert "min" not in spec, f"{name}: grid search needs listed values"


@pytest.mark.parametrize("path", SWEEPS, ids=_ids(SWEEPS))
def test_sweep_parameters_parse(path, tmp_path, cache_dir, monkeypatch):
    """Every listed value and range end is accepted by the CLI under the name the sweep gives it."""
    sweep = yaml.safe_load(path.read_text())
    params = sweep["parameters"]
    longest = max(len(candidates(s)) for s in params.values())
    monkeypatch.setattr(lightning_cli.IndoorCLI, "instantiate_classes", lambda self: None)  # parse only
    for i in range(longest):
        chosen = {k: candidates(s)[i % len(candidates(s))] for k, s in params.items()}
        run = cli_module.cli(cli_args(sweep, tmp_path, chosen)[1:], run=False)  # no subcommand with run=False
        for key, value in chosen.items():
            assert run.config[key] == value, (key, run.config[key], value)
    # Categorical strings are only checked by the classes themselves: build the model with each of them.
    monkeypatch.undo()
    strings = {k: [v for v in candidates(s) if isinstance(v, str)] for k, s in params.items()}
    strings = {k: v for k, v in strings.items() if v}
    for i in range(max(map(len, strings.values()), default=0)):
        chosen = {k: v[i % len(v)] for k, v in strings.items()}
        run = cli_module.cli(cli_args(sweep, tmp_path, chosen)[1:], run=False)
        for key, value in chosen.items():
            if key.startswith("model.init_args.") and key.count(".") == 2:
                assert run.model.hparams[key.split(".")[-1]] == value


@pytest.mark.parametrize("path", SWEEPS, ids=_ids(SWEEPS))
def test_sweep_sampled_run(path, tmp_path, cache_dir, monkeypatch):
    """One sampled parameter set trains (fast_dev_run) and logs the metric the sweep optimises."""
    monkeypatch.chdir(tmp_path)  # anything a run writes relative to the working directory stays in tmp
    sweep = yaml.safe_load(path.read_text())
    rng = np.random.default_rng(0)
    params = {k: sample(s, rng) for k, s in sweep["parameters"].items()}
    run = cli_module.cli([*cli_args(sweep, tmp_path, params), "--trainer.fast_dev_run=true"])
    assert run.trainer.state.finished and run.trainer.global_step >= 1
    for key, value in params.items():
        if key.startswith("model.init_args.") and key.count(".") == 2:
            assert run.model.hparams[key.split(".")[-1]] == value
    assert sweep["metric"]["name"] in run.trainer.callback_metrics, sorted(run.trainer.callback_metrics)

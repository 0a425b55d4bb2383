"""`claims --estimate`: each arm trains only a few timed steps, in its own folder, and the projection is
short fit + (full steps - short steps) x median step + test; a reused training costs nothing."""

import json

import pytest

from indoor_parsing.tools.claims import run as claims_run
from indoor_parsing.tools.claims.estimate import WARMUP, format_estimate
from indoor_parsing.tools.claims.plan import Arm, Comparison
from tests.config_tools import shrink_config

CFG = "baseline_resnet18_synthrooms.yaml"


@pytest.fixture
def estimate(tmp_path, monkeypatch):
    monkeypatch.setenv("INDOOR_PARSING_CACHE", str(tmp_path / "cache"))
    configs = tmp_path / "configs"
    configs.mkdir()
    shrink_config(claims_run.parse_args(["--out", str(tmp_path)]).configs / CFG, configs)
    one = Comparison("One", "-", "a", (Arm("a", CFG, 500),), claims=())
    twin = Comparison("Twin", "-", "same", (Arm("same", CFG, 500), Arm("longer", CFG, 2000)), claims=())
    args = claims_run.parse_args(["--out", str(tmp_path / "out"), "--configs", str(configs), "--seeds", "0", "1", "2",
                                  "--accelerator", "cpu", "--estimate", str(tmp_path / "est"),
                                  "--estimate-steps", str(WARMUP + 3)])  # fmt: skip
    return tmp_path, claims_run.estimate.run_estimate([one, twin], args, claims_run.Runner)


def test_estimate_times_a_few_steps_and_projects_the_full_arm(estimate):
    tmp_path, result = estimate
    assert not (tmp_path / "out").exists()  # nothing under --out
    rows = {r["arm"]: r for r in result["rows"]}
    for arm, full in (("a", 500), ("longer", 2000)):
        run = tmp_path / "est" / "runs" / f"{'One' if arm == 'a' else 'Twin'}__{arm}__seed0"
        clock = json.loads((run / "step_clock.json").read_text())
        record = json.loads((tmp_path / "est" / "records" / f"{run.name}.json").read_text())
        assert clock["steps"] == WARMUP + 3 and clock["timed"] == 2  # the short fit; warm-up steps not timed
        expected = record["fit_seconds"] + (full - clock["steps"]) * clock["step_seconds"]
        assert rows[arm]["fit_seconds"] == pytest.approx(expected) and rows[arm]["steps"] == full
        assert rows[arm]["test_seconds"] == pytest.approx(record["seconds"] - record["fit_seconds"])
    assert rows["longer"]["steps"] == 4 * rows["a"]["steps"]  # 4x the steps (a wall-time ratio was flaky)
    assert rows["same"]["fit_seconds"] == 0 and rows["same"]["reused_from"] == "One__a__seed0"
    per_seed = sum(r["fit_seconds"] + r["test_seconds"] for r in result["rows"])
    assert result["total_seconds"] == pytest.approx(3 * per_seed) and result["teacher"] is None
    assert "reuses One__a__seed0" in format_estimate(result)
    assert json.loads((tmp_path / "est" / "estimate.json").read_text())["total_seconds"] == result["total_seconds"]


def test_estimate_steps_must_exceed_the_warm_up(tmp_path):
    with pytest.raises(SystemExit, match="must exceed"):
        claims_run.parse_args(["--out", str(tmp_path), "--estimate", str(tmp_path), "--estimate-steps", str(WARMUP)])

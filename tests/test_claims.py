"""The claims check: statistics and report files, and one real arm run end to end at a tiny size."""

import csv
import math
from types import SimpleNamespace

import pytest

from indoor_parsing.claims import run as claims_run
from indoor_parsing.claims.plan import Arm, Comparison
from indoor_parsing.claims.report import summarise, write_report
from tests.config_tools import shrink_config


def _record(arm, seed, miou, eval_set="test"):
    metrics = {"pixel_acc": 0.5, "mean_acc": 0.4, "mIoU": miou, "fwIoU": 0.3}
    return {"comparison": "GeoAware", "arm": arm, "seed": seed, "steps": 3, "seconds": 1.0,
            "results": {eval_set: metrics}, "data": {}, "report": True}  # fmt: skip


def test_summary_is_mean_and_sample_std_in_percent():
    rows = [{"comparison": "c", "arm": "a", "eval_set": "test", "seed": s, "steps": 1, "seconds": 0, "report": True,
             "pixel_acc": v, "mean_acc": v, "mIoU": v, "fwIoU": v} for s, v in enumerate((0.1, 0.2, 0.3))]  # fmt: skip
    mean, std, n = summarise(rows)[("c", "a", "test")]["mIoU"]
    assert (mean, n) == (pytest.approx(20.0), 3) and std == pytest.approx(10.0)


def test_report_files(tmp_path):
    records = [_record("sem-only (plain CE)", s, 0.10 + 0.01 * s) for s in range(3)]
    records += [_record("GeoAware (full)", s, 0.30 + 0.01 * s) for s in range(3)]
    paths = write_report(records, tmp_path, seeds=[0, 1, 2], budget=1.0)
    md = paths[0].read_text()
    assert "| GeoAware (full) | test | 50.00 ± 0.00 | 40.00 ± 0.00 | 31.00 ± 1.00 | 30.00 ± 0.00 | +20.00 |" in md
    assert "+20.00 mIoU points (better" in md
    rows = list(csv.DictReader(paths[1].open()))
    assert len(rows) == 6 and math.isclose(float(rows[3]["mIoU"]), 0.30)
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_one_arm_runs_through_the_cli(tmp_path, monkeypatch):
    monkeypatch.setenv("INDOOR_PARSING_CACHE", str(tmp_path / "cache"))
    configs = tmp_path / "configs"
    configs.mkdir()
    shrink_config(claims_run.CONFIGS / "baseline_resnet18_synthrooms.yaml", configs)
    monkeypatch.setattr(claims_run, "CONFIGS", configs)
    comp = Comparison("Baseline", "-", "Unet", (Arm("Unet", "baseline_resnet18_synthrooms.yaml", 2),))
    args = SimpleNamespace(out=tmp_path / "out", budget=1.0, accelerator="cpu")
    record = claims_run.run_arm(comp, comp.arms[0], 0, args, {})
    assert record["steps"] == 2 and set(record["results"]["test"]) == {"pixel_acc", "mean_acc", "mIoU", "fwIoU"}
    assert 0.0 <= record["results"]["test"]["mIoU"] <= 1.0
    again = claims_run.run_arm(comp, comp.arms[0], 0, args, {})  # finished runs are not repeated
    assert again == record

"""The claims check: statistics and report files, and one real arm run end to end at a tiny size."""

import csv
import math
from types import SimpleNamespace

import pytest

from indoor_parsing.tools.claims import run as claims_run
from indoor_parsing.tools.claims.plan import Arm, Comparison
from indoor_parsing.tools.claims.report import paired, summarise, welch, write_report
from tests.config_tools import shrink_config


def _record(arm, seed, miou, eval_set="test", comparison="GeoAware"):
    metrics = {"pixel_acc": 0.5, "mean_acc": 0.4, "mIoU": miou, "fwIoU": 0.3}
    return {"comparison": comparison, "arm": arm, "seed": seed, "steps": 3, "seconds": 1.0,
            "results": {eval_set: metrics}, "data": {"settings": {"style": "source"}}, "report": True}  # fmt: skip


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
    assert ("| GeoAware (full) | test | 50.00 ± 0.00 | 40.00 ± 0.00 | 31.00 ± 1.00 | 30.00 ± 0.00 | "
            "+20.00 ± 0.82 vs sem-only (plain CE) |") in md  # fmt: skip
    assert "paper: GeoAware (full) > sem-only (plain CE). Here on test: +20.00 ± 0.82 mIoU points; holds" in md
    assert "paper: sem + L_s" not in md  # no runs of that arm, no finding
    assert '`{"style": "source"}`' in md
    rows = list(csv.DictReader(paths[1].open()))
    assert len(rows) == 6 and math.isclose(float(rows[3]["mIoU"]), 0.30)
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_welch_matches_scipy_and_noise_is_not_a_gain(tmp_path):
    from scipy import stats

    a, b = [0.31, 0.29, 0.36], [0.30, 0.27, 0.28]
    rows = [{"comparison": "c", "arm": arm, "eval_set": "test", "seed": s, "steps": 1, "seconds": 0, "report": True,
             "pixel_acc": v, "mean_acc": v, "mIoU": v, "fwIoU": v}
            for arm, vals in (("a", a), ("b", b)) for s, v in enumerate(vals)]  # fmt: skip
    summary = summarise(rows)
    d, se, p = welch(summary[("c", "a", "test")], summary[("c", "b", "test")])
    ref = stats.ttest_ind([100 * v for v in a], [100 * v for v in b], equal_var=False)
    assert d == pytest.approx(100 * (sum(a) - sum(b)) / 3) and p == pytest.approx(ref.pvalue)
    records = [_record("PSPNet (target-style 2D)", s, v, comparison="Distill3D") for s, v in enumerate(b)]
    records += [_record("3D-to-2D unpaired", s, v, comparison="Distill3D") for s, v in enumerate(a)]
    records += [_record("PSPNet", s, v, comparison="Distill3D") for s, v in enumerate(a)]
    teacher = {"config": "t.yaml", "steps": 5, "fit_seconds": 600.0, "extract_seconds": 60.0, "commit": "abc",
               "results": {"test": {"pixel_acc": 0.9, "mean_acc": 0.8, "mIoU": 0.7, "fwIoU": 0.6}}}  # fmt: skip
    md = write_report(records, tmp_path, seeds=[0, 1, 2], budget=1.0, teacher=teacher)[0].read_text()
    assert "vs PSPNet (target-style 2D) |" in md  # the unpaired arm's own baseline, trained on its 2D data
    assert "| PSPNet (target-style 2D) | test | 50.00 ± 0.00 | 40.00 ± 0.00 | 28.33 ± 1.53 | 30.00 ± 0.00 |  |" in md
    assert "3D teacher (t.yaml, 5 steps, 10.0 min, trained at `abc`)" in md and "mIoU 70.00" in md
    assert "11 min of training and testing in all" in md  # 9 runs x 1 s + the teacher's 11 min
    assert f"not distinguishable from seed noise (Welch p = {p:.2f})" in md


def test_paired_test_uses_per_seed_differences(tmp_path):
    from scipy import stats

    a, b = {0: 0.10, 1: 0.20, 2: 0.31}, {0: 0.090, 1: 0.189, 2: 0.301, 3: 0.5}  # seed 3 has no partner
    d, se, p = paired(a, b)
    assert d == pytest.approx(1.0) and se > 0  # points: (1.0 + 1.1 + 0.9) / 3
    assert p == pytest.approx(stats.ttest_rel([10, 20, 31], [9, 18.9, 30.1]).pvalue) and p < 0.05
    records = [_record("source only", s, b[s], "scan1", "S4-Net") for s in range(3)]
    records += [_record("S4-Net (sensor depth)", s, a[s], "scan1", "S4-Net") for s in range(3)]
    md = write_report(records, tmp_path, seeds=[0, 1, 2], budget=1.0)[0].read_text()
    assert f"holds (paired t-test over seeds p = {p:.3f}); Welch p = 0.9" in md  # the seed spread hides it from Welch


def test_one_arm_runs_through_the_cli(tmp_path, monkeypatch):
    monkeypatch.setenv("INDOOR_PARSING_CACHE", str(tmp_path / "cache"))
    configs = tmp_path / "configs"
    configs.mkdir()
    shrink_config(claims_run.CONFIGS / "baseline_resnet18_synthrooms.yaml", configs)
    monkeypatch.setattr(claims_run, "CONFIGS", configs)
    comp = Comparison("Baseline", "-", "Unet", (Arm("Unet", "baseline_resnet18_synthrooms.yaml", 2),), claims=())
    args = SimpleNamespace(out=tmp_path / "out", budget=1.0, accelerator="cpu")
    extra = {"data.init_args.feature_cache": str(tmp_path / "cache")}  # only for configs that have the key
    record = claims_run.run_arm(comp, comp.arms[0], 0, args, extra)
    assert record["steps"] == 2 and set(record["results"]["test"]) == {"pixel_acc", "mean_acc", "mIoU", "fwIoU"}
    assert 0.0 <= record["results"]["test"]["mIoU"] <= 1.0 and record["commit"] and record["overrides"] == {}
    again = claims_run.run_arm(comp, comp.arms[0], 0, args, {})  # finished runs are not repeated
    assert again == record

"""The claims check: statistics (MDE against a hand value), report files, and tiny arms run end to end."""

import csv
import json
import math
import subprocess

import pytest

from indoor_parsing.tools.claims import run as claims_run
from indoor_parsing.tools.claims.plan import (
    COMPARISONS,
    R1_PREDICTED,
    R1_SENSOR,
    R1_SOURCE,
    RIG_ROOMS,
    S4NET,
    TARGET_ROOMS,
    Arm,
    Claim,
    Comparison,
    PaperGain,
)
from indoor_parsing.tools.claims.report import summarise, write_report
from indoor_parsing.tools.claims.stats import mde, paired, welch
from tests.config_tools import shrink_config


def _record(arm, seed, miou, eval_set="test", comparison="GeoAware"):
    metrics = {"pixel_acc": 0.5, "mean_acc": 0.4, "mIoU": miou, "fwIoU": 0.3}
    return {"comparison": comparison, "arm": arm, "seed": seed, "steps": 3, "seconds": 1.0, "fit_seconds": 0.5,
            "results": {eval_set: metrics}, "data": {"settings": {"style": "source"}}, "report": True}  # fmt: skip


def test_summary_is_mean_and_sample_std_in_percent():
    rows = [{"comparison": "c", "arm": "a", "eval_set": "test", "seed": s, "steps": 1, "seconds": 0, "report": True,
             "pixel_acc": v, "mean_acc": v, "mIoU": v, "fwIoU": v} for s, v in enumerate((0.1, 0.2, 0.3))]  # fmt: skip
    mean, std, n = summarise(rows)[("c", "a", "test")]["mIoU"]
    assert (mean, n) == (pytest.approx(20.0), 3) and std == pytest.approx(10.0)


def test_mde_and_welch_df_match_hand_values():
    from scipy import stats

    # a: 31, 29, 36 (var 13), b: 30, 27, 28 (var 7/3), n = 3 each
    a, b = [31.0, 29.0, 36.0], [30.0, 27.0, 28.0]
    d, se, p, df = welch(a, b)
    va, vb = 13 / 3, 7 / 9
    assert se == pytest.approx(math.sqrt(va + vb)) and df == pytest.approx((va + vb) ** 2 / (va**2 / 2 + vb**2 / 2))
    assert p == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue) and d == pytest.approx(11 / 3)
    # t_{0.975,4} = 2.776445, t_{0.8,4} = 0.940965 (tables): MDE = 3.717410 * s.e.
    assert mde(1.0, 4.0) == pytest.approx(3.717410, abs=1e-5)
    pd, pse, pp, pdf = paired({0: 10.0, 1: 20.0, 2: 31.0}, {0: 9.0, 1: 18.9, 2: 30.1, 3: 50.0})
    assert pdf == 2 and pd == pytest.approx(1.0) and pse == pytest.approx(0.1 / math.sqrt(3))
    assert pp == pytest.approx(stats.ttest_rel([10, 20, 31], [9, 18.9, 30.1]).pvalue)


def test_report_flags_underpowered_claims_and_low_baselines(tmp_path):
    records = [_record("sem-only (plain CE)", s, 0.10 + 0.01 * s) for s in range(3)]
    records += [_record("GeoAware (full)", s, 0.30 + 0.01 * s) for s in range(3)]
    records += [_record("+ DepEm", s, v) for s, v in enumerate((0.30, 0.10, 0.50))]
    paths = write_report(records, tmp_path, seeds=[0, 1, 2], budget=1.0, commit="abc", data_options="--data-seed 3")
    md = paths[0].read_text()
    assert ("| GeoAware (full) | test | 50.00 ± 0.00 | 40.00 ± 0.00 | 31.00 ± 1.00 | 30.00 ± 0.00 | "
            "+20.00 ± 0.82 vs sem-only (plain CE) |") in md  # fmt: skip
    mde_full = mde(math.sqrt(2 / 3), 4.0)
    assert "| GeoAware (full) > sem-only (plain CE) | test | [0, 1, 2] | 11.00 | +20.00 ± 0.82 | Welch" in md
    assert f"| {mde_full:.2f} |" in md and "**baseline below 25 % mIoU**" in md
    assert "**MDE exceeds the paper's gain: underpowered**" in md.split("GeoAware (full) > + DepEm")[1].split("\n")[0]
    assert "total CPU time (sum of fit seconds, each training once) 0.1 min" in md
    assert "--data-seed 3" in md and "`abc`" in md
    rows = list(csv.DictReader(paths[1].open()))
    assert len(rows) == 9 and math.isclose(float(rows[3]["mIoU"]), 0.30)
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_names_each_arms_seeds_when_they_differ(tmp_path):
    """A run stopped mid-round leaves arms at different seed counts: the row must not print their union."""
    records = [_record("sem-only (plain CE)", s, 0.10 + 0.01 * s) for s in range(3)]
    records += [_record("GeoAware (full)", s, 0.30 + 0.01 * s) for s in range(4)]
    md = write_report(records, tmp_path, seeds=[0, 1, 2, 3], budget=1.0, commit="abc", data_options="")[0].read_text()
    row = md.split("| GeoAware (full) > sem-only (plain CE) | test | ")[1].split("\n")[0]
    assert row.startswith("GeoAware (full) [0, 1, 2, 3], sem-only (plain CE) [0, 1, 2] |")


def test_plan_covers_the_papers_tables_and_table8_is_an_extra_evaluation():
    names = {c.name for c in COMPARISONS}
    assert {"GeoAware", "GeoAware partial depth", "Distill3D paired", "Distill3D unpaired", "S4-Net"} <= names
    paired_comp = next(c for c in COMPARISONS if c.name == "Distill3D paired")
    for rooms, style in ((TARGET_ROOMS, "target_v2"), (RIG_ROOMS, "target_rig_v2")):
        with_target = {a.name for a in paired_comp.arms if a.extra_evals.get(rooms) == {"style": style}}
        assert with_target == {"PSPNet", "3D-to-2D paired (DN)"}
        assert any(c.eval_sets == (rooms,) and c.paper.table == "Table 8" for c in paired_comp.claims)
    for comp in COMPARISONS:
        arms = {a.name for a in comp.arms}
        assert all(c.better in arms and c.worse in arms and c.paper is not None for c in comp.claims)


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.setenv("INDOOR_PARSING_CACHE", str(tmp_path / "cache"))
    configs = tmp_path / "configs"
    configs.mkdir()
    shrink_config(claims_run.parse_args(["--out", str(tmp_path)]).configs / "baseline_resnet18_synthrooms.yaml",
                  configs)  # fmt: skip
    cfg = "baseline_resnet18_synthrooms.yaml"
    arms = (Arm("Unet", cfg, 2, extra_evals={TARGET_ROOMS: {"style": "target"}}),
            Arm("Unet longer", cfg, 3, init_from="Unet", init_key="ckpt_path"))  # fmt: skip
    comp = Comparison("Tiny", "-", "Unet", arms, claims=(Claim("Unet longer", "Unet", PaperGain("T", 10.0, 11.0)),))
    return tmp_path, configs, comp


def _args(tmp_path, configs, *extra):
    return claims_run.parse_args(["--out", str(tmp_path / "out"), "--configs", str(configs), "--seeds", "0",
                                  "--accelerator", "cpu", *extra])  # fmt: skip


def test_tiny_plan_end_to_end_with_extra_evaluation_and_resume(tiny):
    tmp_path, configs, comp = tiny
    args = _args(tmp_path, configs)
    md = claims_run.run_plan([comp], args)[0].read_text()
    record = json.loads((tmp_path / "out" / "records" / "Tiny__Unet__seed0.json").read_text())
    assert set(record["results"]) == {"test", TARGET_ROOMS} and record["steps"] == 2 and record["fingerprint"]
    assert f"| Unet | {TARGET_ROOMS} |" in md
    again = claims_run.Runner(args).arm(comp, comp.arms[0], 0)
    assert again == record  # same settings: not trained again
    changed = claims_run.Runner(_args(tmp_path, configs, "--data-seed", "1")).arm(comp, comp.arms[0], 0)
    assert changed["fingerprint"] != record["fingerprint"] and changed["data_options"] == "--data-seed 1"


def test_equal_training_in_another_comparison_is_reused_not_retrained(tiny, monkeypatch):
    tmp_path, configs, comp = tiny
    runner = claims_run.Runner(_args(tmp_path, configs))
    cfg = comp.arms[0].config
    one = Comparison("One", "-", "a", (Arm("a", cfg, 2),), claims=())
    twin = Comparison("Twin", "-", "same", (Arm("same", cfg, 2), Arm("other", cfg, 1)), claims=())
    first = runner.arm(one, one.arms[0], 0)
    trained = []
    real = claims_run._fit_and_test
    monkeypatch.setattr(claims_run, "_fit_and_test", lambda *a: trained.append(a[2].name) or real(*a))
    reused = runner.arm(twin, twin.arms[0], 0)
    assert trained == [] and reused["reused_from"] == "One__a__seed0"
    assert (reused["comparison"], reused["arm"], reused["results"]) == ("Twin", "same", first["results"])
    assert (tmp_path / "out" / "records" / "Twin__same__seed0.json").is_file()
    runner.arm(twin, twin.arms[1], 0)  # other settings (1 step): trained
    assert trained == ["other"]


def test_commit_commits_only_the_record(tiny):
    tmp_path, configs, comp = tiny
    git = ["git", "-C", str(tmp_path)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "config", "user.email", "t@t"], check=True)
    subprocess.run([*git, "config", "user.name", "t"], check=True)
    (tmp_path / "other.txt").write_text("staged, not to be committed")
    subprocess.run([*git, "add", "other.txt"], check=True)
    args = _args(tmp_path, configs, "--commit")
    claims_run.Runner(args).arm(comp, Arm("Unet", "baseline_resnet18_synthrooms.yaml", 1), 0)
    log = subprocess.run([*git, "log", "--format=%s", "--name-only"], capture_output=True, text=True).stdout
    assert log.split() == ["claims:", "Tiny", "/", "Unet", "seed", "0", "out/records/Tiny__Unet__seed0.json"]
    status = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True).stdout
    assert "A  other.txt" in status


def test_missing_configs_folder_is_named(tmp_path):
    with pytest.raises(SystemExit, match="no-such"):
        claims_run.parse_args(["--configs", str(tmp_path / "no-such")])


def test_scoped_synthrooms_options_reach_only_their_style(tmp_path):
    args = claims_run.parse_args(["--out", str(tmp_path), "--data-seed", "7", "--synthrooms", "target:style=x.yaml"])
    config = claims_run._config("s4net_resnet18_synthrooms.yaml", {}, 0, 1, tmp_path, args, {})
    source, target = (config["data"]["init_args"][k]["init_args"] for k in ("source", "target"))
    assert (source["style"], target["style"], source["seed"], target["seed"]) == ("source_v2", "x.yaml", 7, 7)


def test_run_names_are_portable_file_names():
    """Records are committed: a name Windows or macOS cannot check out (``room 1: ...``) would break the clone."""
    names = [claims_run.rec.run_name(c.name, a.name, 0) for c in COMPARISONS for a in c.arms]
    assert names and not [n for n in names if set(n) & set(':<>"|?*\\ ')], names


@pytest.mark.parametrize(
    ("extra", "room", "source_seed"),
    [([], 0, 0), (["--data-seed", "7"], 7, 7), (["--synthrooms", "target:seed=5"], 5, 0)],
)
def test_s4net_second_room_is_the_next_data_seed_adapted_from_the_same_source_stage(
    tmp_path, monkeypatch, extra, room, source_seed
):
    seen = {}

    def fake_fit(config, run_dir, arm, args):
        seen[arm.name] = config
        (run_dir / "ckpt").mkdir(parents=True, exist_ok=True)
        (run_dir / "ckpt" / "last.ckpt").write_bytes(b"weights")
        return {"scan1": {"mIoU": 0.2}}, {}, 1.0, 0.0

    monkeypatch.setattr(claims_run, "_fit_and_test", fake_fit)
    runner = claims_run.Runner(claims_run.parse_args(["--out", str(tmp_path), *extra]))
    records = {arm.name: runner.arm(S4NET, arm, 0) for arm in S4NET.arms}
    blocks = {name: config["data"]["init_args"] for name, config in seen.items()}
    source_stage = blocks.pop("source stage")  # labelled source rooms only
    assert {name: b["target"]["init_args"]["seed"] for name, b in blocks.items()} == {
        "source only": room, "S4-Net (sensor depth)": room, "S4-Net (predicted depth)": room,
        R1_SOURCE: room + 1, R1_SENSOR: room + 1, R1_PREDICTED: room + 1}  # fmt: skip
    assert {b["source"]["init_args"]["seed"] for b in blocks.values()} == {source_stage["seed"]} == {source_seed}
    assert records[R1_SENSOR]["overrides"]["data.init_args.target.init_args.seed"] == room + 1  # as trained
    starts = {name: c["model"]["init_args"]["init_checkpoint"] for name, c in seen.items() if name != "source stage"}
    assert len(set(starts.values())) == 1 and "S4-Net__source_stage__seed0" in next(iter(starts.values()))
    assert seen[R1_SOURCE]["model"]["init_args"]["consistency_weight"] == 0.0
    assert S4NET.baseline_of(R1_SENSOR) == S4NET.baseline_of(R1_PREDICTED) == R1_SOURCE


def test_seed_rounds_add_seeds_only_where_a_claim_is_underpowered(tmp_path, monkeypatch):
    """Every comparison gets the first --min-seeds seeds; only an underpowered one gets the rest of --seeds."""
    clear = Comparison("Clear", "-", "a", (Arm("a", "x.yaml", 1), Arm("b", "x.yaml", 1)),
                       claims=(Claim("b", "a", PaperGain("T", 30.0, 36.0)),))  # fmt: skip
    noisy = Comparison("Noisy", "-", "a", (Arm("a", "x.yaml", 1), Arm("b", "x.yaml", 1)),
                       claims=(Claim("b", "a", PaperGain("T", 30.0, 30.3)),))  # fmt: skip
    wobble = (0.0, 0.004, -0.003, 0.002, -0.001)

    def fake_arm(self, comp, arm, seed, force=False):
        miou = 0.30 + (0.06 if arm.name == "b" else 0.0) + wobble[seed] * (1 if arm.name == "b" else -1)
        return _record(arm.name, seed, miou, comparison=comp.name)

    monkeypatch.setattr(claims_run.Runner, "arm", fake_arm)
    args = claims_run.parse_args(["--out", str(tmp_path), "--seeds", "0", "1", "2", "3", "4", "--accelerator", "cpu"])
    md = claims_run.run_plan([clear, noisy], args)[0].read_text()
    rows = list(csv.DictReader((tmp_path / "claims.csv").open()))
    seeds = {c: sorted({int(r["seed"]) for r in rows if r["comparison"] == c}) for c in ("Clear", "Noisy")}
    # Clear: a 6-point effect, MDE about 2.5 points < the paper's +20 % of 30 (6 points): 3 seeds suffice.
    # Noisy: the paper's +1 % of 30 (0.3 points) is below any MDE here: all 5 seeds.
    assert seeds == {"Clear": [0, 1, 2], "Noisy": [0, 1, 2, 3, 4]}
    assert "| b > a | test | [0, 1, 2, 3, 4] |" in md and "| b > a | test | [0, 1, 2] |" in md


def test_a_comparison_underpowered_at_min_seeds_gets_every_seed(tmp_path, monkeypatch):
    """Issue 14: >= 5 seeds where 3 cannot detect the paper's gain, even if 4 could."""
    comp = Comparison("C", "-", "a", (Arm("a", "x.yaml", 1), Arm("b", "x.yaml", 1)),
                      claims=(Claim("b", "a", PaperGain("T", 30.0, 36.0)),))  # fmt: skip
    monkeypatch.setattr(claims_run.Runner, "arm", lambda self, comp, arm, seed, force=False: _record(
        arm.name, seed, 0.30 + 0.05 * (arm.name == "b") + 0.001 * seed, comparison=comp.name))  # fmt: skip
    seen = []

    def underpowered_below_4_seeds(records, comparison):
        seen.append(len({r["seed"] for r in records}))
        return seen[-1] < 4

    monkeypatch.setattr(claims_run, "underpowered", underpowered_below_4_seeds)
    args = claims_run.parse_args(["--out", str(tmp_path), "--seeds", "0", "1", "2", "3", "4", "--accelerator", "cpu"])
    claims_run.run_plan([comp], args)
    rows = list(csv.DictReader((tmp_path / "claims.csv").open()))
    assert sorted({int(r["seed"]) for r in rows}) == [0, 1, 2, 3, 4] and seen[0] == 3


def test_report_only_reports_the_records_made_and_trains_nothing(tiny, monkeypatch):
    tmp_path, configs, comp = tiny
    claims_run.run_plan([comp], _args(tmp_path, configs))  # seed 0 of both arms
    monkeypatch.setattr(claims_run, "_fit_and_test", lambda *a: pytest.fail("--report-only trained"))
    md = claims_run.run_plan([comp], _args(tmp_path, configs, "--seeds", "0", "1", "--report-only"))[0].read_text()
    rows = list(csv.DictReader((tmp_path / "out" / "claims.csv").open()))
    assert sorted({(r["arm"], r["seed"]) for r in rows}) == [("Unet", "0"), ("Unet longer", "0")]
    assert "| Unet longer > Unet | test | [0] |" in md
    with pytest.raises(SystemExit, match="no record matches"):
        claims_run.run_plan([comp], _args(tmp_path, configs, "--data-seed", "5", "--report-only"))


def test_teacher_weights_are_kept_slim_and_spare_a_refit(tmp_path, monkeypatch):
    import torch

    from indoor_parsing.io import write_json

    full = tmp_path / "last.ckpt"
    torch.save({"state_dict": {"w": torch.ones(3)}, "hyper_parameters": {"a": 1}, "optimizer_states": [1] * 1000,
                "loops": {}, "pytorch-lightning_version": "2"}, full)  # fmt: skip
    args = claims_run.parse_args(["--out", str(tmp_path / "out"), "--accelerator", "cpu"])
    runner = claims_run.Runner(args)
    weights = args.out / claims_run.TEACHER_WEIGHTS
    sha = claims_run.keep_weights(full, weights)
    kept = torch.load(weights, weights_only=False)
    assert set(kept) == {"state_dict", "hyper_parameters", "pytorch-lightning_version"}
    assert torch.equal(kept["state_dict"]["w"], torch.ones(3))
    record = {"config": "teacher3d_synthrooms.yaml", "fingerprint": runner.teacher_fingerprint(), "weights_sha256": sha}
    write_json(args.out / "records" / "teacher3d.json", record)
    extracted = []
    monkeypatch.setattr(claims_run.Runner, "_extract", lambda self, ckpt: extracted.append(ckpt) or 1.0)
    monkeypatch.setattr("indoor_parsing.cli.cli", lambda *a: pytest.fail("refitted a teacher whose weights exist"))
    assert runner.prepare_teacher()["fingerprint"] == record["fingerprint"] and extracted == [weights]
    weights.write_bytes(b"other weights")  # not the recorded ones: fitted again
    with pytest.raises(pytest.fail.Exception, match="refitted"):
        claims_run.Runner(args).prepare_teacher()

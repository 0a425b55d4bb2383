"""``indoor-parsing curves`` on tiny SynthRooms: points at every validation, resume by config, the picture."""

import argparse
import math
import multiprocessing
import time
from pathlib import Path

import pytest

from indoor_parsing.tools import config_rewrite as cr
from indoor_parsing.tools import curves
from tests.config_tools import shrink_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "experiments"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, cache_dir) -> list[Path]:
    out = tmp_path_factory.mktemp("curve_configs")
    names = ("baseline_resnet18_synthrooms.yaml", "distill3d_resnet18_synthrooms.yaml")  # distill3d: a feature cache
    return [shrink_config(CONFIGS / name, out / Path(name).stem) for name in names]


def _run(configs, out: Path, *extra) -> int:
    return curves.main(["--configs", *map(str, configs), "--steps", "4", "--every", "2", "--out", str(out), *extra])


def _steps(rows: list[dict], config: str) -> list[int]:
    return [int(r["step"]) for r in rows if r["config"] == config]


def test_curves_record_resume_and_plot(tiny, tmp_path, monkeypatch):
    out = tmp_path / "curves"
    assert _run(tiny, out, "--synthrooms", "color_jitter=0.1") == 0
    rows = curves.read_rows(out / "curves.csv")
    for config in tiny:
        assert _steps(rows, config.stem) == [2, 4]
    for r in rows:
        assert math.isfinite(float(r["val_mIoU"])) and 0.0 <= float(r["val_mIoU"]) <= 1.0
        assert math.isfinite(float(r["train_loss"])) and float(r["cpu_s"]) > 0 and float(r["wall_s"]) > 0
        assert r["overrides"] == "synthrooms.color_jitter=0.1" and r["cpu_clock"] == "process+workers"
    first = [r for r in rows if r["config"] == tiny[0].stem]
    assert float(first[1]["cpu_s"]) > float(first[0]["cpu_s"]) and float(first[1]["wall_s"]) > float(first[0]["wall_s"])
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    trained = []
    real_train = curves.train
    monkeypatch.setattr(curves, "train", lambda path, on_point: (trained.append(path), real_train(path, on_point)))
    assert _run(tiny, out, "--synthrooms", "color_jitter=0.1") == 0
    assert trained == [] and curves.read_rows(out / "curves.csv") == rows  # finished configs: no training

    # A killed run left the second config with its first point only: it alone is retrained, from step 0.
    curves.write_rows(out / "curves.csv", rows[:-1])
    (out / "curves.png").unlink()
    assert _run(tiny, out, "--synthrooms", "color_jitter=0.1") == 0
    again = curves.read_rows(out / "curves.csv")
    assert [Path(p).parent.name for p in trained] == [f"{tiny[1].stem}__seed0"]
    assert _steps(again, tiny[0].stem) == [2, 4] and _steps(again, tiny[1].stem) == [2, 4]
    assert (out / "curves.png").is_file()

    # Other overrides are another curve: trained, next to the first.
    assert _run(tiny[:1], out) == 0
    assert len(trained) == 2 and len(curves.read_rows(out / "curves.csv")) == 6


def test_steps_must_be_a_multiple_of_every(tmp_path):
    with pytest.raises(SystemExit):
        curves.main(["--configs", str(CONFIGS / "baseline_resnet18_synthrooms.yaml"), "--steps", "5", "--every", "2",
                     "--out", str(tmp_path)])  # fmt: skip


def _burn(seconds: float, burnt, release) -> None:
    start = time.process_time()
    while time.process_time() - start < seconds:
        pass
    burnt.set()
    release.wait()


def test_cpu_clock_counts_live_and_joined_workers():
    ctx = multiprocessing.get_context("fork")
    burnt, release = ctx.Event(), ctx.Event()
    before, clock = curves.cpu_clock()
    worker = ctx.Process(target=_burn, args=(0.5, burnt, release))
    worker.start()
    burnt.wait()
    live, _ = curves.cpu_clock()  # the worker is alive, idle
    release.set()
    worker.join()
    joined, _ = curves.cpu_clock()
    assert clock == "process+workers"
    assert live - before >= 0.45 and joined - before >= 0.45 and joined - live < 0.3  # counted once


def test_missing_teacher_features_come_from_the_claims_teacher(tiny, tmp_path, monkeypatch):
    args = argparse.Namespace(override=[], synthrooms=[], seed=3, steps=4, every=2)
    monkeypatch.setattr(curves, "teacher_features", lambda args: "prepared/features")
    kept = cr.load(curves.build_config(tiny[1], args, tmp_path / "kept"))  # its smoke cache exists
    assert kept["data"]["init_args"]["feature_cache"] == cr.load(tiny[1])["data"]["init_args"]["feature_cache"]
    args.override = [curves.parse_override("data.init_args.feature_cache=nowhere")]
    built = cr.load(curves.build_config(tiny[1], args, tmp_path / "built"))
    assert built["data"]["init_args"]["feature_cache"] == "prepared/features" and built["seed_everything"] == 3
    assert built["trainer"]["val_check_interval"] == 2 and built["trainer"]["max_steps"] == 4


def test_legend_names_overrides_by_their_last_key_part():
    text = "model.init_args.consistency_weight=0.0;data.init_args.source.init_args.batch_size=8;a.note=x=y"
    assert curves._short(text) == "consistency_weight=0.0, batch_size=8, note=x=y"

"""The CLI end to end on tiny SynthRooms: fit, test report, predict, print_config, exact resume."""

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from indoor_parsing.cli import cli, main
from indoor_parsing.data.taxonomy import colorize
from tests.config_tools import shrink_config

BASELINE = Path(__file__).resolve().parents[1] / "configs" / "experiments" / "baseline_resnet18_synthrooms.yaml"


@pytest.fixture
def config(tmp_path, monkeypatch):
    monkeypatch.setenv("INDOOR_PARSING_CACHE", str(tmp_path / "cache"))
    return shrink_config(BASELINE, tmp_path)


def _fit(config, *extra):
    return cli(["fit", "--config", str(config), "--trainer.enable_progress_bar=false", *extra])


def test_fit_test_predict(config, tmp_path):
    run = _fit(config, "--trainer.max_epochs=1")
    ckpt_dir = tmp_path / "ckpt"
    assert (ckpt_dir / "best.ckpt").is_file() and (ckpt_dir / "last.ckpt").is_file()
    run = cli(["test", "--config", str(config), "--ckpt_path", str(ckpt_dir / "best.ckpt")])
    rows = list(csv.reader((ckpt_dir / "test_metrics.csv").open()))
    values = {r[0]: float(r[1]) for r in rows[1:5]}
    assert set(values) == {"pixel_acc", "mean_acc", "mIoU", "fwIoU"}
    assert all(0.0 <= v <= 1.0 for v in values.values())
    assert "mIoU" in (ckpt_dir / "test_metrics.md").read_text()
    logged = run.trainer.callback_metrics
    assert float(logged["test/mIoU"]) == pytest.approx(values["mIoU"], abs=1e-5)

    out = tmp_path / "pred"
    cli(["predict", "--config", str(config), "--ckpt_path", str(ckpt_dir / "best.ckpt"),
         "--predictions.output_dir", str(out)])  # fmt: skip
    index = sorted(p for p in out.rglob("*.png") if not p.name.endswith(("_color.png", "_conf.png")))
    colour = sorted(out.rglob("*_color.png"))
    assert index and len(index) == len(colour)
    ids = np.asarray(Image.open(index[0]))
    assert ids.shape == (48, 64) and ids.max() < 20
    preview = np.asarray(Image.open(colour[0]))  # the colour map with a legend of its classes to the right
    np.testing.assert_array_equal(preview[:48, :64], colorize(ids, 20))
    assert preview.shape[1] > 64 and (out / "classes.csv").is_file()


def test_print_config(config, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(config), "--print_config"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert "indoor_parsing.data.synthrooms.SynthRoomsDataModule" in printed and "encoder_name: resnet18" in printed


def test_resume_matches_uninterrupted_run(config, tmp_path):
    common = ["--trainer.deterministic=true", "--trainer.limit_val_batches=1"]
    straight = _fit(config, "--trainer.max_epochs=2", "--checkpoint.dirpath", str(tmp_path / "a"), *common)
    kill = '--trainer.callbacks+={"class_path": "tests.helpers.KillAfterEpoch", "init_args": {"epoch": 0}}'
    with pytest.raises(RuntimeError, match="simulated kill"):
        _fit(config, "--trainer.max_epochs=2", "--checkpoint.dirpath", str(tmp_path / "b"), *common, kill)
    assert (tmp_path / "b" / "last.ckpt").is_file()  # something to resume from
    resumed = _fit(config, "--trainer.max_epochs=2", "--checkpoint.dirpath", str(tmp_path / "b"), *common,
                   "--ckpt_path", "last")  # fmt: skip
    assert resumed.trainer.global_step == straight.trainer.global_step > 0
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)

"""Experiment workflow: the W&B logger's online / offline choice, the picture functions, WandbMedia in a tiny fit."""

from pathlib import Path

import indoor_parsing  # noqa: F401  (its torchvision guard must run before lightning is imported)

# isort: split
import lightning as L
import numpy as np
import pytest
import torch
import yaml
from lightning.pytorch.loggers import CSVLogger
from PIL import Image

from indoor_parsing.cli import cli
from indoor_parsing.data.synthrooms import SynthRoomsDataModule
from indoor_parsing.data.taxonomy import overlay, palette
from indoor_parsing.methods.base import SegmentationModule
from indoor_parsing.training.loggers import AutoWandbLogger, flatten_config, wandb_mode
from indoor_parsing.training.media import (
    WandbMedia,
    confusion_image,
    depth_to_rgb,
    iou_rows,
    normalize_rows,
    sample_panel,
)
from tests.config_tools import TINY_SYNTH, shrink_config

REPO = Path(__file__).resolve().parents[1]
NETRC = "machine api.wandb.ai\n  login user\n  password 0123456789abcdef\n"


# ---- online / offline ---------------------------------------------------------------------------------------
def test_mode_follows_credentials(tmp_path):
    none = tmp_path / "missing_netrc"
    assert wandb_mode({}, none) == "offline"
    assert wandb_mode({"WANDB_API_KEY": "k"}, none) == "online"
    assert wandb_mode({"WANDB_API_KEY": "  "}, none) == "offline"
    (tmp_path / "netrc").write_text(NETRC)
    assert wandb_mode({}, tmp_path / "netrc") == "online"
    assert wandb_mode({"NETRC": str(tmp_path / "netrc")}) == "online"
    (tmp_path / "other").write_text("machine github.com login u password p\n")
    assert wandb_mode({}, tmp_path / "other") == "offline"
    # A self-hosted server is looked up under its own host name.
    assert wandb_mode({"WANDB_BASE_URL": "https://wandb.example.org"}, tmp_path / "netrc") == "offline"
    (tmp_path / "corp").write_text("machine wandb.example.org login u password p\n")
    assert wandb_mode({"WANDB_BASE_URL": "https://wandb.example.org"}, tmp_path / "corp") == "online"
    # A file the stdlib parser rejects still counts when it names the host.
    (tmp_path / "odd").write_text("machine api.wandb.ai login user password key\nmacdef x\n")
    assert wandb_mode({}, tmp_path / "odd") == "online"


def test_wandb_mode_variable_wins(tmp_path):
    (tmp_path / "netrc").write_text(NETRC)
    assert wandb_mode({"WANDB_MODE": "offline", "WANDB_API_KEY": "k"}, tmp_path / "netrc") == "offline"
    assert wandb_mode({"WANDB_MODE": "dryrun"}, tmp_path / "netrc") == "offline"
    assert wandb_mode({"WANDB_MODE": "disabled", "WANDB_API_KEY": "k"}) == "disabled"
    assert wandb_mode({"WANDB_MODE": "online"}, tmp_path / "missing") == "online"


def test_logger_goes_offline_without_credentials(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_BASE_URL", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    logger = AutoWandbLogger(save_dir=str(tmp_path))
    assert logger.mode == "offline" and logger._wandb_init["mode"] == "offline"
    (tmp_path / "netrc").write_text(NETRC)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    assert AutoWandbLogger(save_dir=str(tmp_path)).mode == "online"  # nothing is started before first use
    with pytest.raises(ValueError, match="mode"):
        AutoWandbLogger(mode="sometimes")


def test_logger_save_dir_defaults_to_the_trainer_root(tmp_path):
    logger = AutoWandbLogger(mode="offline")
    trainer = L.Trainer(logger=logger, default_root_dir=tmp_path / "root", enable_progress_bar=False)
    logger.bind_trainer(trainer)
    assert logger.save_dir == str(tmp_path / "root") and trainer.log_dir == str(tmp_path / "root")
    given = AutoWandbLogger(mode="offline", save_dir=str(tmp_path / "given"))
    given.bind_trainer(trainer)
    assert given.save_dir == str(tmp_path / "given")


def test_flatten_config_uses_cli_key_names():
    flat = flatten_config({"model": {"init_args": {"lr": 0.1, "sizes": [1, 2]}}, "seed_everything": 0})
    assert flat == {"model.init_args.lr": 0.1, "model.init_args.sizes": [1, 2], "seed_everything": 0}


# ---- pictures -------------------------------------------------------------------------------------------------
def test_overlay_blends_class_colours_and_keeps_ignored_pixels():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    label = np.zeros((6, 5), np.int64)
    label[:, 2:] = 3
    label[0] = 255
    out = overlay(rgb, label, num_classes=4, alpha=1.0)
    assert out.shape == (6, 5, 3) and out.dtype == np.uint8
    assert (out[0] == rgb[0]).all()  # ignored row untouched
    assert (out[1:, :2] == palette(4)[0]).all() and (out[1:, 2:] == palette(4)[3]).all()
    half = overlay(rgb, label, num_classes=4, alpha=0.5)
    expected = np.round(0.5 * rgb[3, 0].astype(float) + 0.5 * palette(4)[0])
    assert np.abs(half[3, 0].astype(float) - expected).max() <= 1
    with pytest.raises(ValueError, match="differ"):
        overlay(rgb, label[:3], 4)


def test_depth_colours_missing_black_and_shared_scale():
    depth = np.array([[0.0, 1.0], [2.0, np.nan]], np.float32)
    out = depth_to_rgb(depth, vmax=2.0)
    assert out.shape == (2, 2, 3) and out.dtype == np.uint8
    assert (out[0, 0] == 0).all() and (out[1, 1] == 0).all() and out[0, 1].any() and out[1, 0].any()
    assert not (out[0, 1] == out[1, 0]).all()


@pytest.mark.parametrize("with_depth", [False, True])
def test_sample_panel_layout(with_depth):
    H, W, gap = 8, 10, 2
    rgb = np.zeros((H, W, 3), np.uint8)
    label = np.ones((H, W), np.int64)
    depth = np.full((H, W), 2.0, np.float32) if with_depth else None
    panel = sample_panel(rgb, label, label, 3, depth=depth, pred_depth=depth, gap=gap)
    tiles = 5 if with_depth else 3
    assert panel.shape == (H, tiles * W + (tiles - 1) * gap, 3) and panel.dtype == np.uint8
    assert (panel[:, W : W + gap] == 255).all()  # white spacer
    if with_depth:  # equal depths on a shared scale give equal colours
        assert (panel[:, 3 * (W + gap) : 3 * (W + gap) + W] == panel[:, 4 * (W + gap) :]).all()


def test_confusion_rows_and_picture():
    conf = np.array([[8, 2, 0], [0, 0, 0], [1, 1, 2]])
    frac = normalize_rows(conf)
    assert np.allclose(frac.sum(1), [1, 0, 1]) and frac[0, 1] == pytest.approx(0.2)
    img = confusion_image(conf, ["a", "b", "c"])
    assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8 and img.shape[0] >= 300
    assert img.std() > 10  # something is drawn
    assert confusion_image(np.eye(30, dtype=np.int64)).shape[0] > img.shape[0]  # grows with K
    with pytest.raises(ValueError, match="square"):
        confusion_image(np.zeros((2, 3)))


def test_iou_rows_by_hand():
    conf = np.array([[3, 1], [2, 4]])  # IoU_0 = 3 / (4 + 5 - 3), IoU_1 = 4 / (6 + 5 - 4)
    rows = iou_rows(conf, ["x", "y"])
    assert rows[0][0] == "x" and rows[0][1] == pytest.approx(0.5) and rows[1][1] == pytest.approx(4 / 7)
    assert rows[0][2] == pytest.approx(0.75) and rows[1][3] == 6
    empty = iou_rows(np.array([[1, 0], [0, 0]]), ["x", "y"])
    assert empty[1][1] is None and empty[1][2] is None


# ---- the callback ---------------------------------------------------------------------------------------------
def test_media_is_a_no_op_without_wandb(tmp_path):
    media = WandbMedia()
    trainer = L.Trainer(logger=CSVLogger(tmp_path), callbacks=[media], enable_progress_bar=False)
    batch = {"image": torch.zeros(1, 3, 8, 8), "label": torch.zeros(1, 8, 8, dtype=torch.long)}
    media.on_validation_batch_end(trainer, None, None, batch, 0)  # would fail on the None module if it did work
    media.on_validation_epoch_end(trainer, None)
    assert media.samples == [] and media.logged == []


class DepthBaseline(SegmentationModule):
    """The baseline plus a constant depth "prediction": exercises the depth tiles of WandbMedia."""

    def predict_depth(self, image: torch.Tensor) -> torch.Tensor:
        return torch.full_like(image[:, :1], 2.0)


@pytest.fixture()
def tiny_synthrooms(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("INDOOR_PARSING_CACHE", str(tmp_path_factory.getbasetemp() / "workflow_cache"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    return SynthRoomsDataModule(**TINY_SYNTH, batch_size=2, num_workers=0)


def _run_dir(save_dir: Path) -> Path:
    runs = sorted((save_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, runs
    return runs[0]


def test_media_logs_depth_panels_in_an_offline_fit(tiny_synthrooms, tmp_path):
    import wandb

    dm = tiny_synthrooms
    model = DepthBaseline(num_classes=dm.num_classes, class_names=dm.class_names, encoder_name="resnet18")
    logger = AutoWandbLogger()
    media = WandbMedia(num_samples=2)
    trainer = L.Trainer(logger=logger, callbacks=[media], default_root_dir=tmp_path, max_steps=1, limit_val_batches=1,
                        num_sanity_val_steps=0, enable_progress_bar=False, enable_checkpointing=False)  # fmt: skip
    logger.bind_trainer(trainer)
    try:
        trainer.fit(model, datamodule=dm)
    finally:
        wandb.finish()
    assert media.logged == ["val/confusion", "val/iou_table", "val/samples"]
    files = _run_dir(tmp_path) / "files"
    samples = sorted((files / "media" / "images" / "val").glob("samples_*.png"))
    assert len(samples) == 2
    with Image.open(samples[0]) as im:
        assert im.size == (5 * 64 + 4 * 2, 48)  # image | truth | prediction | depth | predicted depth
    assert list((files / "media" / "images" / "val").glob("confusion_*.png"))
    assert list((files / "media" / "table" / "val").glob("iou_table_*.table.json"))


def test_cli_fit_with_wandb_config_uploads_config_offline(tiny_synthrooms, tmp_path, monkeypatch):
    import wandb

    monkeypatch.chdir(tmp_path)
    small = shrink_config(REPO / "configs" / "experiments" / "baseline_resnet18_synthrooms.yaml", tmp_path)
    save_dir = tmp_path / "wb"
    args = ["fit", "--config", str(small), "--config", str(REPO / "configs" / "trainer" / "wandb.yaml"),
            f"--trainer.logger.init_args.save_dir={save_dir}", "--trainer.max_steps=1",
            "--trainer.limit_val_batches=1", "--trainer.num_sanity_val_steps=0"]  # fmt: skip
    try:
        run = cli(args)
    finally:
        wandb.finish()
    assert isinstance(run.trainer.logger, AutoWandbLogger) and run.trainer.logger.mode == "offline"
    media = [c for c in run.trainer.callbacks if isinstance(c, WandbMedia)]
    assert len(media) == 1 and "val/samples" in media[0].logged
    files = _run_dir(save_dir) / "files"
    uploaded = yaml.safe_load((files / "config.yaml").read_text())
    assert uploaded["model"]["class_path"] == "indoor_parsing.methods.base.SegmentationModule"
    assert run.trainer.logger.config_logged


# ---- benchmark ------------------------------------------------------------------------------------------------
def test_bench_measures_both_paths_and_the_loader(tmp_path, monkeypatch, capsys):
    from indoor_parsing.tools import bench
    from tests.helpers import make_layout

    monkeypatch.setenv("INDOOR_PARSING_CACHE", str(tmp_path / "cache"))
    layout = make_layout(tmp_path / "layout", scenes=("a", "b", "c", "d"), frames=4, size=(24, 32))
    out = tmp_path / "bench.json"
    config = REPO / "configs" / "experiments" / "baseline_resnet18_synthrooms.yaml"
    argv = ["--method", str(config), "--size", "32", "48", "--batch", "2", "--steps", "2", "--warmup", "1",
            "--repeats", "1", "--layout", str(layout), "--workers", "0", "--loader-frames", "4",
            "--loader-size", "24", "32", "--json", str(out)]  # fmt: skip
    assert bench.main(argv) == 0
    result = yaml.safe_load(out.read_text())
    (row,) = result["methods"]
    assert row["method"] == "baseline_resnet18_synthrooms" and row["precision"] == "32-true"
    for key in ("train_lightning", "train_bare", "predict_lightning_ms", "predict_bare_ms"):
        assert 0 < row[key] < float("inf"), key
    (loader,) = result["loaders"]
    assert loader["dataset"] == "toy" and loader["workers"] == 0 and loader["frames_per_s"] > 0
    printed = capsys.readouterr().out
    assert "| baseline_resnet18_synthrooms | 32-true |" in printed and "| toy | 0 |" in printed


def test_bench_times_bf16_on_the_cpu_when_asked(monkeypatch, capsys):
    from indoor_parsing.tools import bench

    timed = []
    row = {"method": "m", "train_lightning": 1.0, "predict_lightning_ms": 1.0, "predict_bare_ms": 1.0, "peak_mib": 1}

    def fake(config, size, batch, steps, warmup, device, precision, channels_last, work, repeats):
        timed.append((device.type, precision, channels_last))
        return {**row, "precision": precision + ("+channels_last" if channels_last else "")}

    monkeypatch.setattr(bench, "bench_method", fake)
    argv = ["--method", "x.yaml", "--device", "cpu", "--loader-frames", "0"]
    assert bench.main(argv) == 0 and timed == [("cpu", "32-true", False)]  # CPU default: fp32 only
    assert bench.main([*argv, "--bf16"]) == 0
    assert timed[1:] == [("cpu", "32-true", False), ("cpu", "bf16-mixed", False), ("cpu", "bf16-mixed", True)]
    assert "| m | bf16-mixed+channels_last |" in capsys.readouterr().out


def test_bench_report_marks_missing_bare_loop():
    from indoor_parsing.tools.bench import report

    row = {"method": "m", "precision": "32-true", "train_lightning": 10.0, "predict_lightning_ms": 11.0,
           "predict_bare_ms": 10.0, "peak_mib": 5.0}  # fmt: skip
    text = report([row], [])
    assert "| m | 32-true | 10.0 | n/a | n/a | 11.0 | 10.0 | +10.0 | 5 |" in text

"""The opt-in ChannelsLast callback: weights and batches in NHWC, the same run up to float rounding."""

from pathlib import Path

import lightning as L
import pytest
import torch

from indoor_parsing.cli import cli
from indoor_parsing.data.synthrooms import SynthRoomsDataModule
from indoor_parsing.methods.base import SegmentationModule
from indoor_parsing.training.channels_last import ChannelsLast, to_channels_last
from tests.config_tools import TINY_SYNTH, shrink_config

REPO = Path(__file__).resolve().parents[1]


def test_to_channels_last_reaches_nested_batches():
    batch = {"source": {"image": torch.randn(2, 3, 4, 5), "label": torch.zeros(2, 4, 5)},
             "neighbors": [{"feat3d": torch.randn(2, 2, 4, 5)}], "meta": {"key": ["a", "b"]}}  # fmt: skip
    assert to_channels_last(batch) is batch
    assert batch["source"]["image"].is_contiguous(memory_format=torch.channels_last)
    assert not batch["source"]["image"].is_contiguous()
    assert batch["neighbors"][0]["feat3d"].stride() == (40, 1, 10, 2) and batch["source"]["label"].is_contiguous()


def _fit(tmp_path, callbacks: list) -> tuple[SegmentationModule, dict, list[bool]]:
    dm = SynthRoomsDataModule(**TINY_SYNTH, batch_size=2, num_workers=0)
    L.seed_everything(0)
    model = SegmentationModule(num_classes=dm.num_classes, class_names=dm.class_names, encoder_name="resnet18")
    seen, step = [], model.training_step

    def recording_step(batch, batch_idx):
        out = step(batch, batch_idx)
        seen.append(
            (
                batch["image"].is_contiguous(memory_format=torch.channels_last),
                float(out["loss"] if isinstance(out, dict) else out),
            )
        )
        return out

    model.training_step = recording_step
    trainer = L.Trainer(accelerator="cpu", max_steps=4, limit_val_batches=2, num_sanity_val_steps=0, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=callbacks, default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(model, datamodule=dm)
    return model, {k: float(v) for k, v in trainer.callback_metrics.items()}, seen


def test_channels_last_fit_matches_the_default_layout(tmp_path, cache_dir):
    plain, plain_metrics, plain_seen = _fit(tmp_path / "plain", [])
    nhwc, nhwc_metrics, nhwc_seen = _fit(tmp_path / "nhwc", [ChannelsLast()])
    assert [s[0] for s in nhwc_seen] == [True] * 4 and [s[0] for s in plain_seen] == [False] * 4  # NHWC in the step
    conv = next(p for p in nhwc.parameters() if p.dim() == 4)
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    # The runs agree only to float32 rounding, and NHWC rounds worse on CPUs (gradients vs float64: ~1.7% against
    # ~0.15% in NCHW from random weights), so a few steps later their metrics differ by ~1%: compare the first loss.
    assert plain_metrics.keys() == nhwc_metrics.keys() and "val/mIoU" in plain_metrics
    assert nhwc_seen[0][1] == pytest.approx(plain_seen[0][1], rel=1e-5)


def test_channels_last_is_one_cli_option(tmp_path, cache_dir):
    config = shrink_config(REPO / "configs" / "experiments" / "baseline_resnet18_synthrooms.yaml", tmp_path)
    run = cli(["--config", str(config), "--trainer.callbacks+=ChannelsLast"], run=False)
    assert any(isinstance(c, ChannelsLast) for c in run.trainer.callbacks)

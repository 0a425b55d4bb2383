"""The fit-loop benchmark: the whole fit (loader included) against the bare loop, and the FLOPs it divides by."""

import time
from pathlib import Path

import pytest
import torch
from torch import nn

from indoor_parsing.data.dataset import FrameDataset
from indoor_parsing.tools.bench_fit import bench_fit_loop, fit_table, step_flops
from tests.config_tools import shrink_config

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "experiments" / "baseline_resnet18_synthrooms.yaml"


class _Conv(nn.Module):
    """losses(batch) of one 3x3 convolution: its FLOPs are known in closed form."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)

    def losses(self, batch):
        return {"l": self.conv(batch["image"]).sum()}


def test_step_flops_counts_forward_and_backward():
    module, batch = _Conv(), {"image": torch.randn(2, 3, 8, 8)}
    forward = 2 * (2 * 8 * 8) * 4 * (3 * 3 * 3)  # 2 FLOPs per multiply-add, per output element
    assert step_flops(module, batch) == pytest.approx(2 * forward)  # backward: the weight gradient (the image has none)
    assert module.conv.weight.grad is None  # the count leaves no gradient behind


def test_fit_loop_counts_the_wait_for_the_loader(tmp_path, cache_dir, monkeypatch):
    small = shrink_config(CONFIG, tmp_path, {})
    fast = bench_fit_loop(str(small), steps=3, warmup=1, device=torch.device("cpu"), channels_last=False,
                          work=tmp_path / "fast", workers=0)  # fmt: skip
    for key in ("fit_s", "bare_s", "gflop_per_step", "fit_gflops", "bare_gflops"):
        assert 0 < fast[key] < float("inf"), key
    assert fast["fit_over_bare"] == pytest.approx(fast["bare_s"] / fast["fit_s"])

    read = FrameDataset.__getitem__
    monkeypatch.setattr(FrameDataset, "__getitem__", lambda self, i: (time.sleep(0.1), read(self, i))[1])
    slow = bench_fit_loop(str(small), steps=3, warmup=1, device=torch.device("cpu"), channels_last=True,
                          work=tmp_path / "slow", workers=0)  # fmt: skip
    # Two frames per batch, 0.1 s each: the fit step pays the loader's 0.2 s, the bare loop on cached batches not.
    assert slow["wait_s"] >= 0.2 and slow["fit_s"] >= slow["bare_s"] + 0.15
    assert slow["layout"] == "channels_last"
    table = fit_table([fast, slow])
    assert "| baseline_resnet18_synthrooms | contiguous | 0 |" in table and "channels_last" in table

"""CPU SyncBatchNorm with two gloo processes equals BatchNorm over the whole batch: outputs, gradients, statistics."""

import multiprocessing
import os
import socket

import pytest
import torch
from torch import nn

from indoor_parsing.training.distributed import SyncBatchNorm, SyncBatchNormPlugin


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(6, 3, 5, 4, generator=g) * 3 + 1, torch.randn(6, 3, 5, 4, generator=g)  # x, upstream weights


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        x, w = _batch()
        part = slice(rank * 4, 6) if rank else slice(0, 4)  # uneven shares: 4 + 2 samples
        bn = SyncBatchNorm(3, momentum=0.3)
        with torch.no_grad():
            bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
            bn.bias.copy_(torch.tensor([0.0, -1.0, 0.3]))
        xr = x[part].clone().requires_grad_(True)
        y = bn(xr)
        (y * w[part]).sum().backward()  # this rank's share of the loss sum(y * w)
        grads = [bn.weight.grad.clone(), bn.bias.grad.clone()]
        for g in grads:
            torch.distributed.all_reduce(g)  # what DDP does with parameter gradients (up to its 1/world)
        torch.save({"y": y.detach(), "dx": xr.grad, "dw": grads[0], "db": grads[1], "mean": bn.running_mean,
                    "var": bn.running_var}, os.path.join(out_dir, f"rank{rank}.pt"))  # fmt: skip
    finally:
        torch.distributed.destroy_process_group()


def test_two_processes_equal_batchnorm_over_the_whole_batch(tmp_path):
    x, w = _batch()
    ref = nn.BatchNorm2d(3, momentum=0.3)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        ref.bias.copy_(torch.tensor([0.0, -1.0, 0.3]))
    xs = x.clone().requires_grad_(True)
    y = ref(xs)
    (y * w).sum().backward()
    multiprocessing.set_forkserver_preload([_worker.__module__])
    torch.multiprocessing.start_processes(
        _worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True, start_method="forkserver"
    )
    got = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    torch.testing.assert_close(torch.cat([g["y"] for g in got]), y.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.cat([g["dx"] for g in got]), xs.grad, atol=1e-5, rtol=1e-5)
    for g in got:
        torch.testing.assert_close(g["dw"], ref.weight.grad, atol=1e-4, rtol=1e-5)
        torch.testing.assert_close(g["db"], ref.bias.grad, atol=1e-4, rtol=1e-5)
        torch.testing.assert_close(g["mean"], ref.running_mean)
        torch.testing.assert_close(g["var"], ref.running_var)


def test_single_process_and_eval_are_plain_batchnorm():
    x, _ = _batch()
    ref, bn = nn.BatchNorm2d(3), SyncBatchNorm(3)
    torch.testing.assert_close(bn(x), ref(x))
    ref.eval(), bn.eval()
    torch.testing.assert_close(bn(x), ref(x))


def test_plugin_refuses_batchnorm_subclasses_that_compute_more():
    class NormAct(nn.BatchNorm2d):  # like timm's BatchNormAct2d: conversion would drop the activation
        def forward(self, x):
            return torch.relu(super().forward(x))

    with pytest.raises(ValueError, match="1 is a .*NormAct, whose forward does more"):
        SyncBatchNormPlugin().apply(nn.Sequential(nn.Conv2d(3, 3, 1), NormAct(3)))
    converted = SyncBatchNormPlugin().apply(nn.Sequential(nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)))
    assert isinstance(converted[1], nn.SyncBatchNorm)  # no trainer: torch's layer (a GPU run)

r"""``indoor-parsing depth-probe``: how much geometry do a network's frozen features hold? (Sec. 4.5 of the paper)

A small depth decoder is trained on the frozen features of one layer (the network is never updated) and the SSIM of
its reconstructed depth is reported on held-out frames; run it for a baseline and a distilled checkpoint and compare.

    indoor-parsing depth-probe --config configs/experiments/distill3d_resnet18_synthrooms.yaml \
        --ckpt runs/distill3d_resnet18_synthrooms/checkpoints/best.ckpt --layer f2d --out probe_distill.json
"""

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from jsonargparse import ArgumentParser
from torch import nn
from tqdm import tqdm

from indoor_parsing.config_files import load as load_config
from indoor_parsing.data.base import IndoorDataModule
from indoor_parsing.inference.checkpoints import load_method
from indoor_parsing.io import DataFileError, write_json
from indoor_parsing.losses import l1_depth, ssim
from indoor_parsing.models.blocks import pad_to_multiple

LAYERS = ("encoder", "f2d", "sim3d")


def datamodule_from_block(data: dict) -> IndoorDataModule:
    """Instantiate a config's ``data`` block ({class_path, init_args})."""
    parser = ArgumentParser()
    parser.add_subclass_arguments(IndoorDataModule, "data")
    return parser.instantiate_classes(parser.parse_object({"data": data})).data


def load_datamodule(config: str | Path) -> IndoorDataModule:
    """Instantiate the ``data`` block of an experiment config (its ``include`` pieces resolved, as the CLI does)."""
    path = Path(config)
    if not path.is_file():
        raise DataFileError(f"{path}: config not found")
    data = load_config(path).get("data")
    if not isinstance(data, dict):
        raise DataFileError(f"{path}: no 'data' block")
    return datamodule_from_block(data)


def load_module(config: str | Path, ckpt: str | Path):
    """The config's method, loaded from a checkpoint of it (as inference loads it: older checkpoints too)."""
    if not Path(ckpt).is_file():
        raise DataFileError(f"{ckpt}: checkpoint not found")
    class_path = load_config(Path(config))["model"]["class_path"]
    module, _ = load_method(ckpt)
    if f"{type(module).__module__}.{type(module).__qualname__}" != class_path:
        raise DataFileError(f"{ckpt}: a checkpoint of {type(module).__name__}, the config's method is {class_path}")
    return module


@torch.no_grad()
def frozen_features(module, image: torch.Tensor, layer: str) -> torch.Tensor:
    """Features of ``layer`` (a key of the PSPNet student's outputs, or ``encoder`` = its last stage)."""
    model = module.model
    if layer == "encoder":
        return model.encoder(pad_to_multiple(image, model.stride)[0])[-1]
    out = model(image)
    if layer not in out:
        raise ValueError(f"layer {layer!r} not produced by this model (it returns {sorted(out)})")
    return out[layer]


class DepthDecoder(nn.Sequential):
    """3x3 conv -> BN -> ReLU -> 3x3 conv -> ReLU -> 1x1 conv -> softplus metres, at the feature resolution."""

    def __init__(self, channels: int, width: int = 64):
        super().__init__(
            nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(True),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(True), nn.Conv2d(width, 1, 1), nn.Softplus(),
        )  # fmt: skip


def _predict(decoder: nn.Module, feats: torch.Tensor, size: tuple[int, int], stride: int) -> torch.Tensor:
    depth = decoder(feats)  # (B, 1, h, w)
    depth = F.interpolate(depth, size=(depth.shape[-2] * stride, depth.shape[-1] * stride), mode="bilinear")
    return depth[..., : size[0], : size[1]]


def probe(module, datamodule: IndoorDataModule, layer: str = "f2d", epochs: int = 5, lr: float = 1e-3,
          max_depth: float = 10.0, eval_stage: str = "validate", progress: bool = True) -> dict:  # fmt: skip
    """Train a depth decoder on frozen ``layer`` features; SSIM / L1 of its depth on the ``eval_stage`` split.

    SSIM (losses.ssim, 3x3 window) is computed on depth / ``max_depth`` clipped to [0, 1] and averaged over pixels
    with ground-truth depth.
    """
    if layer not in LAYERS:
        raise ValueError(f"layer must be one of {LAYERS}, got {layer!r}")
    module.eval()
    stride = module.model.stride
    if hasattr(datamodule, "paired"):
        datamodule.paired = False  # the probe needs images and depth only
    datamodule.setup("fit")
    decoder, optimizer = None, None
    for epoch in range(epochs):
        for batch in tqdm(datamodule.train_dataloader(), desc=f"probe epoch {epoch}", disable=not progress):
            if "depth" not in batch:
                raise DataFileError(f"{datamodule.root}: frames without depth cannot be probed")
            feats = frozen_features(module, batch["image"], layer)
            if decoder is None:
                decoder = DepthDecoder(feats.shape[1])
                optimizer = torch.optim.Adam(decoder.parameters(), lr=lr)
            decoder.train()
            pred = _predict(decoder, feats, batch["image"].shape[-2:], stride)
            loss = l1_depth(pred, batch["depth"], batch.get("depth_valid"))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    decoder.eval()
    loader = datamodule.val_dataloader() if eval_stage == "validate" else datamodule.test_dataloader()
    ssim_sum, l1_sum, n = 0.0, 0.0, 0
    with torch.no_grad():
        for batch in loader:
            pred = _predict(decoder, frozen_features(module, batch["image"], layer), batch["image"].shape[-2:], stride)
            gt = batch["depth"]
            valid = gt > 0
            s = ssim((pred / max_depth).clamp(0, 1), (gt / max_depth).clamp(0, 1))  # (B, 1, H, W)
            ssim_sum += float(s[valid].sum())
            l1_sum += float((pred - gt).abs()[valid].sum())
            n += int(valid.sum())
    return {"layer": layer, "epochs": epochs, "ssim": ssim_sum / max(n, 1), "l1": l1_sum / max(n, 1), "pixels": n}


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="indoor-parsing depth-probe", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="experiment config (its data block and model class are used)")
    p.add_argument("--ckpt", required=True, help="checkpoint of the network to probe")
    p.add_argument("--layer", default="f2d", choices=LAYERS)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--max-depth", type=float, default=10.0, help="metres mapped to 1 for SSIM")
    p.add_argument("--split", default="validate", choices=("validate", "test"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="JSON report path")
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    result = probe(load_module(args.config, args.ckpt), load_datamodule(args.config), args.layer, args.epochs,
                   args.lr, args.max_depth, args.split)  # fmt: skip
    result["ckpt"] = str(args.ckpt)
    print(f"depth probe on {args.layer}: SSIM {result['ssim']:.4f}, L1 {result['l1']:.3f} m ({result['pixels']} px)")
    if args.out:
        write_json(args.out, result)

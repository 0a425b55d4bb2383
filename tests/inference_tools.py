"""Checkpoints of every method for the inference tests (segment, export), written without training."""

import warnings
from pathlib import Path

import torch
from torch import nn

from indoor_parsing.cli import cli
from tests.config_tools import shrink_config

EXPERIMENTS = Path(__file__).resolve().parents[1] / "configs" / "experiments"
# One SynthRooms experiment per method: the configs users fit.
METHOD_CONFIGS = {
    "baseline": "baseline_resnet18_synthrooms.yaml",
    "geoaware": "geoaware_resnet18_synthrooms.yaml",
    "distill3d": "distill3d_resnet18_synthrooms.yaml",
    "s4net": "s4net_resnet18_synthrooms.yaml",
}


def save_checkpoint(config: str | Path, path: Path, work: Path, train_size=(48, 64)) -> Path:
    """A checkpoint of the config's method (random weights) written by Lightning, as ``fit`` would write it."""
    config = Path(config) if Path(config).is_file() else EXPERIMENTS / config
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
        run = cli(["--config", str(shrink_config(config, work)), "--trainer.logger=false"], run=False)
    run.model.train_image_size = tuple(train_size)  # as TrainImageSize records it during fit
    randomize_norm_statistics(run.model)
    run.trainer.strategy.connect(run.model)
    path.parent.mkdir(parents=True, exist_ok=True)
    run.trainer.save_checkpoint(path, weights_only=False)
    return path


def randomize_norm_statistics(model: nn.Module, seed: int = 0) -> None:
    """Running statistics away from (0, 1), so that inference that used batch statistics would show."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))

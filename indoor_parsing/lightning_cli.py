"""The LightningCLI behind ``indoor-parsing fit|validate|test|predict`` (imported on demand by cli.py)."""

import copy
import logging
import os
import sys
import warnings
from pathlib import Path

import yaml
from lightning.pytorch.callbacks import ProgressBar, RichProgressBar
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.plugins.layer_sync import LayerSync

# Every method and DataModule is imported so that `fit --help` lists them as known subclasses and short class
# names (`--model GeoAwareModule`, `--data NYUDv2DataModule`) resolve.
import indoor_parsing.data.capture
import indoor_parsing.data.features
import indoor_parsing.data.multiview
import indoor_parsing.data.nyudv2
import indoor_parsing.data.points
import indoor_parsing.data.s3dis
import indoor_parsing.data.scannet
import indoor_parsing.data.sunrgbd
import indoor_parsing.data.synthrooms
import indoor_parsing.methods.distill3d
import indoor_parsing.methods.geoaware
import indoor_parsing.methods.s4net
import indoor_parsing.methods.teacher3d  # noqa: F401
from indoor_parsing.config_files import includes, load
from indoor_parsing.data.base import IndoorDataModule
from indoor_parsing.inference.checkpoints import LIGHTNING_KEYWORDS, check_checkpoint
from indoor_parsing.methods.base import Method
from indoor_parsing.training.callbacks import BestAndLastCheckpoint, LogProgress, MetricsReport, PredictionWriter
from indoor_parsing.training.channels_last import ChannelsLast  # noqa: F401  (--trainer.callbacks+=ChannelsLast)
from indoor_parsing.training.distributed import SyncBatchNormPlugin

OPTIMISATION = ("optimizer", "scheduler")  # model arguments that checkpoints do not hold


def _quiet_lightning() -> None:
    """Drop Lightning's messages that say nothing about the user's run: its default-logger notice (CSV is our
    default), a deprecation inside its own pytree code, its product tips, and its warning that ``args`` and
    ``sys.argv`` are both set (``cli(args)`` is how ``claims``, ``bench`` and notebooks build runs on purpose)."""
    warnings.filterwarnings("ignore", message=r"LightningCLI's args parameter is intended")
    warnings.filterwarnings("ignore", message=r"Starting from v1\.9\.0, `tensorboardX` has been removed")
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).addFilter(_no_tips)  # added once: a logger keeps one copy of a filter


def _no_tips(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("💡 Tip")


class IndoorCLI(LightningCLI):
    """LightningCLI with the DataModule's classes linked into the method and our standard callbacks."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")
        parser.link_arguments("data.class_names", "model.init_args.class_names", apply_on="instantiate")
        parser.add_lightning_class_args(BestAndLastCheckpoint, "checkpoint")
        # A new fit into a run folder replaces its best.ckpt / last.ckpt: with Lightning's version counter the rerun
        # wrote best-v1.ckpt, and `test --ckpt_path .../best.ckpt` (the README's, `make demo`'s) silently scored the
        # previous run's weights.
        parser.set_defaults({"checkpoint.monitor": "val/mIoU", "checkpoint.mode": "max", "checkpoint.save_last": True,
                             "checkpoint.filename": "best", "checkpoint.enable_version_counter": False})  # fmt: skip
        parser.add_lightning_class_args(MetricsReport, "report")
        parser.add_lightning_class_args(PredictionWriter, "predictions")

    def parse_arguments(self, parser, args) -> None:
        resolved = _resolved(args)  # None (sys.argv) stays None unless a config was resolved: Lightning reads argv
        super().parse_arguments(parser, None if args is None and resolved == sys.argv[1:] else resolved)
        sub = self.config.get("subcommand")
        keys = [f"{sub}.model.init_args.{name}" if sub else f"model.init_args.{name}" for name in OPTIMISATION]
        self._optimisation = {k: copy.deepcopy(self.config.get(k)) for k in keys if self.config.get(k) is not None}

    def _parse_ckpt_path(self) -> None:
        # Lightning reads the checkpoint's hyper-parameters here, before anything else: check the file first.
        subcommand = self.config.get("subcommand")
        ckpt = self.config[subcommand].get("ckpt_path") if subcommand else None
        if ckpt and ckpt not in LIGHTNING_KEYWORDS:
            check_checkpoint(ckpt)
        super()._parse_ckpt_path()

    def before_instantiate_classes(self) -> None:
        # With --ckpt_path, Lightning re-parses the model block from the checkpoint's hyper-parameters, which leave
        # the optimiser and scheduler out (they are not saved): jsonargparse then fell back to the signature's
        # defaults, and a resumed SGD run went on with AdamW. The configured ones stay.
        for key, value in self._optimisation.items():
            self.config[key] = value
        config = self.config[self.subcommand] if self.subcommand else self.config
        # Checkpoints follow the run's folder unless set explicitly, so runs with different default_root_dir never
        # overwrite each other and `--ckpt_path last` resumes this run.
        if config.get("checkpoint") is not None and not config.checkpoint.get("dirpath"):
            config.checkpoint.dirpath = str(Path(config.trainer.get("default_root_dir") or ".") / "checkpoints")

    def instantiate_trainer(self, **kwargs):
        config = self.config_init[self.subcommand] if self.subcommand else self.config_init
        if config["trainer"].get("enable_progress_bar") is False:  # the default bar would contradict it
            callbacks = self.trainer_defaults.get("callbacks", [])
            self.trainer_defaults["callbacks"] = [c for c in callbacks if not isinstance(c, ProgressBar)]
        if config["trainer"].get("sync_batchnorm"):  # torch's SyncBatchNorm fails on CPU processes; ours does not
            plugins = config["trainer"].get("plugins") or []
            plugins = list(plugins) if isinstance(plugins, list | tuple) else [plugins]
            if not any(isinstance(p, LayerSync) for p in plugins):
                kwargs["plugins"] = [*plugins, SyncBatchNormPlugin()]
        trainer = super().instantiate_trainer(**kwargs)
        for logger in trainer.loggers:  # W&B starts before callbacks run: give it the run folder now
            if hasattr(logger, "bind_trainer"):
                logger.bind_trainer(trainer)
        return trainer

    def _prepare_subcommand_kwargs(self, subcommand: str) -> dict:
        kwargs = super()._prepare_subcommand_kwargs(subcommand)
        if subcommand == "test":
            kwargs["verbose"] = False  # MetricsReport prints the metrics (with per-class IoU) once
        return kwargs


def _resolved(args: list | None) -> list | None:
    """``--config X`` where X has an ``include`` list becomes ``--config <X resolved by config_rewrite.load>``, so
    LightningCLI (and --print_config) sees the one tree that the tools see."""
    if not isinstance(args, list | tuple | None):
        return args  # a dict or Namespace
    args = [str(a) for a in (sys.argv[1:] if args is None else args)]
    out = []
    for i, arg in enumerate(args):
        key, eq, value = arg.partition("=")
        if eq and key in ("--config", "-c") and includes(value):
            arg = f"{key}={yaml.safe_dump(load(value), sort_keys=False)}"
        elif i and args[i - 1] in ("--config", "-c") and includes(arg):
            arg = yaml.safe_dump(load(arg), sort_keys=False)
        out.append(arg)
    return out


def _progress_bar() -> ProgressBar:
    # A rich bar only redraws on a terminal; a log file (nohup, SLURM, CI) gets plain lines within each epoch.
    return RichProgressBar(leave=True) if sys.stdout.isatty() else LogProgress()


def build_cli(args: list[str] | None = None, run: bool = True) -> IndoorCLI:
    """Build (and by default run) the Lightning CLI; ``args`` as on the command line (None: ``sys.argv``)."""
    os.environ.setdefault("WANDB_SILENT", "true")
    _quiet_lightning()
    return IndoorCLI(
        Method,
        IndoorDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=0,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={"callbacks": [_progress_bar()]},
        args=args,
        run=run,
    )

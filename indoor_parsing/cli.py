"""``indoor-parsing``: LightningCLI (fit / validate / test / predict) plus the data and tool commands.

indoor-parsing fit --config configs/experiments/baseline_resnet18_synthrooms.yaml
indoor-parsing test --config ... --ckpt_path runs/.../best.ckpt
indoor-parsing prepare nyudv2 --src ... --dst ...
"""

import copy
import importlib
import os
import sys

from lightning.pytorch.callbacks import ProgressBar, RichProgressBar
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.plugins.layer_sync import LayerSync

from indoor_parsing.callbacks import BestAndLastCheckpoint, MetricsReport, PredictionWriter
from indoor_parsing.data.base import IndoorDataModule
from indoor_parsing.distributed import SyncBatchNormPlugin
from indoor_parsing.methods.base import SegmentationModule

OPTIMISATION = ("optimizer", "scheduler")  # model arguments that checkpoints do not hold
# Commands that are not Lightning stages: name -> module whose main(argv) runs it.
TOOLS = {
    "prepare": "indoor_parsing.data.prepare",
    "index-capture": "indoor_parsing.data.capture",
    "gap-bench": "indoor_parsing.models.gap_bench",
    "extract-features": "indoor_parsing.distill.extract",
    "depth-probe": "indoor_parsing.distill.depth_probe",
    "bench": "indoor_parsing.bench",
    "claims": "indoor_parsing.claims.run",
}


class IndoorCLI(LightningCLI):
    """LightningCLI with the DataModule's classes linked into the method and our standard callbacks."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")
        parser.link_arguments("data.class_names", "model.init_args.class_names", apply_on="instantiate")
        parser.add_lightning_class_args(BestAndLastCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.monitor": "val/mIoU", "checkpoint.mode": "max", "checkpoint.save_last": True,
                             "checkpoint.filename": "best"})  # fmt: skip
        parser.add_lightning_class_args(MetricsReport, "report")
        parser.add_lightning_class_args(PredictionWriter, "predictions")

    def parse_arguments(self, parser, args) -> None:
        super().parse_arguments(parser, args)
        sub = self.config.get("subcommand")
        keys = [f"{sub}.model.init_args.{name}" if sub else f"model.init_args.{name}" for name in OPTIMISATION]
        self._optimisation = {k: copy.deepcopy(self.config.get(k)) for k in keys if self.config.get(k) is not None}

    def before_instantiate_classes(self) -> None:
        # With --ckpt_path, Lightning re-parses the model block from the checkpoint's hyper-parameters, which leave
        # the optimiser and scheduler out (they are not saved): jsonargparse then fell back to the signature's
        # defaults, and a resumed SGD run went on with AdamW. The configured ones stay.
        for key, value in self._optimisation.items():
            self.config[key] = value

    def instantiate_trainer(self, **kwargs):
        config = self.config_init[self.subcommand] if self.subcommand else self.config_init
        if config["trainer"].get("enable_progress_bar") is False:  # the default rich bar would contradict it
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


def cli(args: list[str] | None = None, run: bool = True) -> IndoorCLI:
    """Build (and by default run) the Lightning CLI; ``args`` as on the command line."""
    os.environ.setdefault("WANDB_SILENT", "true")
    return IndoorCLI(
        SegmentationModule,
        IndoorDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=0,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={"callbacks": [RichProgressBar(leave=True)]},
        args=args,
        run=run,
    )


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in TOOLS:
        sys.exit(importlib.import_module(TOOLS[argv[0]]).main(argv[1:]) or 0)
    cli(argv)


if __name__ == "__main__":
    main()

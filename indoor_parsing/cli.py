"""``indoor-parsing``: LightningCLI (fit / validate / test / predict) plus the data and tool commands.

indoor-parsing fit --config configs/experiments/baseline_resnet18_synthrooms.yaml
indoor-parsing test --config ... --ckpt_path runs/.../best.ckpt
indoor-parsing prepare nyudv2 --src ... --dst ...
"""

import importlib
import os
import sys

from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar, RichProgressBar
from lightning.pytorch.cli import LightningCLI

from indoor_parsing.callbacks import MetricsReport, PredictionWriter
from indoor_parsing.data.base import IndoorDataModule
from indoor_parsing.errors import exit_cleanly
from indoor_parsing.methods.base import SegmentationModule

# Commands that are not Lightning stages: name -> module whose main(argv) runs it.
TOOLS = {
    "prepare": "indoor_parsing.data.prepare",
    "index-capture": "indoor_parsing.data.capture",
    "gap-bench": "indoor_parsing.models.gap_bench",
    "extract-features": "indoor_parsing.distill.extract",
    "feature-audit": "indoor_parsing.distill.audit",
    "depth-probe": "indoor_parsing.distill.depth_probe",
    "bench": "indoor_parsing.bench",
    "claims": "indoor_parsing.claims.run",
}


class IndoorCLI(LightningCLI):
    """LightningCLI with the DataModule's classes linked into the method and our standard callbacks."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")
        parser.link_arguments("data.class_names", "model.init_args.class_names", apply_on="instantiate")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.monitor": "val/mIoU", "checkpoint.mode": "max", "checkpoint.save_last": True,
                             "checkpoint.filename": "best"})  # fmt: skip
        parser.add_lightning_class_args(MetricsReport, "report")
        parser.add_lightning_class_args(PredictionWriter, "predictions")

    def instantiate_trainer(self, **kwargs):
        config = self.config_init[self.subcommand] if self.subcommand else self.config_init
        if config["trainer"].get("enable_progress_bar") is False:  # the default rich bar would contradict it
            callbacks = self.trainer_defaults.get("callbacks", [])
            self.trainer_defaults["callbacks"] = [c for c in callbacks if not isinstance(c, ProgressBar)]
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
    """Entry point; a user's mistake (errors.UserError, e.g. a bad data file) is one ``error:`` line, exit 2."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in TOOLS:
        sys.exit(exit_cleanly(lambda: importlib.import_module(TOOLS[argv[0]]).main(argv[1:])) or 0)
    exit_cleanly(lambda: cli(argv))


if __name__ == "__main__":
    main()

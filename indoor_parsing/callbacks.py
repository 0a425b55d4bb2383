"""Callbacks: prediction writer (index + colour PNGs), the end-of-test metrics report, best + last checkpoints."""

import csv
import io
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter, ModelCheckpoint

from indoor_parsing.data.taxonomy import colorize
from indoor_parsing.io import save_image, write_text
from indoor_parsing.metrics import format_table, to_csv_rows


class PredictionWriter(BasePredictionWriter):
    """Writes ``<output_dir>/<scene>/<sequence>/<index>.png`` (train ids, 255 = none) and ``*_color.png``.

    Args:
        output_dir: destination folder.
        colour: also write colour previews.
    """

    def __init__(self, output_dir: str = "predictions", colour: bool = True):
        super().__init__(write_interval="batch")
        self.output_dir = Path(output_dir)
        self.colour = colour
        self.written = 0  # by this process
        self.total_written = 0  # by all processes, after predict

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx):
        meta = prediction["meta"]
        for b, label in enumerate(prediction["label"]):
            stem = self.output_dir / meta["scene"][b] / (meta["sequence"][b] or "frames") / f"{meta['index'][b]:06d}"
            ids = label.cpu().numpy().astype(np.uint8)
            save_image(stem.with_suffix(".png"), ids)
            if self.colour:
                save_image(stem.parent / f"{stem.name}_color.png", colorize(ids, pl_module.num_classes))
            self.written += 1

    def on_predict_start(self, trainer, pl_module):
        self.written = 0

    def on_predict_end(self, trainer, pl_module):
        # Under DDP every process writes its own frames (the sampler shares them out without repeats): count all.
        self.total_written = int(trainer.strategy.reduce(torch.tensor(self.written), reduce_op="sum"))
        if trainer.is_global_zero:
            print(f"wrote {self.total_written} label maps under {self.output_dir}")


class MetricsReport(L.Callback):
    """At the end of ``test``: print the four metrics and per-class IoU; write markdown and CSV.

    The files go next to the tested checkpoint when there is one, else into the trainer's log folder.

    Args:
        filename: stem of the written files.
    """

    def __init__(self, filename: str = "test_metrics"):
        self.filename = filename
        self.paths: list[Path] = []

    def on_test_end(self, trainer, pl_module):
        results = getattr(pl_module, "last_results", {})
        # "test" plus per-evaluation-set results such as "test/scan1", "test/scan2" (multi-sequence methods)
        stages = sorted(k for k in results if k.startswith("test/"))  # per evaluation set, when a method has several
        stages = stages or (["test"] if "test" in results else [])
        if not stages or not trainer.is_global_zero:
            return
        sections, rows = [], []
        for stage in stages:
            title = "" if stage == "test" else f"### {stage.split('/', 1)[1]}\n\n"
            # methods that predict depth add depth_rmse, depth_abs_rel, depth_delta1
            extras = {k: float(v) for k, v in results[stage].items() if k.startswith("depth_")}
            extra_lines = "".join(f"\n| {k} | {v:.4f} |" for k, v in extras.items())
            sections.append(title + format_table(results[stage], pl_module.class_names) + extra_lines)
            prefix = "" if stage == "test" else stage.split("/", 1)[1] + "/"
            rows += [[prefix + r[0], *r[1:]] for r in to_csv_rows(results[stage], pl_module.class_names)[1:]]
            rows += [[prefix + k, f"{v:.6f}"] for k, v in extras.items()]
        table = "\n\n".join(sections)
        print("\n" + table + "\n")
        ckpt = trainer.ckpt_path
        folder = Path(ckpt).parent if ckpt else Path(trainer.log_dir or trainer.default_root_dir)
        buf = io.StringIO()
        csv.writer(buf).writerows([to_csv_rows(results[stages[0]], pl_module.class_names)[0], *rows])
        self.paths = [folder / f"{self.filename}.md", folder / f"{self.filename}.csv"]
        write_text(self.paths[0], table + "\n")
        write_text(self.paths[1], buf.getvalue())
        print(f"metrics written to {self.paths[0]} and {self.paths[1]}")


class BestAndLastCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` whose ``last.ckpt`` is the latest state at every save point, improved monitor or not.

    Since Lightning 2.6, ``save_last=True`` writes ``last.ckpt`` only at steps where a top-k checkpoint is written,
    so once the monitored metric stopped improving, ``last.ckpt`` held an old state and a resume from it repeated
    training (and restarted from the wrong step).
    """

    def on_train_epoch_end(self, trainer, pl_module):
        due = not self._should_skip_saving_checkpoint(trainer) and self._should_save_on_train_epoch_end(trainer)
        super().on_train_epoch_end(trainer, pl_module)
        if due:
            self._save_last_if_missed(trainer)

    def on_validation_end(self, trainer, pl_module):
        due = not self._should_skip_saving_checkpoint(trainer) and not self._should_save_on_train_epoch_end(trainer)
        super().on_validation_end(trainer, pl_module)
        if due:
            self._save_last_if_missed(trainer)

    def _save_last_if_missed(self, trainer) -> None:
        if self.save_last and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

"""Callbacks: prediction writer (index + colour PNGs), the end-of-test metrics report, progress lines for logs,
best + last checkpoints."""

import csv
import io
import math
from collections import Counter
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter, ModelCheckpoint, ProgressBar

from indoor_parsing.data.captures.report import summary as report_summary
from indoor_parsing.data.taxonomy import colorize
from indoor_parsing.inference.label_images import with_legend, write_class_table
from indoor_parsing.io import save_image, write_json, write_text
from indoor_parsing.metrics.segmentation import format_table, to_csv_rows


class PredictionWriter(BasePredictionWriter):
    """Writes ``<output_dir>/<scene>/<sequence>/<name>.png`` (train ids, 255 = none), ``<name>_conf.png`` (confidence,
    0..255) and ``<name>_color.png``; ``<name>`` is the input frame's name (captures) or the zero-padded frame index.
    When the DataModule has a ``labelling_report`` (captures), it is written as ``labelling_report.json``.

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
        self.per_sequence: Counter = Counter()

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx):
        meta = prediction["meta"]
        names = meta.get("name") or [f"{i:06d}" for i in meta["index"]]
        for b, label in enumerate(prediction["label"]):
            folder = self.output_dir / meta["scene"][b] / (meta["sequence"][b] or "frames")
            name = names[b]  # the input frame's name (may contain dots: TUM timestamps), never a suffix to replace
            ids = label.cpu().numpy().astype(np.uint8)
            save_image(folder / f"{name}.png", ids)
            if "confidence" in prediction:  # max softmax probability, 0..255 = 0..1
                conf = prediction["confidence"][b].float().cpu().numpy()
                save_image(folder / f"{name}_conf.png", np.round(np.clip(conf, 0, 1) * 255).astype(np.uint8))
            if self.colour:
                preview = with_legend(colorize(ids, pl_module.num_classes), ids, pl_module.class_names)
                save_image(folder / f"{name}_color.png", preview)
            self.written += 1
            self.per_sequence[str(folder.relative_to(self.output_dir))] += 1

    def on_predict_start(self, trainer, pl_module):
        self.written = 0
        self.per_sequence.clear()

    def on_predict_end(self, trainer, pl_module):
        # Under DDP every process writes its own frames (the sampler shares them out without repeats): count all.
        self.total_written = int(trainer.strategy.reduce(torch.tensor(self.written), reduce_op="sum"))
        per_sequence = Counter(self.per_sequence)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, dict(self.per_sequence))  # every rank's frames
            per_sequence = sum((Counter(g) for g in gathered), Counter())
        if not trainer.is_global_zero:
            return
        write_class_table(self.output_dir, pl_module.class_names)
        print(f"wrote {self.total_written} label maps under {self.output_dir} (classes: {self.output_dir}/classes.csv)")
        report = getattr(trainer.datamodule, "labelling_report", None) if trainer.datamodule is not None else None
        if report is not None:  # captures: frames, coverage of the consistency loss, frames with no neighbour
            content = {**report(), "labelled": dict(per_sequence)}
            write_json(self.output_dir / "labelling_report.json", content)
            print(report_summary(content) + f"\n  report: {self.output_dir / 'labelling_report.json'}")


def _total(counts: list, dataloader_idx: int) -> float:
    return float(counts[dataloader_idx]) if dataloader_idx < len(counts) else float("inf")


class LogProgress(ProgressBar):
    """Progress as plain lines, for logs that are not a terminal: about ten per epoch, with the bar's metrics.

    Args:
        lines_per_epoch: progress lines per training / evaluation loop.
    """

    def __init__(self, lines_per_epoch: int = 10):
        super().__init__()
        self.lines_per_epoch = lines_per_epoch
        self._enabled = True

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def _line(self, trainer, pl_module, stage: str, done: int, total: float, prefix: str = "") -> None:
        if not self._enabled or not trainer.is_global_zero:
            return
        every = max(1, math.ceil(total / self.lines_per_epoch)) if math.isfinite(total) and total > 0 else 50
        if done % every and done != total:
            return
        metrics = {k: v for k, v in self.get_metrics(trainer, pl_module).items() if prefix and k.startswith(prefix)}
        shown = "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())
        size = f"{done}/{int(total)}" if math.isfinite(total) else str(done)
        print(f"{stage} {size} batches  {shown}".rstrip(), flush=True)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._line(trainer, pl_module, f"epoch {trainer.current_epoch}", batch_idx + 1, self.total_train_batches,
                   "train/")  # fmt: skip

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if not trainer.sanity_checking:
            self._line(trainer, pl_module, "validate", batch_idx + 1, _total(trainer.num_val_batches, dataloader_idx))

    def on_validation_end(self, trainer, pl_module):
        if self._enabled and trainer.is_global_zero and not trainer.sanity_checking:
            scores = {k: v for k, v in self.get_metrics(trainer, pl_module).items() if k.startswith("val/")}
            print(f"epoch {trainer.current_epoch} validation  " + "  ".join(f"{k}={v:.4g}" for k, v in scores.items()),
                  flush=True)  # fmt: skip

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._line(trainer, pl_module, "test", batch_idx + 1, _total(trainer.num_test_batches, dataloader_idx))

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._line(trainer, pl_module, "predict", batch_idx + 1, _total(trainer.num_predict_batches, dataloader_idx))


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

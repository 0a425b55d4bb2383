"""Callbacks: prediction writer (index + colour PNGs) and the end-of-test metrics report."""

import csv
import io
from collections import Counter
from pathlib import Path

import lightning as L
import numpy as np
from lightning.pytorch.callbacks import BasePredictionWriter

from indoor_parsing.data.captures.report import summary as report_summary
from indoor_parsing.data.taxonomy import colorize
from indoor_parsing.io import save_image, write_json, write_text
from indoor_parsing.metrics import format_table, to_csv_rows


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
        self.written = 0
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
                save_image(folder / f"{name}_color.png", colorize(ids, pl_module.num_classes))
            self.written += 1
            self.per_sequence[str(folder.relative_to(self.output_dir))] += 1

    def on_predict_end(self, trainer, pl_module):
        if not trainer.is_global_zero:
            return
        print(f"wrote {self.written} label maps under {self.output_dir}")
        report = getattr(trainer.datamodule, "labelling_report", None) if trainer.datamodule is not None else None
        if report is not None:  # captures: frames, coverage of the consistency loss, frames with no neighbour
            content = {**report(), "labelled": dict(self.per_sequence)}
            write_json(self.output_dir / "labelling_report.json", content)
            print(report_summary(content) + f"\n  report: {self.output_dir / 'labelling_report.json'}")


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

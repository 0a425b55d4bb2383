"""``indoor-parsing export``: the RGB-only inference graph of any method as ONNX or TorchScript, checked and timed.

    indoor-parsing export --ckpt_path runs/baseline_resnet18_synthrooms/checkpoints/best.ckpt \\
        --format onnx --size 480 640 --output model.onnx

The graph is the method's ``forward(image)``: input ``image`` float32 (B, 3, H, W), RGB scaled to [0, 1] and
ImageNet-normalised ((x - mean) / std, values in ``<output>.json``); output ``logits`` float32 (B, K, H, W). H and W
are fixed at export, the batch is dynamic. After writing, the file is run on a batch of a size other than the
example's and compared with PyTorch (``max |Δ logits| <= ATOL + RTOL |logits|``), then both are timed.
"""

import argparse
import statistics
import time
import warnings
from pathlib import Path

import torch
from torch import nn

from indoor_parsing.data.sample import IMAGENET_MEAN, IMAGENET_STD
from indoor_parsing.errors import UserError, user_errors
from indoor_parsing.inference.checkpoints import load_method
from indoor_parsing.io import atomic_path, write_json

# Exported vs PyTorch logits, float32 on the CPU: the same kernels up to summation order.
ATOL, RTOL = 1e-4, 1e-3
EXAMPLE_BATCH, CHECK_BATCH = 2, 3
FORMATS = ("onnx", "torchscript")


class InferenceGraph(nn.Module):
    """RGB (B, 3, H, W) normalised -> logits (B, K, H, W): a method's deployable part, nothing else."""

    def __init__(self, method: nn.Module):
        super().__init__()
        if getattr(method.hparams, "hha_input", False):  # GeoAware's "+HHA" row (Table 4) reads depth at test time
            raise UserError(f"{type(method).__name__}(hha_input=True) needs depth at test time: only RGB-only "
                            "configurations export")  # fmt: skip
        self.method = method

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.method(image)


def export_onnx(graph: nn.Module, example: torch.Tensor, path: Path) -> None:
    batch = torch.export.Dim("batch", min=1, max=1024)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporter chatter about its own internals
        program = torch.onnx.export(graph, (example,), input_names=["image"], output_names=["logits"],
                                    dynamic_shapes={"image": {0: batch}}, dynamo=True, verbose=False)  # fmt: skip
        program.save(str(tmp))


def export_torchscript(graph: InferenceGraph, example: torch.Tensor, path: Path) -> None:
    graph.method._jit_is_scripting = True  # what LightningModule.to_torchscript sets: no Trainer needed while tracing
    try:
        with atomic_path(path) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarning: H and W become constants, as a fixed size means
            torch.jit.save(torch.jit.trace(graph, example, check_trace=False), str(tmp))
    finally:
        graph.method._jit_is_scripting = False


def load_exported(path: Path, fmt: str):
    """A callable (B, 3, H, W) float32 tensor -> logits tensor running the exported file."""
    if fmt == "torchscript":
        scripted = torch.jit.load(str(path), map_location="cpu")
        return lambda x: scripted(x)
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda x: torch.from_numpy(session.run(["logits"], {"image": x.numpy()})[0])


def max_error(reference: torch.Tensor, other: torch.Tensor) -> tuple[float, bool]:
    """(max |Δ|, within ATOL · scale + RTOL |reference| everywhere), scale = max(1, max |reference|).

    The absolute part follows the logits' range: float32 kernels that sum in another order (ONNX Runtime's, or a
    GAP normaliser) differ by a few ulps of the largest activations, not of each logit.
    """
    diff = (reference - other).abs()
    scale = max(1.0, float(reference.abs().max()))
    return float(diff.max()), bool((diff <= ATOL * scale + RTOL * reference.abs()).all())


def latency_ms(fn, x: torch.Tensor, repeats: int) -> float:
    """Median wall time of ``fn(x)`` in milliseconds, after two warm-up calls."""
    times = []
    for i in range(repeats + 2):
        start = time.perf_counter()
        fn(x)
        if i >= 2:
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def export(ckpt_path: str | Path, fmt: str, size: tuple[int, int], output: str | Path | None = None,
           repeats: int = 10, batch: int = 1) -> dict:  # fmt: skip
    """Export, check against PyTorch and time; returns the report (also written to ``<output>.json``)."""
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    method, _ = load_method(ckpt_path, "cpu")
    graph = InferenceGraph(method).eval()
    ckpt_path = Path(ckpt_path)
    output = Path(output) if output else ckpt_path.with_suffix(".onnx" if fmt == "onnx" else ".ts")
    H, W = size
    generator = torch.Generator().manual_seed(0)
    example = torch.randn(EXAMPLE_BATCH, 3, H, W, generator=generator)
    with torch.no_grad():
        (export_onnx if fmt == "onnx" else export_torchscript)(graph, example, output)
        run = load_exported(output, fmt)
        check = torch.randn(CHECK_BATCH, 3, H, W, generator=generator)
        error, ok = max_error(graph(check), run(check))
        x = torch.randn(batch, 3, H, W, generator=generator)
        times = {"pytorch": latency_ms(graph, x, repeats), fmt: latency_ms(run, x, repeats)}
    if not ok:
        raise RuntimeError(f"{output}: exported logits differ from PyTorch's by up to {error:.3g} "
                           f"(tolerance {ATOL} max(1, max |logits|) + {RTOL} |logits|)")  # fmt: skip
    report = {
        "file": str(output), "format": fmt, "method": f"{type(method).__module__}.{type(method).__name__}",
        "checkpoint": str(ckpt_path), "input": {"name": "image", "shape": ["batch", 3, H, W], "dtype": "float32",
        "rgb_scale": 1 / 255, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
        "output": {"name": "logits", "shape": ["batch", method.num_classes, H, W], "dtype": "float32"},
        "classes": list(method.class_names), "parity": {"batch": CHECK_BATCH, "max_abs_error": error, "atol": ATOL,
        "rtol": RTOL}, "latency_ms": {"batch": batch, "repeats": repeats, **times},
    }  # fmt: skip
    write_json(output.with_name(output.name + ".json"), report)
    return report


def print_report(report: dict) -> None:
    fmt, lat = report["format"], report["latency_ms"]
    print(f"exported {report['method'].rsplit('.', 1)[1]} to {report['file']} ({fmt}, input "
          f"{report['input']['shape']}, metadata in {report['file']}.json)")  # fmt: skip
    print(f"parity on a batch of {report['parity']['batch']}: max |Δ logits| = {report['parity']['max_abs_error']:.2e} "
          f"(tolerance {ATOL} max(1, max |logits|) + {RTOL} |logits|)")  # fmt: skip
    name = {"onnx": "ONNX Runtime (CPU)", "torchscript": "TorchScript"}[fmt]
    print(f"\n| model | ms per batch of {lat['batch']} (median of {lat['repeats']}) |\n|---|---:|")
    print(f"| PyTorch eager | {lat['pytorch']:.2f} |\n| {name} | {lat[fmt]:.2f} |")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="indoor-parsing export", description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt_path", required=True, help="checkpoint (.ckpt) written by fit, of any method")
    p.add_argument("--format", choices=FORMATS, default="onnx")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), required=True, help="input height and width")
    p.add_argument("--output", default=None, help="output file (default: the checkpoint's name, .onnx or .ts)")
    p.add_argument("--batch", type=int, default=1, help="batch size of the latency measurement")
    p.add_argument("--repeats", type=int, default=10, help="timed runs per model")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    with user_errors():
        print_report(export(args.ckpt_path, args.format, tuple(args.size), args.output, args.repeats, args.batch))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

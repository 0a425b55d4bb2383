"""``indoor-parsing``: LightningCLI (fit / validate / test / predict) plus the data and tool commands.

indoor-parsing fit --config configs/experiments/baseline_resnet18_synthrooms.yaml
indoor-parsing test --config ... --ckpt_path runs/.../best.ckpt
indoor-parsing segment --ckpt_path runs/.../best.ckpt --input photos/ --output labels/
indoor-parsing prepare nyudv2 --src ... --dst ...

This module imports nothing heavy, so that ``indoor-parsing --help`` answers at once; Lightning loads on use.
"""

import importlib
import sys

from indoor_parsing.errors import user_errors

STAGES = {
    "fit": "train a method (--config configs/experiments/<method>_<backbone>_<dataset>.yaml)",
    "validate": "score a checkpoint on the validation split",
    "test": "score a checkpoint on the test split; writes test_metrics.md/.csv next to it",
    "predict": "label a dataset split with a checkpoint (index + colour PNGs)",
}
# Commands that are not Lightning stages: name -> (module whose main(argv) runs it, one line of help).
TOOLS = {
    "segment": ("indoor_parsing.inference.segment", "label a folder of photos, a glob or a file with a checkpoint"),
    "export": (
        "indoor_parsing.inference.export",
        "export a checkpoint's RGB-only network to ONNX or TorchScript, timed",
    ),
    "prepare": (
        "indoor_parsing.data.prepare.__main__",
        "convert a downloaded dataset (nyudv2, sunrgbd, scannet, s3dis)",
    ),
    "index-capture": ("indoor_parsing.data.capture", "index your own RGB-D capture for S4-Net adaptation"),
    "extract-features": ("indoor_parsing.distill.extract", "cache a 3D teacher's features for Distill3D"),
    "feature-audit": ("indoor_parsing.distill.audit", "share of teacher-feature cells whose point's class differs"),
    "depth-probe": ("indoor_parsing.distill.depth_probe", "probe how much depth a 2D network's features encode"),
    "gap-bench": ("indoor_parsing.tools.gap_bench", "time and compare the GAP (geometry-aware propagation) forms"),
    "bench": ("indoor_parsing.tools.bench", "training / inference throughput and memory of methods and loaders"),
    "claims": ("indoor_parsing.tools.claims.run", "re-measure the papers' claimed gains (docs/claims)"),
    "synthrooms-hardness": ("indoor_parsing.tools.synthrooms_hardness", "colour separability of SynthRooms pairs"),
    "curves": ("indoor_parsing.tools.curves", "learning curves: val mIoU vs steps and CPU minutes (docs/curves)"),
}


def usage() -> str:
    width = max(map(len, [*STAGES, *TOOLS])) + 2
    lines = ["usage: indoor-parsing <command> [options]   (indoor-parsing <command> --help for its options)", "",
             "training and evaluation (LightningCLI; --config <file>, any key overridable):"]  # fmt: skip
    lines += [f"  {name:<{width}}{text}" for name, text in STAGES.items()]
    lines += ["", "tools:"] + [f"  {name:<{width}}{text}" for name, (_, text) in TOOLS.items()]
    return "\n".join(lines)


def _cache_hint(message: str) -> str | None:
    from indoor_parsing.data.synthrooms.datamodule import cache_hint

    return cache_hint(message)


def cli(args: list[str] | None = None, run: bool = True):
    """Build (and by default run) the Lightning CLI; ``args`` as on the command line (None: ``sys.argv``)."""
    from indoor_parsing.lightning_cli import build_cli

    return build_cli(args, run)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        sys.exit(0 if args else 2)
    if args[0] in TOOLS:  # a user's mistake (errors.UserError) is one ``error:`` line and exit status 2
        with user_errors():
            status = importlib.import_module(TOOLS[args[0]][0]).main(args[1:])
        sys.exit(status or 0)
    if args[0] not in STAGES:
        print(f"error: unknown command {args[0]!r}\n\n{usage()}", file=sys.stderr)
        sys.exit(2)
    with user_errors(hints=[_cache_hint]):
        cli(argv)  # None lets LightningCLI read sys.argv itself (passing it as args makes Lightning warn)


if __name__ == "__main__":
    main()

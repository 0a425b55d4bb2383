"""``indoor-parsing segment``: label a folder of photos (or a glob, or one file) with a checkpoint of any method.

    indoor-parsing segment --ckpt_path runs/baseline_resnet18_synthrooms/checkpoints/best.ckpt \\
        --input photos/ --output photos_labels/

Per input ``<name>.<ext>``: ``<name>_label.png`` (class ids at the photo's size, 255 = none), ``<name>_color.png``
and ``<name>_overlay.png`` (previews with a legend), ``<name>_confidence.png`` with ``--confidence`` (uint8,
255 = probability 1); and ``classes.csv`` (the class table) once per output folder.
"""

import argparse
import collections
from pathlib import Path

import numpy as np
from tqdm import tqdm

from indoor_parsing.errors import UserError, user_errors
from indoor_parsing.inference.label_images import write_class_table, write_label_images
from indoor_parsing.inference.segmenter import find_images, load_segmenter
from indoor_parsing.io import save_image


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="indoor-parsing segment", description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt_path", required=True, help="checkpoint (.ckpt) written by fit, of any method")
    p.add_argument("--input", required=True, help="a folder of images, a quoted glob ('photos/*.jpg') or one file")
    p.add_argument("--output", required=True, help="output folder (created)")
    p.add_argument("--batch_size", type=int, default=4, help="images per forward (images of one size batch)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ...; default: a GPU when there is one")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=None,
                   help="network input size; default: the training size recorded in the checkpoint")  # fmt: skip
    p.add_argument("--confidence", action="store_true", help="also write <name>_confidence.png")
    return p


def _check_names(paths: list[Path]) -> None:
    counts = collections.Counter(p.stem for p in paths)
    clashes = sorted(stem for stem, n in counts.items() if n > 1)
    if clashes:
        first = [str(p) for p in paths if p.stem == clashes[0]]
        problem = f"outputs are named after the input file and {len(first)} inputs are called {clashes[0]!r}"
        raise UserError(first[0], f"{problem} ({', '.join(first)})", "segment them into separate output folders")


def run(args: argparse.Namespace) -> int:
    paths = find_images(args.input)
    _check_names(paths)
    segmenter = load_segmenter(args.ckpt_path, args.device, tuple(args.size) if args.size else None, args.batch_size)
    out = Path(args.output).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    write_class_table(out, segmenter.class_names)
    size = "each image's own size" if segmenter.size is None else f"{segmenter.size[0]}x{segmenter.size[1]}"
    print(f"segmenting {len(paths)} images on {segmenter.device} (network input {size}, "
          f"{segmenter.num_classes} classes)")  # fmt: skip
    for path, rgb, label, confidence in tqdm(segmenter.segment_many(paths), total=len(paths), desc="segment",
                                             unit="image"):  # fmt: skip
        write_label_images(out / path.stem, label, segmenter.class_names, rgb)
        if args.confidence:
            save_image(out / f"{path.stem}_confidence.png", np.round(confidence * 255).astype(np.uint8))
    print(f"wrote label maps of {len(paths)} images under {out} (class table: {out / 'classes.csv'})")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    with user_errors():
        return run(args)


if __name__ == "__main__":
    raise SystemExit(main())

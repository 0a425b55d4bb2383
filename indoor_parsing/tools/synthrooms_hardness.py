"""How well pixel colour alone separates SynthRooms classes: ``indoor-parsing synthrooms-hardness``.

For each geometry-only pair (a, b) (materials.GEOMETRY_PAIRS: pillow / bed, picture / wall, ...) a per-pixel
colour classifier is scored on rooms it was not fitted on (k-fold over rooms): naive Bayes on the pixel's quantised
RGB (one joint histogram per class, Laplace-smoothed, equal priors), reported as balanced accuracy (0.5 = chance,
1 = colour gives the class away). A few appearance-distinct pairs (floor / wall, bed / floor, ...)
are the contrast; the share of frames in which the ceiling is visible is reported too.

    indoor-parsing synthrooms-hardness --style source source_v2 --num-scenes 20 --out docs/synthrooms_hardness

numpy only and deterministic: the same layout gives the same numbers.
"""

import argparse
import csv
import json
import math
from pathlib import Path

import numpy as np

from indoor_parsing.data.layout import read_layout
from indoor_parsing.data.synthrooms.datamodule import default_root
from indoor_parsing.data.synthrooms.generate import generate_synthrooms, synthrooms_settings
from indoor_parsing.data.synthrooms.materials import APPEARANCE_PAIRS, GEOMETRY_PAIRS
from indoor_parsing.data.taxonomy import NYU40_ID
from indoor_parsing.io import atomic_path, load_label, load_rgb

CEILING_MIN_SHARE = 0.01  # a frame "sees the ceiling" when at least this share of its pixels is ceiling


def colour_bins(rgb: np.ndarray, levels: int) -> np.ndarray:
    """(N,) joint bin index of (N, 3) uint8 RGB quantised to ``levels`` per channel."""
    q = (rgb.astype(np.int64) * levels) >> 8
    return (q[:, 0] * levels + q[:, 1]) * levels + q[:, 2]


def room_histograms(root: str | Path, classes: list[int], levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-room colour histograms of each class, and the ceiling pixel share of each frame.

    Returns:
        (R, len(classes), levels ** 3) pixel counts per room (in scene order) and (F,) ceiling shares.
    """
    root = Path(root)
    _, frames = read_layout(root)
    rooms = sorted({f.scene for f in frames})
    hist = np.zeros((len(rooms), len(classes), levels**3), np.int64)
    ceiling = []
    for f in frames:
        bins = colour_bins(load_rgb(root / f.rgb).reshape(-1, 3), levels)
        label = load_label(root / f.label).ravel()
        r = rooms.index(f.scene)
        for k, c in enumerate(classes):
            hist[r, k] += np.bincount(bins[label == c], minlength=levels**3)
        ceiling.append(float((label == NYU40_ID["ceiling"]).mean()))
    return hist, np.asarray(ceiling)


def pair_separability(hist_a: np.ndarray, hist_b: np.ndarray, folds: int = 5, alpha: float = 1.0) -> dict:
    """Balanced accuracy on held-out rooms of a naive-Bayes colour classifier telling class a from class b.

    Rooms are split into ``folds`` groups (room i in group i mod folds); each group is classified by a model fitted
    on the other rooms: per-class colour histograms, Laplace-smoothed, equal priors, a tie counts half. The
    held-out predictions of all groups are pooled.

    Args:
        hist_a, hist_b: (R, B) per-room colour histograms of the two classes.
        folds: number of room groups (at most R).
        alpha: smoothing count per bin.

    Returns:
        balanced_accuracy (NaN when either class has no pixels) and the pixel and room counts of both classes.
    """
    R, B = hist_a.shape
    folds = max(2, min(folds, R))
    group = np.arange(R) % folds
    correct_a = correct_b = 0.0
    for g in range(folds):
        train_a, train_b = hist_a[group != g].sum(0), hist_b[group != g].sum(0)
        log_a = np.log(train_a + alpha) - math.log(train_a.sum() + alpha * B)
        log_b = np.log(train_b + alpha) - math.log(train_b.sum() + alpha * B)
        says_a = np.where(log_a > log_b, 1.0, np.where(log_a == log_b, 0.5, 0.0))  # per bin
        correct_a += float(hist_a[group == g].sum(0) @ says_a)
        correct_b += float(hist_b[group == g].sum(0) @ (1.0 - says_a))
    n_a, n_b = int(hist_a.sum()), int(hist_b.sum())
    row = {"pixels_a": n_a, "pixels_b": n_b, "rooms_a": int((hist_a.sum(1) > 0).sum()),
           "rooms_b": int((hist_b.sum(1) > 0).sum())}  # fmt: skip
    if n_a == 0 or n_b == 0:
        return {"balanced_accuracy": math.nan, **row}
    return {"balanced_accuracy": (correct_a / n_a + correct_b / n_b) / 2, **row}


def hardness(root: str | Path, levels: int = 16, folds: int = 5) -> dict:
    """Per-pair rows (geometry-only pairs, then appearance pairs) and ceiling visibility of one layout."""
    pairs = [("geometry", p) for p in GEOMETRY_PAIRS] + [("appearance", p) for p in APPEARANCE_PAIRS]
    classes = sorted({NYU40_ID[n] for _, p in pairs for n in p})
    hist, share = room_histograms(root, classes, levels)
    rows = []
    for kind, (a, b) in pairs:
        ha, hb = hist[:, classes.index(NYU40_ID[a])], hist[:, classes.index(NYU40_ID[b])]
        rows.append({"pair": f"{a} / {b}", "kind": kind, **pair_separability(ha, hb, folds)})
    ceiling = {"frames": len(share), "frames_with_ceiling": float((share > 0).mean()),
               "frames_with_ceiling_1pct": float((share >= CEILING_MIN_SHARE).mean()),
               "mean_ceiling_pixel_share": float(share.mean())}  # fmt: skip
    return {"rows": rows, "ceiling": ceiling}


def format_table(results: dict[str, dict]) -> str:
    """Markdown table: one row per pair, one balanced-accuracy column per style; then ceiling visibility."""
    styles = list(results)
    first = results[styles[0]]["rows"]
    lines = ["| pair | kind | " + " | ".join(styles) + " |", "|---|---|" + "---:|" * len(styles)]
    for i, row in enumerate(first):
        cells = [f"{results[s]['rows'][i]['balanced_accuracy']:.3f}" for s in styles]
        lines.append(f"| {row['pair']} | {row['kind']} | " + " | ".join(cells) + " |")
    for key, name in (("frames_with_ceiling", "frames with any ceiling pixel"),
                      ("frames_with_ceiling_1pct", "frames with >= 1% ceiling pixels"),
                      ("mean_ceiling_pixel_share", "mean ceiling pixel share")):  # fmt: skip
        lines.append(f"| {name} | ceiling | " + " | ".join(f"{results[s]['ceiling'][key]:.3f}" for s in styles) + " |")
    return "\n".join(lines)


def write_results(out: str | Path, results: dict[str, dict], settings: dict[str, dict]) -> list[Path]:
    """hardness.csv (one row per style and pair) and hardness.json (rows, ceiling, generation settings)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    keys = ["style", "pair", "kind", "balanced_accuracy", "pixels_a", "pixels_b", "rooms_a", "rooms_b"]
    with atomic_path(out / "hardness.csv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, keys)
        w.writeheader()
        for style, r in results.items():
            w.writerows({"style": style, **row} for row in r["rows"])
    with atomic_path(out / "hardness.json") as tmp:
        Path(tmp).write_text(json.dumps({"results": results, "settings": settings}, indent=1, sort_keys=True))
    return [out / "hardness.csv", out / "hardness.json"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="indoor-parsing synthrooms-hardness", description=__doc__.splitlines()[0])
    parser.add_argument("--style", nargs="+", default=["source", "source_v2"],
                        help="built-in styles or style files (.yaml/.json); one column each")  # fmt: skip
    parser.add_argument("--root", help="score this existing SynthRooms layout instead of generating one")
    parser.add_argument("--num-scenes", type=int, default=20)
    parser.add_argument("--frames", type=int, default=6, help="frames per sequence (one sequence per room)")
    parser.add_argument("--height", type=int, default=120)
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--levels", type=int, default=16, help="RGB quantisation levels per channel")
    parser.add_argument("--folds", type=int, default=5, help="room groups: each is scored by a model of the others")
    parser.add_argument("--out", help="folder for hardness.csv and hardness.json")
    args = parser.parse_args(argv)
    results, settings = {}, {}
    variants = {Path(args.root).name: (Path(args.root), None)} if args.root else {}
    for style in [] if args.root else args.style:
        gen = dict(num_scenes=args.num_scenes, frames_per_sequence=args.frames, height=args.height,
                   width=args.width, style=style, seed=args.seed)  # fmt: skip
        s = synthrooms_settings(**gen)
        variants[style] = (generate_synthrooms(default_root(s), **gen, progress=False), s)
    for name, (root, s) in variants.items():
        results[name] = hardness(root, args.levels, args.folds)
        settings[name] = s if s is not None else read_layout(root)[0].get("settings")
    print(format_table(results))
    if args.out:
        print("wrote", ", ".join(str(p) for p in write_results(args.out, results, settings)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Label maps as files: index PNG (class ids), colour preview and overlay with a legend, and the class table.

::

    <stem>_label.png    uint8 class ids 0..K-1 (255 = none), the size of the input image
    <stem>_color.png    class colours, with a legend of the classes present to the right
    <stem>_overlay.png  the image with class colours blended over it, with the same legend
    classes.csv         id, name, r, g, b of every class (one per output folder)
"""

import csv
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from indoor_parsing.data.taxonomy import colorize, overlay, palette
from indoor_parsing.io import save_image, write_text

ROW = 14  # legend row height in pixels
SWATCH = 10


def legend_panel(ids: list[int], class_names: list[str], height: int) -> np.ndarray:
    """A white (max(height, rows), w, 3) uint8 panel: one colour swatch and class name per id in ``ids``."""
    font = ImageFont.load_default()
    pal = palette(len(class_names))
    width = 8 + SWATCH + 6 + max([int(font.getlength(class_names[i])) for i in ids] or [0]) + 8
    panel = Image.new("RGB", (width, max(height, 4 + ROW * len(ids))), "white")
    draw = ImageDraw.Draw(panel)
    for row, k in enumerate(ids):
        y = 4 + row * ROW
        draw.rectangle([8, y, 8 + SWATCH - 1, y + SWATCH - 1], fill=tuple(int(c) for c in pal[k]), outline="black")
        draw.text((8 + SWATCH + 6, y - 1), class_names[k], fill="black", font=font)
    return np.asarray(panel)


def with_legend(picture: np.ndarray, label: np.ndarray, class_names: list[str]) -> np.ndarray:
    """``picture`` (H, W, 3) with the legend of the classes present in ``label`` (H, W) to its right."""
    ids = [int(k) for k in np.unique(label) if k < len(class_names)]
    panel = legend_panel(ids, class_names, picture.shape[0])
    H = panel.shape[0]  # the legend may be taller than a small image: pad the image with white
    canvas = np.full((H, picture.shape[1] + panel.shape[1], 3), 255, np.uint8)
    canvas[: picture.shape[0], : picture.shape[1]] = picture
    canvas[:, picture.shape[1] :] = panel
    return canvas


def write_label_images(stem: Path, label: np.ndarray, class_names: list[str], rgb: np.ndarray | None = None,
                       alpha: float = 0.5) -> list[Path]:  # fmt: skip
    """Write ``<stem>_label.png``, ``<stem>_color.png`` and, given ``rgb`` (H, W, 3), ``<stem>_overlay.png``."""
    K = len(class_names)
    ids = np.where(label < K, label, 255).astype(np.uint8)  # (H, W)
    paths = [stem.parent / f"{stem.name}_label.png", stem.parent / f"{stem.name}_color.png"]
    save_image(paths[0], ids)
    save_image(paths[1], with_legend(colorize(ids, K), ids, class_names))
    if rgb is not None:
        paths.append(stem.parent / f"{stem.name}_overlay.png")
        save_image(paths[2], with_legend(overlay(rgb, ids, K, alpha), ids, class_names))
    return paths


def write_class_table(folder: Path, class_names: list[str]) -> Path:
    """``folder/classes.csv``: id, name and preview colour of every class."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["id", "name", "r", "g", "b"])
    for k, (name, rgb) in enumerate(zip(class_names, palette(len(class_names)), strict=True)):
        writer.writerow([k, name, *(int(c) for c in rgb)])
    path = Path(folder) / "classes.csv"
    write_text(path, buf.getvalue())
    return path

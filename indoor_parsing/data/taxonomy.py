"""Class lists, label spaces, the lookup tables between them, and class colours.

Labels are stored in a *label space* (the ids a prepared layout writes): ``nyu40`` (0 = unlabeled, 1..40 = NYU-40;
used by NYU-Dv2, SUN RGB-D (ids 1..37), ScanNet (through scannetv2-labels.combined.tsv) and SynthRooms) or
``s3dis13`` (0 = unlabeled, 1..13). A *class set* is what a model trains on: K names and a 256-entry table from
stored id to train id 0..K-1, or 255 (ignore). Cross-dataset experiments are class sets over a shared space, e.g.
ScanNet-20 over NYU-40 ids lets "train on ScanNet, test on NYU-v2 20 classes" be a config.
"""

from dataclasses import dataclass
from importlib import resources

import numpy as np

IGNORE = 255

NYU40 = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
    "picture", "counter", "blinds", "desk", "shelves", "curtain", "dresser", "pillow", "mirror", "floor mat",
    "clothes", "ceiling", "books", "refrigerator", "television", "paper", "towel", "shower curtain", "box",
    "whiteboard", "person", "night stand", "toilet", "sink", "lamp", "bathtub", "bag", "otherstructure",
    "otherfurniture", "otherprop",
)  # fmt: skip
NYU40_ID = {name: i + 1 for i, name in enumerate(NYU40)}

# NYU-40 id -> 13-class id (1-based), from class13Mapping.mat (labels13) of the NYU toolbox.
NYU40_TO_13 = (
    12, 5, 6, 1, 4, 9, 10, 12, 13, 6, 8, 6, 13, 10, 6, 13, 6, 7, 7, 5,
    7, 3, 2, 6, 11, 7, 7, 7, 7, 7, 7, 6, 7, 7, 7, 7, 7, 7, 6, 7,
)  # fmt: skip
NYU13 = ("bed", "books", "ceiling", "chair", "floor", "furniture", "objects", "picture", "sofa", "table", "tv",
         "wall", "window")  # fmt: skip

# The 20 ScanNet v2 benchmark classes, as NYU-40 ids.
SCANNET20_IDS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39)

S3DIS13 = ("ceiling", "floor", "wall", "beam", "column", "window", "door", "table", "chair", "sofa", "bookcase",
           "board", "clutter")  # fmt: skip

# SynthRooms' default training classes (every SynthRooms object carries one of these NYU-40 ids).
SYNTHROOMS_IDS = tuple(
    NYU40_ID[n]
    for n in (
        "wall", "floor", "ceiling", "door", "window", "picture", "whiteboard", "bed", "pillow", "table", "desk",
        "chair", "sofa", "cabinet", "bookshelf", "night stand", "lamp", "television", "box", "floor mat",
    )
)  # fmt: skip

LABEL_SPACES = ("nyu40", "s3dis13")


@dataclass(frozen=True)
class ClassSet:
    """K training classes over a stored label space.

    Args:
        name: class set name used in configs.
        space: the stored label space the table reads.
        names: the K class names, in train-id order.
        lut: (256,) uint8, stored id -> train id or 255.
    """

    name: str
    space: str
    names: tuple[str, ...]
    lut: np.ndarray

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def map(self, stored: np.ndarray) -> np.ndarray:
        """Stored ids (uint8 array) -> train ids (uint8, 255 = ignore)."""
        return self.lut[stored]


def _subset(name: str, space: str, ids: tuple[int, ...], all_names: tuple[str, ...]) -> ClassSet:
    lut = np.full(256, IGNORE, np.uint8)
    lut[list(ids)] = np.arange(len(ids), dtype=np.uint8)
    return ClassSet(name, space, tuple(all_names[i - 1] for i in ids), lut)


def _nyu13() -> ClassSet:
    lut = np.full(256, IGNORE, np.uint8)
    lut[1:41] = np.asarray(NYU40_TO_13, np.uint8) - 1
    return ClassSet("nyu13", "nyu40", NYU13, lut)


def class_set(name: str) -> ClassSet:
    """The class set called ``name``: nyu40, nyu13, sun37, scannet20, s3dis13 or synthrooms."""
    sets = {
        "nyu40": lambda: _subset("nyu40", "nyu40", tuple(range(1, 41)), NYU40),
        "nyu13": _nyu13,
        "sun37": lambda: _subset("sun37", "nyu40", tuple(range(1, 38)), NYU40),
        "scannet20": lambda: _subset("scannet20", "nyu40", SCANNET20_IDS, NYU40),
        "s3dis13": lambda: _subset("s3dis13", "s3dis13", tuple(range(1, 14)), S3DIS13),
        "synthrooms": lambda: _subset("synthrooms", "nyu40", SYNTHROOMS_IDS, NYU40),
    }
    if name not in sets:
        raise ValueError(f"unknown class set {name!r}; expected one of {sorted(sets)}")
    return sets[name]()


def nyu894_to_40() -> np.ndarray:
    """(895,) uint8: NYU-Dv2 894-class id (0 = unlabeled) -> NYU-40 id; from the toolbox's classMapping40.mat."""
    text = resources.files("indoor_parsing.data").joinpath("tables/nyu894_to_40.txt").read_text()
    values = [int(line) for line in text.splitlines() if line and not line.startswith("#")]
    return np.asarray([0, *values], np.uint8)


def palette(num_classes: int, seed: int = 7) -> np.ndarray:
    """(K, 3) uint8 colours, distinct and stable; the ignore id is drawn black by callers."""
    rng = np.random.default_rng(seed)
    hues = (np.arange(num_classes) * 0.618033988749895) % 1.0
    sat = 0.55 + 0.4 * rng.random(num_classes)
    val = 0.65 + 0.35 * rng.random(num_classes)
    i = np.floor(hues * 6).astype(int) % 6
    f = hues * 6 - np.floor(hues * 6)
    p, q, t = val * (1 - sat), val * (1 - f * sat), val * (1 - (1 - f) * sat)
    rgb = np.choose(i[None], [[val, t, p], [q, val, p], [p, val, t], [p, q, val], [t, p, val], [val, p, q]])
    return (np.asarray(rgb).reshape(3, -1).T * 255).round().astype(np.uint8)


def colorize(label: np.ndarray, num_classes: int) -> np.ndarray:
    """(H, W) train ids -> (H, W, 3) uint8 colours, ignore drawn black."""
    pal = np.zeros((256, 3), np.uint8)
    pal[:num_classes] = palette(num_classes)
    return pal[label]


def overlay(rgb: np.ndarray, label: np.ndarray, num_classes: int, alpha: float = 0.5) -> np.ndarray:
    """Class colours blended over ``rgb`` (H, W, 3) uint8 where ``label`` (H, W) is a class; ignored pixels keep the
    image. Returns (H, W, 3) uint8."""
    if rgb.shape[:2] != label.shape:
        raise ValueError(f"overlay: image {rgb.shape[:2]} and label {label.shape} differ in size")
    label = np.asarray(label)
    colours = colorize(np.where(label < num_classes, label, IGNORE).astype(np.uint8), num_classes)  # (H, W, 3)
    mixed = (1 - alpha) * rgb.astype(np.float32) + alpha * colours.astype(np.float32)
    keep = (label >= num_classes)[..., None]  # ignore / out-of-range ids
    return np.where(keep, rgb, mixed.round()).astype(np.uint8)

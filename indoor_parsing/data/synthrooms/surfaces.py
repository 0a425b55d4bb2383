"""Per-instance surface materials drawn from a SynthRooms style (style.py) and their baked texture tiles."""

from dataclasses import dataclass

import numpy as np

from indoor_parsing.data.synthrooms.style import TEXTURES, MaterialGroup, Style


@dataclass(frozen=True)
class Material:
    """Procedural surface appearance: colour ``c1`` blended towards ``c2`` by a pattern in surface coordinates.

    The pattern repeats every ``period`` metres along both surface axes; ``angle`` picks the stripe direction among
    directions that keep the pattern periodic, so it can be baked into a tile (see :func:`texture_tiles`).
    """

    kind: int  # index into TEXTURES
    c1: tuple[float, float, float]
    c2: tuple[float, float, float]
    period: float
    angle: float
    phase: float
    contrast: float


def _colour(rng: np.random.Generator, group: "Style | MaterialGroup") -> tuple[float, float, float]:
    base = np.asarray(group.palette[rng.integers(len(group.palette))])
    jitter = 1.0 + group.colour_jitter * rng.uniform(-1, 1, 3)
    return tuple(np.clip(base * jitter, 0.0, 1.0).tolist())


def material_group(style: Style, name: str | None, slot: int, rng: np.random.Generator) -> "Style | MaterialGroup":
    """The group a material of class ``name`` in ``slot`` is drawn from; the style itself when the class has none.

    Only a class with its own materials consumes a draw, so version-1 scenes keep their random streams.
    """
    slots = style.class_materials.get(name) if name is not None else None
    if not slots:
        return style
    weights = slots[slot]
    names = sorted(weights)
    p = np.array([weights[g] for g in names], np.float64)
    return style.materials[names[int(rng.choice(len(names), p=p / p.sum()))]]


def sample_material(rng: np.random.Generator, style: Style, name: str | None = None, slot: int = 0) -> Material:
    """One material of class ``name`` (slot 0 or 1): from the class's groups in version 2, else from the palette."""
    group = material_group(style, name, slot, rng)
    return Material(
        kind=int(rng.choice(len(TEXTURES), p=np.asarray(group.texture_probs) / sum(group.texture_probs))),
        c1=_colour(rng, group),
        c2=_colour(rng, group),
        period=float(rng.uniform(*group.texture_period)),
        angle=float(rng.uniform(0, np.pi)),
        phase=float(rng.uniform(0, 1)),
        contrast=float(rng.uniform(*group.texture_contrast)),
    )


# Integer stripe directions (a, b): a u + b v is periodic on the unit tile.
_DIRECTIONS = np.array([(1, 0), (0, 1), (1, 1), (1, -1), (2, 1), (1, 2), (2, -1), (1, -2)], np.float64)


def texture_tiles(materials: list[Material], size: int = 32) -> np.ndarray:
    """(M, size, size, 3) float32 albedo of one period of each material, indexed by (u, v) in periods."""
    g = (np.arange(size) + 0.5) / size
    u, v = np.meshgrid(g, g, indexing="ij")  # (size, size)
    tiles = np.empty((len(materials), size, size, 3), np.float32)
    for i, m in enumerate(materials):
        a, b = _DIRECTIONS[int(m.angle / np.pi * len(_DIRECTIONS)) % len(_DIRECTIONS)]
        s, t = a * u + b * v + m.phase, b * u - a * v  # across and along the stripes, in periods
        pattern = [
            np.zeros_like(u),
            (s - np.floor(s)) < 0.5,
            (np.floor(2 * u) + np.floor(2 * v)) % 2,
            0.5
            + 0.25 * (np.sin(2 * np.pi * s) * np.sin(2 * np.pi * t) + np.sin(2 * np.pi * (2 * s - t + 3 * m.phase))),
        ][m.kind]
        tiles[i] = np.asarray(m.c1) + m.contrast * (np.asarray(m.c2) - np.asarray(m.c1)) * pattern[..., None]
    return tiles

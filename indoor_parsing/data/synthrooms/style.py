"""Domain settings of SynthRooms (palette, textures, lighting, camera, sensor noise) and per-instance materials.

Two built-in styles make a labelled *source* and an unlabelled *target* domain that differ in appearance and camera
height while sharing the geometry distribution. Materials are drawn from ONE palette for every class, so colour and
texture never give the class away: several classes (pillow / bed, picture / wall, door / wall, floor mat / floor,
cabinet / table) are told apart only by their shape.
"""

from dataclasses import asdict, dataclass

import numpy as np

TEXTURES = ("plain", "stripes", "checker", "noise")


@dataclass(frozen=True)
class Style:
    """Appearance and camera settings of one domain (all ranges are (low, high), drawn uniformly).

    Args:
        name: domain name, mixed into the seed so two styles never share room layouts.
        palette: base colours, linear RGB in [0, 1], shared by all classes.
        colour_jitter: per-channel multiplicative jitter of a drawn palette colour.
        texture_probs: probabilities of the ``TEXTURES`` kinds.
        texture_period: pattern period in metres.
        texture_contrast: blend weight of the second colour.
        ambient: ambient light level.
        light_colour: RGB tint of all lights.
        point_lights: number of ceiling point lights.
        point_intensity: point-light intensity (at 1 m, before falloff).
        sun_intensity: directional light intensity.
        camera_height: camera height above the floor, metres.
        camera_pitch: camera tilt in degrees (negative looks down).
        rgb_noise: Gaussian RGB noise std in 8-bit units.
        depth_noise: depth noise std relative to depth.
        depth_holes: fraction of pixels in random depth holes.
        grazing_cos: depth drops out with probability rising as |cos(ray, normal)| falls below this.
    """

    name: str
    palette: tuple[tuple[float, float, float], ...]
    colour_jitter: float
    texture_probs: tuple[float, float, float, float]
    texture_period: tuple[float, float]
    texture_contrast: tuple[float, float]
    ambient: tuple[float, float]
    light_colour: tuple[float, float, float]
    point_lights: tuple[int, int]
    point_intensity: tuple[float, float]
    sun_intensity: tuple[float, float]
    camera_height: tuple[float, float]
    camera_pitch: tuple[float, float]
    rgb_noise: float
    depth_noise: float
    depth_holes: float
    grazing_cos: float

    def to_dict(self) -> dict:
        return asdict(self)


SOURCE = Style(
    name="source",
    palette=(
        (0.80, 0.74, 0.62), (0.62, 0.45, 0.30), (0.45, 0.30, 0.20), (0.86, 0.84, 0.78), (0.55, 0.60, 0.48),
        (0.70, 0.42, 0.32), (0.50, 0.50, 0.50), (0.30, 0.33, 0.42), (0.78, 0.66, 0.36), (0.72, 0.56, 0.55),
        (0.25, 0.22, 0.20), (0.66, 0.70, 0.72),
    ),
    colour_jitter=0.12,
    texture_probs=(0.45, 0.2, 0.1, 0.25),
    texture_period=(0.15, 0.6),
    texture_contrast=(0.15, 0.45),
    ambient=(0.30, 0.40),
    light_colour=(1.0, 0.93, 0.82),
    point_lights=(1, 3),
    point_intensity=(0.8, 1.2),
    sun_intensity=(0.2, 0.35),
    camera_height=(1.30, 1.60),
    camera_pitch=(-28.0, -8.0),
    rgb_noise=2.0,
    depth_noise=0.01,
    depth_holes=0.01,
    grazing_cos=0.12,
)  # fmt: skip

TARGET = Style(
    name="target",
    palette=(
        (0.10, 0.55, 0.60), (0.20, 0.35, 0.80), (0.55, 0.25, 0.70), (0.85, 0.20, 0.25), (0.40, 0.75, 0.25),
        (0.90, 0.85, 0.30), (0.75, 0.80, 0.88), (0.15, 0.18, 0.25), (0.95, 0.55, 0.75), (0.35, 0.65, 0.85),
        (0.60, 0.62, 0.66), (0.92, 0.95, 0.98),
    ),
    colour_jitter=0.08,
    texture_probs=(0.2, 0.3, 0.3, 0.2),
    texture_period=(0.08, 0.3),
    texture_contrast=(0.35, 0.8),
    ambient=(0.18, 0.28),
    light_colour=(0.82, 0.90, 1.05),
    point_lights=(2, 4),
    point_intensity=(0.6, 1.0),
    sun_intensity=(0.35, 0.6),
    camera_height=(0.85, 1.10),
    camera_pitch=(-14.0, 4.0),
    rgb_noise=5.0,
    depth_noise=0.02,
    depth_holes=0.03,
    grazing_cos=0.18,
)  # fmt: skip

STYLES = {"source": SOURCE, "target": TARGET}


def get_style(style: "str | Style") -> Style:
    """A built-in style by name, or the given :class:`Style` unchanged."""
    if isinstance(style, Style):
        return style
    if style not in STYLES:
        raise ValueError(f"unknown SynthRooms style {style!r}; expected one of {sorted(STYLES)} or a Style")
    return STYLES[style]


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


def _colour(rng: np.random.Generator, style: Style) -> tuple[float, float, float]:
    base = np.asarray(style.palette[rng.integers(len(style.palette))])
    jitter = 1.0 + style.colour_jitter * rng.uniform(-1, 1, 3)
    return tuple(np.clip(base * jitter, 0.0, 1.0).tolist())


def sample_material(rng: np.random.Generator, style: Style) -> Material:
    """One material; the draw never depends on the class it will be given to."""
    return Material(
        kind=int(rng.choice(len(TEXTURES), p=np.asarray(style.texture_probs) / sum(style.texture_probs))),
        c1=_colour(rng, style),
        c2=_colour(rng, style),
        period=float(rng.uniform(*style.texture_period)),
        angle=float(rng.uniform(0, np.pi)),
        phase=float(rng.uniform(0, 1)),
        contrast=float(rng.uniform(*style.texture_contrast)),
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

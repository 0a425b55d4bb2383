"""Domain settings of SynthRooms (palette, textures, lighting, camera, sensor noise); drawing per-instance
materials from them: ``surfaces.py``.

Two generator versions, both pure data in a :class:`Style`:

- **version 1** (``"source"``, ``"target"``): materials are drawn from ONE palette for every class, so colour and
  texture never give the class away.
- **version 2** (``"source_v2"``, ``"target_v2"``, ``"target_rig_v2"``, or a YAML / JSON style file): a per-class
  material model as in real rooms. ``materials`` names material groups (paint, wood, tiles, bedding, screen, ...) and
  ``class_materials`` gives each class, per material slot, weights over those groups, so appearance correlates with
  class with overlap.
  The pairs the geometry methods exist for (pillow / bed, picture and whiteboard / wall, door / wall, floor mat /
  floor, cabinet / table, ``GEOMETRY_PAIRS``) keep one shared distribution: only their shape tells them apart. A
  share of camera control points looks up (``look_up_share``, ``look_up_pitch``), so the ceiling is seen.

``"target_rig_v2"`` is the source world seen by another camera rig and sensor: ``target_v2``'s camera height,
pitch and noise (``RIG_KEYS``) with ``source_v2``'s materials and lights.

Classes a version-2 style does not list draw from the top-level palette, as in version 1.
"""

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from indoor_parsing.data.synthrooms import materials as v2
from indoor_parsing.data.taxonomy import NYU40, SYNTHROOMS_IDS
from indoor_parsing.io import write_text

TEXTURES = ("plain", "stripes", "checker", "noise")
CLASS_NAMES = tuple(NYU40[i - 1] for i in SYNTHROOMS_IDS)
GEOMETRY_PAIRS = v2.GEOMETRY_PAIRS
VERSIONS = (1, 2)
_V2_DEFAULTS = {"materials": {}, "class_materials": {}, "look_up_share": 0.0, "look_up_pitch": (0.0, 0.0)}


@dataclass(frozen=True)
class MaterialGroup:
    """A family of materials (paint, wood, tiles, ...): the palette and texture ranges one draw picks from.

    Args:
        palette: base colours, linear RGB in [0, 1].
        colour_jitter: per-channel multiplicative jitter of a drawn palette colour.
        texture_probs: probabilities of the ``TEXTURES`` kinds.
        texture_period: pattern period in metres.
        texture_contrast: blend weight of the second colour.
    """

    palette: tuple[tuple[float, float, float], ...]
    colour_jitter: float
    texture_probs: tuple[float, float, float, float]
    texture_period: tuple[float, float]
    texture_contrast: tuple[float, float]

    def __post_init__(self):
        if not self.palette or any(len(c) != 3 for c in self.palette):
            raise ValueError(f"a palette is a non-empty list of RGB triples, got {self.palette}")
        if len(self.texture_probs) != len(TEXTURES) or min(self.texture_probs) < 0 or sum(self.texture_probs) <= 0:
            raise ValueError(f"texture_probs must be {len(TEXTURES)} non-negative weights {TEXTURES}")


@dataclass(frozen=True)
class Style:
    """Appearance and camera settings of one domain (all ranges are (low, high), drawn uniformly).

    Args:
        name: domain name, mixed into the seed so two styles never share room layouts.
        palette: base colours, linear RGB in [0, 1], of every class without its own materials (all, in version 1).
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
        version: generator version (1 or 2); the fields below are version 2 only.
        materials: material groups by name.
        class_materials: class name -> (slot 0, slot 1) weights over group names; a slot 1 material is e.g. a
            mattress, a screen, a door leaf or a picture's canvas (objects.py).
        look_up_share: probability that a camera control point looks up, drawing its pitch from ``look_up_pitch``.
        look_up_pitch: pitch range in degrees of such a control point.
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
    version: int = 1
    materials: dict[str, MaterialGroup] = field(default_factory=dict)
    class_materials: dict[str, tuple[dict[str, float], dict[str, float]]] = field(default_factory=dict)
    look_up_share: float = 0.0
    look_up_pitch: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self):
        if self.version not in VERSIONS:
            raise ValueError(f"style {self.name!r}: version must be one of {VERSIONS}, got {self.version}")
        if self.version == 1 and any(getattr(self, k) != v for k, v in _V2_DEFAULTS.items()):
            raise ValueError(f"style {self.name!r}: {', '.join(_V2_DEFAULTS)} need version: 2")
        for cls, slots in self.class_materials.items():
            if cls not in CLASS_NAMES:
                raise ValueError(f"style {self.name!r}: unknown class {cls!r} in class_materials; one of {CLASS_NAMES}")
            if len(slots) != 2:
                raise ValueError(f"style {self.name!r}: class {cls!r} needs 2 slot distributions, got {len(slots)}")
            for weights in slots:
                unknown = sorted(set(weights) - set(self.materials))
                if unknown or not weights or min(weights.values()) < 0 or sum(weights.values()) <= 0:
                    raise ValueError(
                        f"style {self.name!r}: class {cls!r} weights {weights} must be non-negative over the "
                        f"material groups {sorted(self.materials)} (unknown: {unknown})"
                    )
        if not 0.0 <= self.look_up_share <= 1.0:
            raise ValueError(f"style {self.name!r}: look_up_share must be in [0, 1], got {self.look_up_share}")

    def to_dict(self) -> dict:
        """JSON-ready record; a version-1 style gives exactly the record it gave before version 2 existed."""
        d = asdict(self)
        if self.version == 1:
            for k in ("version", *_V2_DEFAULTS):
                del d[k]
        return json.loads(json.dumps(d))  # tuples -> lists

    @classmethod
    def from_dict(cls, d: dict) -> "Style":
        """The style of a :meth:`to_dict` record or a style file; a slot map may be one distribution for both slots."""
        known = {f.name for f in fields(cls)}
        if unknown := sorted(set(d) - known):
            raise ValueError(f"unknown style keys {unknown}; expected some of {sorted(known)}")
        d = {k: _tuples(v) if k not in ("materials", "class_materials") else v for k, v in d.items()}
        d["materials"] = {k: MaterialGroup(**{f: _tuples(x) for f, x in g.items()})
                          for k, g in (d.get("materials") or {}).items()}  # fmt: skip
        d["class_materials"] = {k: _slots(v) for k, v in (d.get("class_materials") or {}).items()}
        return cls(**d)


def _tuples(x):
    return tuple(_tuples(v) for v in x) if isinstance(x, list | tuple) else x


def _slots(v) -> tuple[dict[str, float], dict[str, float]]:
    slots = (v, v) if isinstance(v, dict) else tuple(v)
    return tuple({str(g): float(w) for g, w in s.items()} for s in slots)


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


def _v2(base: Style, name: str, domain: dict) -> Style:
    """A version-2 style: ``base``'s lights, camera and noise with the material model of ``domain`` (materials.py)."""
    return Style.from_dict({**base.to_dict(), **domain, "name": name, "version": 2})


SOURCE_V2 = _v2(SOURCE, "source_v2", v2.SOURCE)
TARGET_V2 = _v2(TARGET, "target_v2", v2.TARGET)
# Another camera rig and sensor in the source world: target_v2's camera and noise, source_v2's materials and lights
# (S4-Net's new scene on SynthRooms: a low robot-mounted camera with a noisier sensor, same kind of rooms).
RIG_KEYS = ("camera_height", "camera_pitch", "rgb_noise", "depth_noise", "depth_holes", "grazing_cos")
TARGET_RIG_V2 = Style.from_dict(
    {**SOURCE_V2.to_dict(), **{k: TARGET_V2.to_dict()[k] for k in RIG_KEYS}, "name": "target_rig_v2"}
)
STYLES = {s.name: s for s in (SOURCE, TARGET, SOURCE_V2, TARGET_V2, TARGET_RIG_V2)}
STYLE_FILE_SUFFIXES = (".yaml", ".yml", ".json")


def load_style(path: str | Path) -> Style:
    """A style from a YAML or JSON file (the keys of :class:`Style`; see :func:`save_style` for a starting point)."""
    import yaml

    path = Path(path).expanduser()
    if path.suffix not in STYLE_FILE_SUFFIXES:
        raise ValueError(f"{path}: a style file ends with one of {STYLE_FILE_SUFFIXES}")
    if not path.is_file():
        raise FileNotFoundError(f"style file {path} not found")
    text = path.read_text()
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a style file holds a mapping of Style keys")
    try:
        return Style.from_dict(data)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: {e}") from None


def save_style(style: "str | Style", path: str | Path) -> Path:
    """Write ``style`` as YAML or JSON (by the suffix); :func:`load_style` reads it back equal."""
    import yaml

    path, d = Path(path).expanduser(), get_style(style).to_dict()
    d.setdefault("version", 1)
    text = (
        json.dumps(d, indent=1)
        if path.suffix == ".json"
        else yaml.safe_dump(d, sort_keys=False, width=120, default_flow_style=None)
    )
    write_text(path, text)
    return path


def get_style(style: "str | Path | dict | Style") -> Style:
    """A built-in style by name, a style file (``.yaml`` / ``.yml`` / ``.json``), a record, or a Style unchanged."""
    if isinstance(style, Style):
        return style
    if isinstance(style, dict):
        return Style.from_dict(style)
    if isinstance(style, Path) or str(style).endswith(STYLE_FILE_SUFFIXES):
        return load_style(style)
    if style not in STYLES:
        raise ValueError(
            f"unknown SynthRooms style {style!r}; expected one of {sorted(STYLES)}, a style file "
            f"({'/'.join(STYLE_FILE_SUFFIXES)}) or a Style"
        )
    return STYLES[style]

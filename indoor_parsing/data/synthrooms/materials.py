"""The version-2 material model of SynthRooms as plain data: material groups and per-class slot weights.

Appearance correlates with class with overlap, as in real rooms: floors are wood, tiles or carpet, walls mostly
plain paint, ceilings light plain paint, beds and pillows bedding, screens dark. The pairs the geometry methods
exist for (``GEOMETRY_PAIRS``) are given the very same distribution object for both slots, so a per-pixel colour
classifier can only guess between them (``indoor-parsing synthrooms-hardness`` measures it).

Each class maps to one distribution (both material slots) or a (slot 0, slot 1) pair; a distribution is
{group name: weight}. The target domain uses the same groups and class weights with cooler, more saturated
palettes and finer, stronger textures (as version 1's target style differs from its source).
"""

# Pairs told apart only by shape: each pair shares one material distribution.
GEOMETRY_PAIRS = (
    ("pillow", "bed"),
    ("picture", "wall"),
    ("whiteboard", "wall"),
    ("door", "wall"),
    ("floor mat", "floor"),
    ("cabinet", "table"),
)
# Pairs real rooms tell apart by appearance, reported as a contrast.
APPEARANCE_PAIRS = (("floor", "wall"), ("bed", "floor"), ("ceiling", "wall"), ("television", "wall"))


def _group(palette, jitter, probs, period, contrast) -> dict:
    """A material group record: palette, colour jitter, (plain, stripes, checker, noise) weights, ranges."""
    return {"palette": palette, "colour_jitter": jitter, "texture_probs": probs, "texture_period": period,
            "texture_contrast": contrast}  # fmt: skip


SOURCE_GROUPS = {
    "paint": _group([(0.88, 0.85, 0.78), (0.92, 0.90, 0.86), (0.84, 0.82, 0.76), (0.80, 0.86, 0.78),
                     (0.78, 0.82, 0.90), (0.90, 0.82, 0.72), (0.74, 0.74, 0.72)],
                    0.05, (0.85, 0.0, 0.0, 0.15), (0.3, 1.0), (0.03, 0.10)),
    "wallpaper": _group([(0.78, 0.70, 0.58), (0.66, 0.72, 0.64), (0.72, 0.64, 0.66), (0.84, 0.80, 0.70)],
                        0.06, (0.1, 0.55, 0.0, 0.35), (0.08, 0.35), (0.10, 0.30)),
    "ceiling_paint": _group([(0.94, 0.93, 0.90), (0.90, 0.90, 0.88), (0.96, 0.95, 0.92)],
                            0.03, (0.95, 0.0, 0.0, 0.05), (0.5, 1.0), (0.02, 0.05)),
    "wood": _group([(0.62, 0.45, 0.30), (0.50, 0.34, 0.22), (0.72, 0.56, 0.38), (0.38, 0.26, 0.18),
                    (0.80, 0.66, 0.48)],
                   0.08, (0.1, 0.6, 0.0, 0.3), (0.05, 0.25), (0.15, 0.35)),
    "tiles": _group([(0.56, 0.56, 0.58), (0.70, 0.46, 0.34), (0.36, 0.38, 0.42), (0.62, 0.54, 0.44),
                     (0.48, 0.42, 0.36)],
                    0.05, (0.1, 0.0, 0.8, 0.1), (0.3, 0.6), (0.10, 0.40)),
    "carpet": _group([(0.55, 0.52, 0.48), (0.66, 0.60, 0.50), (0.30, 0.34, 0.46), (0.50, 0.28, 0.26),
                      (0.42, 0.44, 0.40)],
                     0.08, (0.3, 0.0, 0.0, 0.7), (0.05, 0.15), (0.10, 0.25)),
    "bedding": _group([(0.92, 0.92, 0.90), (0.80, 0.84, 0.90), (0.88, 0.80, 0.78), (0.60, 0.66, 0.78),
                       (0.84, 0.82, 0.70)],
                      0.06, (0.5, 0.3, 0.05, 0.15), (0.06, 0.3), (0.10, 0.35)),
    "upholstery": _group([(0.45, 0.45, 0.48), (0.30, 0.36, 0.52), (0.40, 0.50, 0.38), (0.55, 0.40, 0.30),
                          (0.62, 0.28, 0.26), (0.70, 0.66, 0.58)],
                         0.08, (0.6, 0.1, 0.05, 0.25), (0.05, 0.2), (0.05, 0.20)),
    "laminate": _group([(0.90, 0.90, 0.88), (0.60, 0.60, 0.60), (0.78, 0.70, 0.56), (0.30, 0.30, 0.32)],
                       0.04, (0.85, 0.05, 0.0, 0.1), (0.2, 0.6), (0.03, 0.10)),
    "metal": _group([(0.66, 0.68, 0.70), (0.40, 0.42, 0.45), (0.22, 0.22, 0.24), (0.80, 0.80, 0.78)],
                    0.04, (0.8, 0.0, 0.0, 0.2), (0.1, 0.4), (0.03, 0.10)),
    "dark_plastic": _group([(0.10, 0.10, 0.11), (0.18, 0.18, 0.20), (0.30, 0.30, 0.32)],
                           0.05, (0.9, 0.0, 0.0, 0.1), (0.2, 0.5), (0.02, 0.08)),
    "screen": _group([(0.04, 0.05, 0.07), (0.08, 0.09, 0.12), (0.12, 0.14, 0.20)],
                     0.10, (0.8, 0.0, 0.0, 0.2), (0.2, 0.6), (0.05, 0.20)),
    "glass": _group([(0.70, 0.80, 0.88), (0.78, 0.86, 0.92), (0.60, 0.70, 0.80)],
                    0.04, (0.9, 0.0, 0.0, 0.1), (0.3, 1.0), (0.03, 0.10)),
    "books": _group([(0.62, 0.20, 0.18), (0.20, 0.30, 0.58), (0.24, 0.50, 0.30), (0.80, 0.68, 0.30),
                     (0.90, 0.88, 0.82), (0.20, 0.18, 0.16)],
                    0.10, (0.1, 0.8, 0.0, 0.1), (0.03, 0.1), (0.40, 0.80)),
    "lampshade": _group([(0.94, 0.90, 0.80), (0.90, 0.90, 0.88), (0.86, 0.78, 0.62)],
                        0.04, (0.9, 0.0, 0.0, 0.1), (0.1, 0.3), (0.03, 0.10)),
    "cardboard": _group([(0.66, 0.52, 0.36), (0.58, 0.46, 0.32), (0.74, 0.62, 0.46)],
                        0.06, (0.7, 0.1, 0.0, 0.2), (0.1, 0.3), (0.05, 0.15)),
}  # fmt: skip

# One object per shared distribution: a pair in GEOMETRY_PAIRS points at the same dict.
_WALLS = {"paint": 0.8, "wallpaper": 0.2}
_FLOORS = {"wood": 0.45, "tiles": 0.3, "carpet": 0.25}
_SOFT = {"bedding": 0.85, "upholstery": 0.15}
_CASEWORK = {"wood": 0.55, "laminate": 0.3, "metal": 0.15}

CLASS_MATERIALS = {
    "wall": _WALLS, "door": _WALLS, "picture": _WALLS, "whiteboard": _WALLS,
    "floor": _FLOORS, "floor mat": _FLOORS,
    "bed": _SOFT, "pillow": _SOFT,
    "cabinet": _CASEWORK, "table": _CASEWORK,
    "ceiling": {"ceiling_paint": 1.0},
    "desk": {"laminate": 0.5, "wood": 0.4, "metal": 0.1},
    "night stand": {"wood": 0.75, "laminate": 0.25},
    "chair": [{"upholstery": 0.5, "wood": 0.3, "dark_plastic": 0.2}, {"wood": 0.5, "metal": 0.3, "dark_plastic": 0.2}],
    "sofa": {"upholstery": 1.0},
    "bookshelf": [{"wood": 0.7, "laminate": 0.3}, {"books": 1.0}],
    "lamp": [{"metal": 0.7, "dark_plastic": 0.3}, {"lampshade": 1.0}],
    "television": [{"dark_plastic": 0.8, "metal": 0.2}, {"screen": 1.0}],
    "window": [{"laminate": 0.6, "wood": 0.4}, {"glass": 1.0}],
    "box": {"cardboard": 0.7, "dark_plastic": 0.15, "laminate": 0.15},
}  # fmt: skip


def _cool(group: dict) -> dict:
    """The target-domain version of a group: cooler, more saturated colours, finer and stronger textures."""
    tint = (0.80, 0.95, 1.12)
    palette = []
    for c in group["palette"]:
        mean = sum(c) / 3
        palette.append(
            tuple(round(min(1.0, max(0.0, (mean + 1.4 * (x - mean)) * t)), 3) for x, t in zip(c, tint, strict=True))
        )
    lo, hi = group["texture_period"]
    clo, chi = group["texture_contrast"]
    return {**group, "palette": palette, "texture_period": (round(lo * 0.6, 3), round(hi * 0.6, 3)),
            "texture_contrast": (round(min(1.0, clo * 1.5), 3), round(min(1.0, chi * 1.5), 3))}  # fmt: skip


SOURCE = {
    "materials": SOURCE_GROUPS,
    "class_materials": CLASS_MATERIALS,
    "camera_pitch": (-28.0, -8.0),
    "look_up_share": 0.2,
    "look_up_pitch": (5.0, 22.0),
}
TARGET = {
    "materials": {name: _cool(g) for name, g in SOURCE_GROUPS.items()},
    "class_materials": CLASS_MATERIALS,
    "camera_pitch": (-14.0, 4.0),
    "look_up_share": 0.2,
    "look_up_pitch": (5.0, 20.0),
}

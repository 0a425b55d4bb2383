"""Part recipes of the SynthRooms object classes: each object is built from boxes and cylinders with its real shape.

Local frame of a recipe: x across the width (centred), y front-to-back with the back at ``-d/2`` and the front facing
+y, z up from the floor (or from the mounting height of wall items, whose back rests on the wall plane).
"""

from dataclasses import dataclass, field

import numpy as np

from indoor_parsing.data.synthrooms.meshes import NO_BACK, NO_BOTTOM, Part, box, cyl


@dataclass
class Recipe:
    """Parts in the local frame, the (w, d, h) extent and an optional top surface others can stand on."""

    parts: list[Part]
    size: tuple[float, float, float]
    surface: tuple[float, float, float, float, float] | None = None  # x0, x1, y0, y1, z (local)
    zones: dict = field(default_factory=dict)  # named local rectangles, e.g. where pillows go on a bed


def _legs(w: float, d: float, h: float, t: float, inset: float, round_legs: bool) -> list[Part]:
    xs, ys = (-w / 2 + inset + t / 2, w / 2 - inset - t / 2), (-d / 2 + inset + t / 2, d / 2 - inset - t / 2)
    make = (lambda x, y: cyl(x, y, 0, t, h, faces=NO_BOTTOM)) if round_legs else (lambda x, y: box(x, y, 0, t, t, h))
    return [make(x, y) for x in xs for y in ys]


def bed(rng: np.random.Generator) -> Recipe:
    w = rng.uniform(0.9, 1.0) if rng.random() < 0.4 else rng.uniform(1.4, 1.8)
    d, f, m = rng.uniform(1.95, 2.15), rng.uniform(0.22, 0.32), rng.uniform(0.16, 0.24)
    hb, ht = rng.uniform(0.05, 0.08), rng.uniform(0.85, 1.15)
    y0 = -d / 2 + hb
    parts = [
        box(0, y0 + (d - hb) / 2, 0, w, d - hb, f, faces=NO_BOTTOM),  # frame
        box(0, y0 + (d - hb) / 2, f, w - 0.04, d - hb - 0.04, m, slot=1),  # mattress
        box(0, -d / 2 + hb / 2, 0, w + 0.04, hb, ht, faces=NO_BOTTOM),  # headboard
    ]
    if rng.random() < 0.4:
        parts.append(box(0, d / 2 - 0.025, 0, w, 0.05, f + m + 0.12, faces=NO_BOTTOM))  # footboard
    top = f + m
    zone = (-w / 2 + 0.05, w / 2 - 0.05, y0 + 0.04, y0 + 0.6, top)
    return Recipe(parts, (w + 0.04, d, ht), zones={"pillows": zone})


def pillow(rng: np.random.Generator) -> Recipe:
    w, d, h = rng.uniform(0.45, 0.7), rng.uniform(0.32, 0.45), rng.uniform(0.1, 0.16)
    parts = [box(0, 0, 0, w, d, 0.6 * h), box(0, 0, 0.6 * h, w - 0.08, d - 0.08, 0.4 * h)]  # a puffed-up slab
    return Recipe(parts, (w, d, h))


def night_stand(rng: np.random.Generator) -> Recipe:
    w, d, h, leg = rng.uniform(0.4, 0.55), rng.uniform(0.35, 0.45), rng.uniform(0.42, 0.58), rng.uniform(0.04, 0.1)
    parts = [box(0, -0.01, leg, w, d - 0.02, h - leg), *_legs(w, d - 0.02, leg, 0.04, 0.02, rng.random() < 0.5)]
    n = int(rng.integers(1, 3))
    dh = (h - leg - 0.04) / n
    for i in range(n):  # drawer fronts with a handle each
        z = leg + 0.02 + i * dh
        parts += [
            box(0, d / 2 - 0.01, z, w - 0.04, 0.02, dh - 0.02, slot=1),
            box(0, d / 2 + 0.01, z + dh / 2, 0.1, 0.02, 0.02),
        ]
    return Recipe(parts, (w, d + 0.02, h), surface=(-w / 2 + 0.03, w / 2 - 0.03, -d / 2 + 0.03, d / 2 - 0.05, h))


def cabinet(rng: np.random.Generator) -> Recipe:
    w, d = rng.uniform(0.6, 1.6), rng.uniform(0.4, 0.6)
    h = rng.uniform(0.5, 0.95) if rng.random() < 0.6 else rng.uniform(1.4, 2.0)
    plinth = rng.uniform(0.05, 0.1)
    parts = [
        box(0, -0.01, 0, w - 0.04, d - 0.06, plinth, faces=NO_BOTTOM),
        box(0, -0.01, plinth, w, d - 0.02, h - plinth),
    ]
    doors = max(1, round(w / rng.uniform(0.35, 0.6)))
    dw = (w - 0.02) / doors
    for i in range(doors):  # door fronts with vertical handles
        x = -w / 2 + 0.01 + dw * (i + 0.5)
        parts.append(box(x, d / 2 - 0.01, plinth + 0.01, dw - 0.01, 0.02, h - plinth - 0.02, slot=1))
        hx = x + (dw / 2 - 0.05) * (1 if i % 2 == 0 else -1)
        parts.append(box(hx, d / 2 + 0.01, plinth + (h - plinth) * 0.6, 0.02, 0.02, 0.12))
    surface = (-w / 2 + 0.05, w / 2 - 0.05, -d / 2 + 0.05, d / 2 - 0.05, h) if h < 1.2 else None
    return Recipe(parts, (w, d + 0.02, h), surface=surface)


def table(rng: np.random.Generator) -> Recipe:
    h = rng.uniform(0.4, 0.5) if rng.random() < 0.35 else rng.uniform(0.7, 0.77)
    t = rng.uniform(0.03, 0.05)
    if rng.random() < 0.3:  # round table on a pedestal
        dia = rng.uniform(0.7, 1.1)
        parts = [
            cyl(0, 0, h - t, dia, t),
            cyl(0, 0, 0.03, 0.08, h - t - 0.03, slot=1),
            cyl(0, 0, 0, 0.45, 0.03, slot=1, faces=1 << 5),
        ]
        r = dia / 2 * 0.65
        return Recipe(parts, (dia, dia, h), surface=(-r, r, -r, r, h))
    w, d = rng.uniform(0.8, 1.8), rng.uniform(0.6, 1.0)
    parts = [box(0, 0, h - t, w, d, t), *_legs(w, d, h - t, rng.uniform(0.04, 0.07), 0.04, rng.random() < 0.4)]
    for p in parts[1:]:
        p.slot = 1
    return Recipe(parts, (w, d, h), surface=(-w / 2 + 0.05, w / 2 - 0.05, -d / 2 + 0.05, d / 2 - 0.05, h))


def desk(rng: np.random.Generator) -> Recipe:
    w, d, h, t = rng.uniform(1.0, 1.6), rng.uniform(0.55, 0.75), rng.uniform(0.72, 0.76), 0.03
    pw = rng.uniform(0.35, 0.45)
    side = 1 if rng.random() < 0.5 else -1
    px = side * (w / 2 - pw / 2 - 0.01)
    parts = [
        box(0, 0, h - t, w, d, t),  # top
        box(px, -0.01, 0, pw, d - 0.06, h - t, slot=1, faces=NO_BOTTOM),  # drawer pedestal
        box(-side * (w / 2 - 0.03), 0, 0, 0.03, d - 0.04, h - t, slot=1, faces=NO_BOTTOM),  # side panel
        box(0, -d / 2 + 0.04, h - t - 0.3, w - 0.1, 0.02, 0.3, slot=1),  # modesty panel
    ]
    for i in range(3):
        z = 0.05 + i * (h - t - 0.07) / 3
        parts.append(box(px, d / 2 - 0.03, z, pw - 0.04, 0.02, (h - t - 0.07) / 3 - 0.02))
    return Recipe(parts, (w, d, h), surface=(-w / 2 + 0.05, w / 2 - 0.05, -d / 2 + 0.08, d / 2 - 0.1, h))


def chair(rng: np.random.Generator) -> Recipe:
    w, d, sh, st = rng.uniform(0.4, 0.5), rng.uniform(0.4, 0.5), rng.uniform(0.42, 0.48), rng.uniform(0.04, 0.07)
    bh, bt = rng.uniform(0.35, 0.5), rng.uniform(0.03, 0.06)
    parts = [box(0, 0, sh - st, w, d, st), box(0, -d / 2 + bt / 2, sh, w, bt, bh, slot=1)]
    if rng.random() < 0.35:  # office chair: column on a round base
        parts += [cyl(0, 0, 0.05, 0.06, sh - st - 0.05, slot=1), cyl(0, 0, 0, 0.55, 0.05, slot=1, faces=1 << 5)]
        return Recipe(parts, (max(w, 0.55), max(d, 0.55), sh + bh))
    parts += _legs(w, d, sh - st, rng.uniform(0.03, 0.045), 0.01, rng.random() < 0.5)
    if rng.random() < 0.3:  # armrests
        parts += [box(x * (w / 2 - 0.02), 0, sh + 0.18, 0.04, d * 0.8, 0.03, slot=1) for x in (-1, 1)]
        parts += [box(x * (w / 2 - 0.02), d * 0.3, sh, 0.03, 0.03, 0.18, slot=1) for x in (-1, 1)]
    return Recipe(parts, (w, d, sh + bh))


def sofa(rng: np.random.Generator) -> Recipe:
    w, d, bh, aw = rng.uniform(1.4, 2.4), rng.uniform(0.8, 0.95), rng.uniform(0.25, 0.32), rng.uniform(0.14, 0.22)
    ah, backd, backh, ch = (
        rng.uniform(0.55, 0.68),
        rng.uniform(0.15, 0.22),
        rng.uniform(0.4, 0.5),
        rng.uniform(0.1, 0.15),
    )
    iw = w - 2 * aw
    parts = [
        box(0, 0, 0, iw, d, bh, faces=NO_BOTTOM),
        box(0, -d / 2 + backd / 2, bh, iw, backd, backh),
        *[box(x * (w / 2 - aw / 2), 0, 0, aw, d, ah, faces=NO_BOTTOM) for x in (-1, 1)],
    ]
    n = 2 if iw < 1.5 else 3
    cw = iw / n
    for i in range(n):  # seat cushions
        parts.append(box(-iw / 2 + cw * (i + 0.5), backd / 2, bh, cw - 0.02, d - backd - 0.02, ch, slot=1))
    zone = (-iw / 2 + 0.02, iw / 2 - 0.02, -d / 2 + backd, d / 2 - 0.02, bh + ch)  # on the seat cushions
    return Recipe(parts, (w, d, bh + backh), zones={"pillows": zone})


def bookshelf(rng: np.random.Generator) -> Recipe:
    w, d, h, t = rng.uniform(0.6, 1.2), rng.uniform(0.28, 0.4), rng.uniform(1.1, 2.0), rng.uniform(0.02, 0.03)
    parts = [
        *[box(x * (w / 2 - t / 2), 0, 0, t, d, h, faces=NO_BOTTOM) for x in (-1, 1)],
        box(0, 0, h - t, w - 2 * t, d, t),
        box(0, 0, 0, w - 2 * t, d, 0.08, faces=NO_BOTTOM),
        box(0, -d / 2 + 0.005, 0.08, w - 2 * t, 0.01, h - 0.08 - t),  # back panel
    ]
    n = int(rng.integers(3, 6))
    gap = (h - 0.08 - t) / n
    for i in range(n):
        z = 0.08 + i * gap
        if i > 0:
            parts.append(box(0, 0.005, z - t / 2, w - 2 * t, d - 0.01, t))
        x = -w / 2 + t + 0.01
        while rng.random() < 0.85:  # books standing on the shelf: part of the bookshelf instance
            bw, bh = rng.uniform(0.02, 0.06), rng.uniform(0.5, 0.85) * (gap - t)
            if x + bw > w / 2 - t - 0.01:
                break
            parts.append(box(x + bw / 2, 0.02, z + t / 2, bw, d * rng.uniform(0.6, 0.85), bh, slot=1))
            x += bw + (0.0 if rng.random() < 0.8 else rng.uniform(0.05, 0.2))
    return Recipe(parts, (w, d, h))


def lamp(rng: np.random.Generator, floor: bool) -> Recipe:
    if floor:
        base, pole, shade_d, shade_h = rng.uniform(0.25, 0.35), rng.uniform(1.2, 1.5), rng.uniform(0.3, 0.45), 0.28
    else:
        base, pole, shade_d, shade_h = rng.uniform(0.12, 0.18), rng.uniform(0.2, 0.32), rng.uniform(0.2, 0.32), 0.2
    parts = [
        cyl(0, 0, 0, base, 0.03, faces=1 << 5),
        cyl(0, 0, 0.03, 0.025, pole),
        cyl(0, 0, 0.03 + pole, shade_d, shade_h, slot=1),
    ]
    return Recipe(parts, (shade_d, shade_d, 0.03 + pole + shade_h))


def television(rng: np.random.Generator, wall: bool) -> Recipe:
    w, t = rng.uniform(0.7, 1.4), rng.uniform(0.035, 0.06)
    h = w * 9 / 16
    if wall:  # on a bracket; built from the wall plane y = 0 outwards
        parts = [
            box(0, 0.025, h / 2 - 0.1, 0.25, 0.05, 0.2, faces=NO_BACK),
            box(0, 0.05 + t / 2, 0, w, t, h),  # housing
            box(0, 0.05 + t + 0.003, 0.03, w - 0.04, 0.006, h - 0.05, slot=1),  # screen panel
        ]
        return _wall(parts, w, h)
    parts = [
        box(0, 0, 0, w * 0.35, 0.22, 0.02),  # stand
        box(0, 0, 0.02, 0.06, 0.04, 0.1, slot=1),  # neck
        box(0, 0, 0.12, w, t, h),
        box(0, t / 2 + 0.003, 0.15, w - 0.04, 0.006, h - 0.05, slot=1),
    ]
    return Recipe(parts, (w, 0.22, 0.12 + h))


def storage_box(rng: np.random.Generator) -> Recipe:
    w, d, h = rng.uniform(0.2, 0.6), rng.uniform(0.2, 0.5), rng.uniform(0.15, 0.45)
    parts = [box(0, 0, 0, w, d, h, faces=NO_BOTTOM)]
    if rng.random() < 0.5:  # a lid slightly wider than the box
        parts.append(box(0, 0, h, w + 0.02, d + 0.02, 0.03, slot=1))
        h += 0.03
    return Recipe(parts, (w + 0.02, d + 0.02, h))


def floor_mat(rng: np.random.Generator) -> Recipe:
    w, d, t = rng.uniform(0.8, 2.0), rng.uniform(0.6, 1.4), rng.uniform(0.008, 0.02)
    return Recipe([box(0, 0, 0, w, d, t, faces=NO_BOTTOM)], (w, d, t))


# ---- wall items: built from the wall plane y = 0 outwards (then centred by _wall), z from the mounting height ----
def _wall(parts: list[Part], w: float, h: float) -> Recipe:
    d = max(p.center[1] + p.size[1] / 2 for p in parts)
    for p in parts:
        p.center = p.center - np.array([0.0, d / 2, 0.0])
    return Recipe(parts, (w, d, h))


def door(rng: np.random.Generator) -> Recipe:
    w, h, c = rng.uniform(0.8, 0.95), rng.uniform(2.0, 2.1), rng.uniform(0.05, 0.08)
    parts = [
        box(0, 0.02, 0, w, 0.04, h, slot=1, faces=NO_BACK),  # leaf
        *[box(x * (w / 2 + c / 2), 0.03, 0, c, 0.06, h + c, faces=NO_BACK) for x in (-1, 1)],  # casing
        box(0, 0.03, h, w, 0.06, c, faces=NO_BACK),
        box(w / 2 - 0.1, 0.07, rng.uniform(0.95, 1.05), 0.12, 0.06, 0.025),  # handle
    ]
    return _wall(parts, w + 2 * c, h + c)


def window(rng: np.random.Generator) -> Recipe:
    w, h, f, d = rng.uniform(0.8, 1.6), rng.uniform(0.9, 1.4), rng.uniform(0.05, 0.08), 0.06
    sill = rng.uniform(0.12, 0.18)
    parts = [
        box(0, 0.01, f, w - 2 * f, 0.02, h - 2 * f, slot=1, faces=NO_BACK),  # glass
        *[box(x * (w / 2 - f / 2), d / 2, 0, f, d, h, faces=NO_BACK) for x in (-1, 1)],
        *[box(0, d / 2, z, w - 2 * f, d, f, faces=NO_BACK) for z in (0, h - f)],
        box(0, sill / 2, -0.03, w + 0.1, sill, 0.03, faces=NO_BACK),  # sill, below the frame
    ]
    if w > 1.1:
        parts.append(box(0, (d - 0.01) / 2, f, 0.04, d - 0.01, h - 2 * f, faces=NO_BACK))  # mullion
    return _wall(parts, w + 0.1, h)


def picture(rng: np.random.Generator) -> Recipe:
    w, h, f = rng.uniform(0.3, 1.0), rng.uniform(0.25, 0.8), rng.uniform(0.02, 0.06)
    parts = [box(0, 0.0125, f, w - 2 * f, 0.025, h - 2 * f, slot=1, faces=NO_BACK)]  # canvas, behind the frame
    parts += [box(x * (w / 2 - f / 2), 0.02, 0, f, 0.04, h, faces=NO_BACK) for x in (-1, 1)]
    parts += [box(0, 0.02, z, w - 2 * f, 0.04, f, faces=NO_BACK) for z in (0, h - f)]
    return _wall(parts, w, h)


def whiteboard(rng: np.random.Generator) -> Recipe:
    w, h = rng.uniform(1.2, 2.0), rng.uniform(0.9, 1.2)
    parts = [box(0, 0.01, 0, w, 0.02, h, slot=1, faces=NO_BACK)]
    parts += [box(x * (w / 2 + 0.01), 0.015, 0, 0.02, 0.03, h, faces=NO_BACK) for x in (-1, 1)]
    parts += [box(0, 0.015, z, w + 0.04, 0.03, 0.02, faces=NO_BACK) for z in (-0.02, h)]
    parts.append(box(0, 0.07, -0.04, w * 0.6, 0.08, 0.02))  # marker tray
    return _wall(parts, w + 0.04, h + 0.02)

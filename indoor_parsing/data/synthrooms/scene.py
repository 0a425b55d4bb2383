"""SynthRooms scene sampler: a box room with doors, windows and wall items, and furniture placed without overlap.

World frame: z up, the floor is z = 0 and the room spans [0, W] x [0, D] x [0, H]. Objects are placed against walls,
on the floor, or on the top surface of others (pillows on beds, lamps on night stands, TVs on cabinets); a placement
is kept only when the axis-aligned boxes of its parts stay inside the room and overlap no other part (touching is
allowed) nor the keep-out zones in front of doors and around the camera's walking area.
"""

import math
from dataclasses import dataclass

import numpy as np

from indoor_parsing.data.synthrooms import objects as ob
from indoor_parsing.data.synthrooms.meshes import Part, box, part_aabbs
from indoor_parsing.data.synthrooms.style import Style
from indoor_parsing.data.synthrooms.surfaces import Material, sample_material
from indoor_parsing.data.taxonomy import NYU40_ID

_EPS = 1e-4


@dataclass
class SceneObject:
    """One object instance: NYU-40 class id, instance id (1-based within the scene), world parts, 2 materials."""

    label: int
    instance: int
    parts: list[Part]
    materials: tuple[Material, Material]


@dataclass
class Scene:
    """A sampled room: its size (W, D, H), objects and lights (colours already include intensities)."""

    size: tuple[float, float, float]
    objects: list[SceneObject]
    light_positions: np.ndarray  # (L, 3)
    light_colours: np.ndarray  # (L, 3)
    sun_direction: np.ndarray  # (3,) unit, direction the light travels
    sun_colour: np.ndarray  # (3,)
    ambient: np.ndarray  # (3,)
    style: Style


@dataclass
class _Placed:
    obj: SceneObject
    recipe: ob.Recipe
    x: float
    y: float
    z: float
    yaw: float
    wall: int = -1
    s: float = 0.0

    def to_world(self, lx: float, ly: float) -> tuple[float, float]:
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        return self.x + c * lx - s * ly, self.y + s * lx + c * ly


class _Layout:
    """Places recipes into the room, keeping every part's bounding box clear of all others."""

    def __init__(self, size: tuple[float, float, float], rng: np.random.Generator, style: Style):
        self.size, self.rng, self.style = np.asarray(size), rng, style
        self.objects: list[SceneObject] = []
        self.boxes = np.zeros((0, 2, 3))  # (N, 2, 3) occupied (min, max)
        W, D, _ = size
        # (origin, tangent, inward normal, length) of the walls y = 0, x = W, y = D, x = 0
        self.walls = [
            (np.array([0.0, 0.0]), np.array([1.0, 0.0]), np.array([0.0, 1.0]), W),
            (np.array([W, 0.0]), np.array([0.0, 1.0]), np.array([-1.0, 0.0]), D),
            (np.array([W, D]), np.array([-1.0, 0.0]), np.array([0.0, -1.0]), W),
            (np.array([0.0, D]), np.array([0.0, -1.0]), np.array([1.0, 0.0]), D),
        ]

    def new_object(self, name: str, parts: list[Part]) -> SceneObject:
        materials = (sample_material(self.rng, self.style, name, 0), sample_material(self.rng, self.style, name, 1))
        obj = SceneObject(NYU40_ID[name], len(self.objects) + 1, parts, materials)
        self.objects.append(obj)
        return obj

    def block(self, lo: np.ndarray, hi: np.ndarray) -> None:
        """Reserve a box that nothing may overlap (not rendered)."""
        self.boxes = np.concatenate([self.boxes, np.stack([lo, hi])[None]])

    def fits(self, boxes: np.ndarray) -> bool:
        if np.any(boxes[:, 0] < -_EPS) or np.any(boxes[:, 1] > self.size + _EPS):
            return False
        a, b = boxes[:, None], self.boxes[None]  # (P, 1, 2, 3), (1, N, 2, 3)
        overlap = np.all((a[..., 0, :] < b[..., 1, :] - _EPS) & (b[..., 0, :] < a[..., 1, :] - _EPS), -1)
        return not overlap.any()

    def add(self, name: str, recipe: ob.Recipe, x: float, y: float, z: float, yaw: float) -> _Placed | None:
        c, s = math.cos(yaw), math.sin(yaw)
        parts = [
            Part(p.kind, np.array([x + c * p.center[0] - s * p.center[1], y + s * p.center[0] + c * p.center[1],
                                   z + p.center[2]]), p.size, yaw + p.yaw, p.slot, p.faces)
            for p in recipe.parts
        ]  # fmt: skip
        boxes = part_aabbs(parts)
        if not self.fits(boxes):
            return None
        self.boxes = np.concatenate([self.boxes, boxes])
        return _Placed(self.new_object(name, parts), recipe, x, y, z, yaw)

    def on_wall(
        self, name: str, recipe: ob.Recipe, z: float = 0.0, gap: float = 0.0, wall: int | None = None,
        s: float | None = None, yaw_jitter: float = 0.0, tries: int = 30,
    ) -> _Placed | None:  # fmt: skip
        """Back against a wall (``gap`` metres away), front facing into the room."""
        w, d = recipe.size[0], recipe.size[1]
        for _ in range(1 if s is not None else tries):
            k = int(self.rng.integers(4)) if wall is None else wall
            origin, tangent, normal, length = self.walls[k]
            if length < w:
                continue
            at = s if s is not None else self.rng.uniform(w / 2, length - w / 2)
            p = origin + tangent * at + normal * (d / 2 + gap)
            yaw = math.atan2(-normal[0], normal[1]) + yaw_jitter * self.rng.uniform(-1, 1)
            placed = self.add(name, recipe, p[0], p[1], z, yaw)
            if placed is not None:
                placed.wall, placed.s = k, at
                return placed
        return None

    def free(self, name: str, recipe: ob.Recipe, yaw_jitter: float = 0.0, tries: int = 30) -> _Placed | None:
        """Anywhere on the floor, axis-aligned up to ``yaw_jitter`` radians."""
        for _ in range(tries):
            x, y = self.rng.uniform(0.1, self.size[0] - 0.1), self.rng.uniform(0.1, self.size[1] - 0.1)
            yaw = math.pi / 2 * int(self.rng.integers(4)) + yaw_jitter * self.rng.uniform(-1, 1)
            placed = self.add(name, recipe, x, y, 0.0, yaw)
            if placed is not None:
                return placed
        return None

    def on(self, name: str, recipe: ob.Recipe, parent: _Placed, rect=None, lx=None, yaw_jitter=0.3, tries=15):
        """On the top surface of ``parent`` (or a named local rectangle ``rect`` of it)."""
        rect = rect if rect is not None else parent.recipe.surface
        if rect is None:
            return None
        x0, x1, y0, y1, z = rect
        w, d = recipe.size[0] / 2, recipe.size[1] / 2
        if x1 - x0 < 2 * w or y1 - y0 < 2 * d:
            return None
        for _ in range(tries):
            x = lx if lx is not None else self.rng.uniform(x0 + w, x1 - w)
            wx, wy = parent.to_world(x, self.rng.uniform(y0 + d, y1 - d))
            yaw = parent.yaw + yaw_jitter * self.rng.uniform(-1, 1)
            placed = self.add(name, recipe, wx, wy, parent.z + z, yaw)
            if placed is not None:
                return placed
        return None


def _shell(lay: _Layout) -> None:
    """Floor, ceiling and walls, each a single inward-facing face of a slab just outside the room."""
    W, D, H = lay.size
    lay.new_object("floor", [box(W / 2, D / 2, -0.1, W, D, 0.1, faces=1 << 5)])
    lay.new_object("ceiling", [box(W / 2, D / 2, H, W, D, 0.1, faces=1 << 4)])
    lay.new_object("wall", [
        box(W / 2, -0.05, 0, W, 0.1, H, faces=1 << 3), box(W + 0.05, D / 2, 0, 0.1, D, H, faces=1 << 0),
        box(W / 2, D + 0.05, 0, W, 0.1, H, faces=1 << 2), box(-0.05, D / 2, 0, 0.1, D, H, faces=1 << 1),
    ])  # fmt: skip


def _wall_items(lay: _Layout, rng: np.random.Generator) -> None:
    H = lay.size[2]
    door = lay.on_wall("door", ob.door(rng))
    if door is not None:  # keep the way in free
        _, tangent, normal, _ = lay.walls[door.wall]
        c = np.array([door.x, door.y]) + normal * 0.5
        ext = np.abs(tangent) * 0.55 + np.abs(normal) * 0.45
        lay.block(np.r_[c - ext, 0.05], np.r_[c + ext, 2.2])
    for _ in range(int(rng.integers(1, 3))):
        lay.on_wall("window", ob.window(rng), z=rng.uniform(0.8, 1.0))
    if rng.random() < 0.45:
        lay.on_wall("whiteboard", ob.whiteboard(rng), z=rng.uniform(0.85, 1.0))
    for _ in range(int(rng.choice(4, p=[0.15, 0.35, 0.3, 0.2]))):
        r = ob.picture(rng)
        lay.on_wall("picture", r, z=min(rng.uniform(1.3, 1.7) - r.size[2] / 2, H - r.size[2] - 0.1))


def _furniture(lay: _Layout, rng: np.random.Generator) -> None:
    tops = []  # placed objects with a usable top surface
    if rng.random() < 0.55 and (bed := lay.on_wall("bed", ob.bed(rng))) is not None:
        x0, x1, y0, y1, z = bed.recipe.zones["pillows"]
        n = 1 if x1 - x0 < 1.0 else int(rng.integers(1, 4))
        for i in range(n):
            r = ob.pillow(rng)
            cx = x0 + (x1 - x0) * (i + 0.5) / n
            lay.on("pillow", r, bed, rect=(cx - r.size[0] / 2 - 0.04, cx + r.size[0] / 2 + 0.04, y0, y1, z))
        for side in (-1, 1):
            if rng.random() < 0.75:
                r = ob.night_stand(rng)
                s = bed.s + side * (bed.recipe.size[0] / 2 + r.size[0] / 2 + rng.uniform(0.03, 0.12))
                if (ns := lay.on_wall("night stand", r, wall=bed.wall, s=s)) is not None:
                    tops.append(ns)
                    if rng.random() < 0.6:
                        lay.on("lamp", ob.lamp(rng, floor=False), ns)
    if rng.random() < 0.5 and (sofa := lay.on_wall("sofa", ob.sofa(rng), gap=rng.uniform(0, 0.1))) is not None:
        if rng.random() < 0.4:
            lay.on("pillow", ob.pillow(rng), sofa, rect=sofa.recipe.zones["pillows"])
    for p in (0.65, 0.3):
        if rng.random() < p:
            lay.on_wall("bookshelf", ob.bookshelf(rng), gap=rng.uniform(0, 0.03))
    for p in (0.8, 0.35):
        if rng.random() < p and (cab := lay.on_wall("cabinet", ob.cabinet(rng), gap=rng.uniform(0, 0.05))):
            tops.append(cab)
    if rng.random() < 0.6 and (desk := lay.on_wall("desk", ob.desk(rng), gap=rng.uniform(0, 0.05))) is not None:
        tops.append(desk)
        _chairs_at(lay, rng, desk, sides=[1] if rng.random() < 0.85 else [])
        if rng.random() < 0.35:
            lay.on("lamp", ob.lamp(rng, floor=False), desk)
    if rng.random() < 0.75 and (table := lay.free("table", ob.table(rng), yaw_jitter=0.15)) is not None:
        tops.append(table)
        _chairs_at(lay, rng, table, sides=[s for s in range(4) if rng.random() < 0.5])
    if rng.random() < 0.25:
        lay.free("chair", ob.chair(rng), yaw_jitter=math.pi)
    if rng.random() < 0.8:
        tv = None
        for parent in rng.permutation(len(tops)).tolist() if rng.random() < 0.65 else []:
            if (tv := lay.on("television", ob.television(rng, wall=False), tops[parent], yaw_jitter=0.1)) is not None:
                break
        if tv is None:
            r = ob.television(rng, wall=True)
            lay.on_wall("television", r, z=rng.uniform(1.2, 1.6) - r.size[2] / 2)
    if rng.random() < 0.4:
        lay.on_wall("lamp", ob.lamp(rng, floor=True), gap=rng.uniform(0.05, 0.3))
    for _ in range(int(rng.integers(0, 5))):
        r = ob.storage_box(rng)
        if tops and rng.random() < 0.4:
            lay.on("box", r, tops[int(rng.integers(len(tops)))])
        else:
            lay.on_wall("box", r, gap=rng.uniform(0, 0.4), yaw_jitter=0.4, tries=10)
    if rng.random() < 0.65:
        lay.free("floor mat", ob.floor_mat(rng), yaw_jitter=0.2)


def _chairs_at(lay: _Layout, rng: np.random.Generator, parent: _Placed, sides: list[int]) -> None:
    """Chairs facing ``parent`` from its sides (0: -x, 1: +y front, 2: +x, 3: -y back), pushed in when they fit."""
    w, d, _ = parent.recipe.size
    for side in sides:
        r = ob.chair(rng)
        half = (d if side % 2 else w) / 2
        out = np.array([[-1, 0], [0, 1], [1, 0], [0, -1]][side], float)  # local direction away from the parent
        yaw = parent.yaw + math.atan2(out[0], -out[1]) + rng.uniform(-0.25, 0.25)  # chair front faces back in
        along = rng.uniform(-0.25, 0.25) * (w if side % 2 else d)
        for tuck in (0.2, 0.1, 0.0, -0.15, -0.3):
            lx, ly = out * (half + r.size[1] / 2 - tuck) + np.array([out[1], out[0]]) * along
            if lay.add("chair", r, *parent.to_world(lx, ly), 0.0, yaw) is not None:
                break


def sample_scene(rng: np.random.Generator, style: Style) -> Scene:
    """Sample one furnished room; the same generator state gives the same scene."""
    W, D, H = rng.uniform(3.6, 6.0), rng.uniform(3.6, 6.5), rng.uniform(2.5, 3.0)
    lay = _Layout((W, D, H), rng, style)
    _shell(lay)
    # A free square for the camera to walk in (floor mats may still lie there).
    cx, cy = rng.uniform(1.1, W - 1.1), rng.uniform(1.1, D - 1.1)
    lay.block(np.array([cx - 0.6, cy - 0.6, 0.05]), np.array([cx + 0.6, cy + 0.6, H]))
    _wall_items(lay, rng)
    _furniture(lay, rng)
    tint = np.asarray(style.light_colour)
    n = int(rng.integers(style.point_lights[0], style.point_lights[1] + 1))
    positions = np.stack([rng.uniform(0.4, W - 0.4, n), rng.uniform(0.4, D - 0.4, n), np.full(n, H - 0.25)], 1)
    colours = tint[None] * rng.uniform(*style.point_intensity, (n, 1))
    a = rng.uniform(0, 2 * np.pi)
    sun = np.array([math.cos(a), math.sin(a), -rng.uniform(0.6, 1.5)])
    return Scene(
        (W, D, H), lay.objects, positions, colours, sun / np.linalg.norm(sun),
        tint * rng.uniform(*style.sun_intensity), tint * rng.uniform(*style.ambient), style,
    )  # fmt: skip

"""Triangle-mesh primitives (boxes, cylinders), their assembly into one scene mesh, and area-uniform surface sampling.

Every SynthRooms object is a list of :class:`Part` s; a part is a box or a z-axis cylinder with a yaw. Triangles are
wound counter-clockwise seen from outside, so the cross-product normal points out of the solid.
"""

from dataclasses import dataclass

import numpy as np

CYLINDER_SEGMENTS = 12

# Box faces as bit positions of ``Part.faces``: -x, +x, -y, +y, -z, +z (local axes).
ALL_FACES = 0b111111
NO_BOTTOM = ALL_FACES & ~(1 << 4)
NO_BACK = ALL_FACES & ~(1 << 2)
ONLY_TOP = 1 << 5


@dataclass
class Part:
    """One solid of an object.

    Args:
        kind: ``"box"`` or ``"cyl"`` (axis along z).
        center: (3,) centre, in the object's local frame until placed, then in the world.
        size: (3,) full extents (a cylinder: diameter, diameter, height) in the part's own axes.
        yaw: rotation about z, radians.
        slot: material slot of the object (0 or 1), so e.g. a mattress can differ from its bed frame.
        faces: box faces kept (bit mask, see ``ALL_FACES``); hidden faces on the floor or a wall are dropped so that
            no surface points are wasted on them. Cylinders use bit 4 (bottom cap) and bit 5 (top cap).
    """

    kind: str
    center: np.ndarray
    size: np.ndarray
    yaw: float = 0.0
    slot: int = 0
    faces: int = ALL_FACES


@dataclass
class Mesh:
    """The whole scene as one triangle soup with per-triangle object index and material slot."""

    vertices: np.ndarray  # (V, 3) float32, world
    triangles: np.ndarray  # (T, 3) int32
    tri_object: np.ndarray  # (T,) int32, index into Scene.objects
    tri_slot: np.ndarray  # (T,) int32, material slot
    tri_part: np.ndarray  # (T,) int32, index into the flattened part list (objects in order, their parts in order)


def box(cx: float, cy: float, z0: float, w: float, d: float, h: float, slot: int = 0, faces: int = ALL_FACES) -> Part:
    """A box standing on height ``z0`` (local frame: x width, y depth with the back at -y, z up)."""
    return Part("box", np.array([cx, cy, z0 + h / 2]), np.array([w, d, h]), 0.0, slot, faces)


def cyl(cx: float, cy: float, z0: float, diameter: float, h: float, slot: int = 0, faces: int = ALL_FACES) -> Part:
    """A z-axis cylinder standing on height ``z0``."""
    return Part("cyl", np.array([cx, cy, z0 + h / 2]), np.array([diameter, diameter, h]), 0.0, slot, faces)


def _orient(verts: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """Flip triangles whose normal points towards the centre (valid for convex solids centred at the origin)."""
    a, b, c = verts[tris[:, 0]], verts[tris[:, 1]], verts[tris[:, 2]]
    inward = np.einsum("ij,ij->i", np.cross(b - a, c - a), (a + b + c) / 3) < 0
    tris = tris.copy()
    tris[inward] = tris[inward][:, ::-1]
    return tris


def _box_template() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    verts = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])  # index 4x+2y+z
    quads, face_bit = [], []
    for axis in range(3):
        for side in (0, 1):
            idx = [i for i in range(8) if (i >> (2 - axis)) & 1 == side]  # the 4 corners on this face
            a, b, c, d = idx  # bit order makes (a, b, d, c) a cycle around the face
            quads += [[a, b, d], [a, d, c]]
            face_bit += [2 * axis + side] * 2
    return verts, _orient(verts, np.array(quads)), np.array(face_bit)


def _cylinder_template(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ang = 2 * np.pi * np.arange(n) / n
    ring = np.stack([0.5 * np.cos(ang), 0.5 * np.sin(ang)], 1)
    verts = np.concatenate([np.c_[ring, np.full(n, -0.5)], np.c_[ring, np.full(n, 0.5)], [[0, 0, -0.5], [0, 0, 0.5]]])
    i, j = np.arange(n), (np.arange(n) + 1) % n
    side = np.concatenate([np.stack([i, j, n + j], 1), np.stack([i, n + j, n + i], 1)])
    bottom = np.stack([np.full(n, 2 * n), j, i], 1)
    top = np.stack([np.full(n, 2 * n + 1), n + i, n + j], 1)
    tris = np.concatenate([side, bottom, top])
    bit = np.concatenate([np.full(2 * n, -1), np.full(n, 4), np.full(n, 5)])  # -1: side, always kept
    return verts, _orient(verts, tris), bit


_TEMPLATES = {"box": _box_template(), "cyl": _cylinder_template(CYLINDER_SEGMENTS)}


def part_aabbs(parts: list[Part]) -> np.ndarray:
    """(P, 2, 3) world-axis bounding boxes (min, max) of parts, from their centre, size and yaw."""
    if not parts:
        return np.zeros((0, 2, 3))
    center = np.array([p.center for p in parts])  # (P, 3)
    half = np.array([p.size for p in parts]) / 2  # (P, 3)
    yaw = np.array([0.0 if p.kind == "cyl" else p.yaw for p in parts])
    c, s = np.abs(np.cos(yaw)), np.abs(np.sin(yaw))
    ext = np.stack([c * half[:, 0] + s * half[:, 1], s * half[:, 0] + c * half[:, 1], half[:, 2]], 1)
    return np.stack([center - ext, center + ext], 1)


def assemble(parts_per_object: list[list[Part]]) -> Mesh:
    """Triangulate every part of every object into one mesh (vectorised per primitive kind)."""
    vertices, triangles, tri_object, tri_slot, tri_part = [], [], [], [], []
    offset = 0
    flat = [(o, p) for o, ps in enumerate(parts_per_object) for p in ps]
    for kind, (tv, tt, bit) in _TEMPLATES.items():
        index = np.array([i for i, (_, p) in enumerate(flat) if p.kind == kind], np.int64)
        parts = [flat[i] for i in index]
        if not parts:
            continue
        size = np.array([p.size for _, p in parts])[:, None]  # (P, 1, 3)
        yaw = np.array([p.yaw for _, p in parts])
        c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
        v = tv[None] * size  # (P, n, 3)
        v = np.stack([c * v[..., 0] - s * v[..., 1], s * v[..., 0] + c * v[..., 1], v[..., 2]], -1)
        v = v + np.array([p.center for _, p in parts])[:, None]
        faces = np.array([p.faces for _, p in parts])[:, None]  # (P, 1)
        keep = (bit[None] < 0) | ((faces >> np.maximum(bit, 0)[None]) & 1).astype(bool)  # (P, t)
        t = tt[None] + (offset + len(tv) * np.arange(len(parts)))[:, None, None]  # (P, t, 3)
        vertices.append(v.reshape(-1, 3))
        triangles.append(t[keep])
        tri_object.append(np.repeat(np.array([o for o, _ in parts])[:, None], len(tt), 1)[keep])
        tri_slot.append(np.repeat(np.array([p.slot for _, p in parts])[:, None], len(tt), 1)[keep])
        tri_part.append(np.repeat(index[:, None], len(tt), 1)[keep])
        offset += len(parts) * len(tv)
    return Mesh(
        np.concatenate(vertices).astype(np.float32),
        np.concatenate(triangles).astype(np.int32),
        np.concatenate(tri_object).astype(np.int32),
        np.concatenate(tri_slot).astype(np.int32),
        np.concatenate(tri_part).astype(np.int32),
    )


def triangle_normals(mesh: Mesh) -> tuple[np.ndarray, np.ndarray]:
    """(T, 3) unit outward normals and (T,) areas."""
    v = mesh.vertices.astype(np.float64)[mesh.triangles]  # (T, 3, 3)
    cross = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    norm = np.linalg.norm(cross, axis=1)
    return cross / np.maximum(norm, 1e-12)[:, None], norm / 2


def sample_surface(mesh: Mesh, num_points: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points uniform over the surface area (triangle chosen by area, then uniform barycentric coordinates).

    Returns:
        (N, 3) float64 points, (N, 3) outward normals and (N,) triangle indices.
    """
    normals, area = triangle_normals(mesh)
    tri = np.searchsorted(np.cumsum(area) / area.sum(), rng.random(num_points), side="right")
    tri = np.minimum(tri, len(area) - 1)
    r1, r2 = np.sqrt(rng.random(num_points)), rng.random(num_points)
    v = mesh.vertices.astype(np.float64)[mesh.triangles]  # (T, 3, 3)
    a, e1, e2 = v[:, 0], v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]
    # Uniform point in a triangle: a + sqrt(r1) (1 - r2) (b - a) + sqrt(r1) r2 (c - a).
    points = a[tri] + (r1 * (1 - r2))[:, None] * e1[tri] + (r1 * r2)[:, None] * e2[tri]
    return points, normals[tri], tri


def inside_other_parts(
    points: np.ndarray, point_part: np.ndarray, parts: list[Part], occluders: list[int], eps: float = 2e-3
) -> np.ndarray:
    """(N,) True where a surface point lies inside or on another part (e.g. floor under a mat, wall behind a door).

    Such points are hidden from every view; dropping them keeps a point cloud free of surfaces that would show
    through the sparse points of the visible surface in front of them. Only the parts listed in ``occluders`` are
    tested, each against the points of the floor-grid cells under its bounding box.
    """
    cell = 0.25
    lo = points[:, :2].min(0)
    ij = ((points[:, :2] - lo) / cell).astype(np.int64)  # (N, 2)
    nx, ny = ij.max(0) + 1
    order = np.argsort(ij[:, 0] * ny + ij[:, 1], kind="stable")
    starts = np.searchsorted((ij[:, 0] * ny + ij[:, 1])[order], np.arange(nx * ny + 1))  # CSR over cells
    boxes = part_aabbs(parts)
    hidden = np.zeros(len(points), bool)
    for j in occluders:
        p = parts[j]
        (i0, j0), (i1, j1) = [np.clip(((boxes[j, k, :2] + s * eps - lo) / cell).astype(np.int64), 0, [nx - 1, ny - 1])
                              for k, s in ((0, -1), (1, 1))]  # fmt: skip
        idx = np.concatenate([order[starts[i * ny + j0] : starts[i * ny + j1 + 1]] for i in range(i0, i1 + 1)])
        q = points[idx] - p.center  # (n, 3)
        c, s = np.cos(p.yaw), np.sin(p.yaw)
        lx, ly = c * q[:, 0] + s * q[:, 1], -s * q[:, 0] + c * q[:, 1]  # into the part's axes
        half = p.size / 2 + eps
        if p.kind == "box":
            inside = (np.abs(lx) <= half[0]) & (np.abs(ly) <= half[1])
        else:
            inside = lx**2 + ly**2 <= half[0] ** 2
        inside &= (np.abs(q[:, 2]) <= half[2]) & (point_part[idx] != j)
        hidden[idx[inside]] = True
    return hidden

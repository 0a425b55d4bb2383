"""Smooth hand-held camera paths through the free floor space of a SynthRooms scene.

A path is a Catmull-Rom spline through a few control points drawn where the floor is at least ``CLEARANCE`` metres
from every wall and every object standing on the floor; yaw (facing roughly into the room), pitch, roll and height
are splined the same way. Poses are camera-to-world with OpenCV camera axes (x right, y down, z forward).
"""

import math

import numpy as np

from indoor_parsing.data.synthrooms.meshes import part_aabbs
from indoor_parsing.data.synthrooms.scene import Scene
from indoor_parsing.data.taxonomy import NYU40_ID

CLEARANCE = 0.35  # metres from the camera centre to any wall or object footprint, at control points
MIN_CLEARANCE = 0.25  # ... anywhere along the path
CELL = 0.05


def clearance_map(scene: Scene) -> np.ndarray:
    """(nx, ny) distance in metres from each floor cell centre to the nearest wall or floor-standing footprint."""
    W, D, _ = scene.size
    cx = (np.arange(int(math.ceil(W / CELL))) + 0.5) * CELL
    cy = (np.arange(int(math.ceil(D / CELL))) + 0.5) * CELL
    dist = np.minimum(np.minimum(cx, W - cx)[:, None], np.minimum(cy, D - cy)[None])  # to the walls
    skip = {NYU40_ID[n] for n in ("floor", "ceiling", "wall")}
    boxes = part_aabbs([p for o in scene.objects if o.label not in skip for p in o.parts])
    boxes = boxes[boxes[:, 1, 2] > 0.05]  # floor mats can be walked over
    for chunk in np.array_split(boxes, max(1, len(boxes) // 64)):  # bounded (nx, ny, 64) temporaries
        dx = np.maximum(np.maximum(chunk[:, 0, 0] - cx[:, None], cx[:, None] - chunk[:, 1, 0]), 0)  # (nx, B)
        dy = np.maximum(np.maximum(chunk[:, 0, 1] - cy[:, None], cy[:, None] - chunk[:, 1, 1]), 0)  # (ny, B)
        dist = np.minimum(dist, np.sqrt(dx[:, None] ** 2 + dy[None] ** 2).min(-1))
    return dist


def catmull_rom(points: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Uniform Catmull-Rom spline through ``points`` (K, C) at parameters ``t`` in [0, K-1]; ends are clamped."""
    K = len(points)
    p = np.concatenate([points[:1], points, points[-1:]])  # (K + 2, C)
    i = np.clip(np.floor(t).astype(int), 0, max(K - 2, 0))
    f = (t - i)[:, None]
    p0, p1, p2, p3 = p[i], p[np.minimum(i + 1, K)], p[np.minimum(i + 2, K + 1)], p[np.minimum(i + 3, K + 1)]
    return 0.5 * (2 * p1 + (p2 - p0) * f + (2 * p0 - 5 * p1 + 4 * p2 - p3) * f**2 + (3 * p1 - p0 - 3 * p2 + p3) * f**3)


def look_pose(position: np.ndarray, yaw: float, pitch: float, roll: float) -> np.ndarray:
    """(4, 4) camera-to-world looking along (yaw, pitch) in a z-up world, rolled about the optical axis."""
    f = np.array([math.cos(pitch) * math.cos(yaw), math.cos(pitch) * math.sin(yaw), math.sin(pitch)])
    r = np.cross(f, [0.0, 0.0, 1.0])
    r /= np.linalg.norm(r)
    d = np.cross(f, r)  # camera y (down)
    r, d = math.cos(roll) * r + math.sin(roll) * d, -math.sin(roll) * r + math.cos(roll) * d
    T = np.eye(4)
    T[:3, :3] = np.stack([r, d, f], 1)
    T[:3, 3] = position
    return T


def sample_trajectory(scene: Scene, num_frames: int, rng: np.random.Generator, tries: int = 60) -> np.ndarray:
    """(num_frames, 4, 4) camera-to-world poses along a smooth path that stays clear of walls and furniture."""
    style, (W, D, _) = scene.style, scene.size
    dist = clearance_map(scene)
    ok = np.argwhere(dist >= CLEARANCE)
    K = 3 + num_frames // 25  # longer sequences walk further
    t = np.linspace(0, K - 1, num_frames) if num_frames > 1 else np.zeros(1)
    xy = None
    for _ in range(tries if len(ok) else 0):
        ctrl = [ok[rng.integers(len(ok))]]
        for _ in range(K - 1):  # each next control point within 1.5 m of the previous one
            near = ok[np.linalg.norm(ok - ctrl[-1], axis=1) * CELL < 1.5]
            ctrl.append(near[rng.integers(len(near))])
        ctrl = (np.array(ctrl) + 0.5) * CELL
        dense = catmull_rom(ctrl, np.linspace(0, K - 1, 20 * K))
        cells = np.clip((dense / CELL).astype(int), 0, np.array(dist.shape) - 1)
        if dist[cells[:, 0], cells[:, 1]].min() >= MIN_CLEARANCE:
            xy = catmull_rom(ctrl, t)
            break
    if xy is None:  # cluttered room: turn on the spot at the most open point
        best = np.array(np.unravel_index(dist.argmax(), dist.shape))
        ctrl = np.repeat(((best + 0.5) * CELL)[None], K, 0)
        xy = catmull_rom(ctrl, t)
    # Face roughly into the room: towards its centre, give or take 60 degrees; unwrap so the spline turns the short way.
    to_centre = np.array([W / 2, D / 2]) - ctrl
    yaw = np.arctan2(to_centre[:, 1], to_centre[:, 0]) + rng.uniform(-1.05, 1.05, K)
    yaw = np.unwrap(yaw)
    h0 = rng.uniform(*style.camera_height)
    height = h0 + rng.uniform(-0.05, 0.05, K)
    pitch = np.radians(rng.uniform(*style.camera_pitch, K))
    roll = np.radians(rng.uniform(-3.0, 3.0, K))
    if style.look_up_share > 0:  # version 2: some control points look up, so the ceiling is seen
        up = rng.random(K) < style.look_up_share
        pitch = np.where(up, np.radians(rng.uniform(*style.look_up_pitch, K)), pitch)
    angles = catmull_rom(np.stack([yaw, pitch, roll, height], 1), t)
    return np.stack([look_pose(np.r_[p, a[3]], a[0], a[1], a[2]) for p, a in zip(xy, angles, strict=True)])

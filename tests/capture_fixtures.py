"""Capture fixtures in each official layout: real HoloLens frames, and a ray-cast box room for any camera.

Frames are dicts: ``name``, ``rgb`` (H, W, 3) uint8, ``depth_m`` (H, W) float32 metres (0 = missing), ``pose``
(4, 4) camera-to-world, ``K`` (3, 3).
"""

from pathlib import Path

import numpy as np
from PIL import Image

from tests.fixtures_formats import write_sens

ROOM = np.array([[-2.0, -1.5, -2.0], [2.0, 1.5, 3.0]])  # an axis-aligned room, world metres


def real_frames(realdata: Path) -> list[dict]:
    """The six HoloLens frames (540x360) of shared/realdata/sequences, with their poses and K."""
    seq = realdata / "sequences" / "hololens_dvmvs_000"
    K = np.loadtxt(seq / "K.txt")
    frames = []
    for line in (seq / "poses_selected.txt").read_text().splitlines():
        name, *values = line.split()
        stem = Path(name).stem
        frames.append({
            "name": stem, "rgb": np.asarray(Image.open(seq / "images" / name).convert("RGB")),
            "depth_m": np.asarray(Image.open(seq / "depth" / name)).astype(np.float32) / 1000.0,
            "pose": np.asarray(values, np.float64).reshape(4, 4), "K": K,
        })  # fmt: skip
    return frames


def look_pose(yaw_deg: float, position=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Camera-to-world of a camera at ``position`` turned by ``yaw_deg`` about the vertical (y) axis."""
    a = np.radians(yaw_deg)
    T = np.eye(4)
    T[:3, :3] = [[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]
    T[:3, 3] = position
    return T


def render_room(K: np.ndarray, size: tuple[int, int], pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rgb uint8, z-depth float32 metres) of the inside of ROOM seen by a camera (K, (W, H), camera-to-world)."""
    W, H = size
    u, v = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)  # z = 1 in the camera
    d = rays @ pose[:3, :3].T  # world directions
    o = pose[:3, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.stack([np.where(d[..., i] > 0, (ROOM[1, i] - o[i]) / d[..., i], (ROOM[0, i] - o[i]) / d[..., i])
                      for i in range(3)], -1)  # fmt: skip
    t = np.where(np.isfinite(t) & (t > 0), t, np.inf).min(-1)  # distance along a z=1 ray is the z-depth
    p = o + d * t[..., None]
    checker = (np.floor(p * 4).astype(int).sum(-1) % 2).astype(np.float64)
    shade = 0.5 + 0.5 * np.abs(np.sin(p * 3)).mean(-1)
    rgb = np.stack([200 * checker * shade + 30, 120 * shade + 40 * checker, 255 * shade * (1 - checker) + 20], -1)
    return np.clip(rgb, 0, 255).astype(np.uint8), t.astype(np.float32)


def room_frames(K: np.ndarray, size: tuple[int, int], n: int = 5, step_deg: float = 6.0) -> list[dict]:
    """``n`` views of the room from a camera off the world origin that turns and moves a little per frame."""
    frames = []
    for i in range(n):
        pose = look_pose(step_deg * i - 10, (0.6 + 0.05 * i, 0.2, -0.8))
        rgb, depth = render_room(K, size, pose)
        frames.append({"name": f"{i:06d}", "rgb": rgb, "depth_m": depth, "pose": pose, "K": K})
    return frames


def _png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _txt(path: Path, m: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(" ".join(f"{v:.9f}" for v in row) + "\n" for row in np.atleast_2d(m)))


def mm(depth_m: np.ndarray) -> np.ndarray:
    return np.round(depth_m * 1000).astype(np.uint16)


def write_scannet_export(root: Path, frames: list[dict], padded: bool) -> Path:
    """SensReader's export: color/<n>.jpg, depth/<n>.png (mm), pose/<n>.txt, intrinsic/*.txt (4x4)."""
    for n, f in enumerate(frames):
        name = f"{n:06d}" if padded else str(n)
        (root / "color").mkdir(parents=True, exist_ok=True)
        Image.fromarray(f["rgb"]).save(root / "color" / f"{name}.jpg", quality=95)
        _png(root / "depth" / f"{name}.png", mm(f["depth_m"]))
        _txt(root / "pose" / f"{name}.txt", f["pose"])
    K4 = np.eye(4)
    K4[:3, :3] = frames[0]["K"]
    for name in ("intrinsic_color", "intrinsic_depth"):
        _txt(root / "intrinsic" / f"{name}.txt", K4)
    return root


def write_sens_file(path: Path, frames: list[dict]) -> Path:
    records = [{"rgb": f["rgb"], "depth_mm": mm(f["depth_m"]), "pose": f["pose"]} for f in frames]
    return write_sens(path, records, frames[0]["K"], frames[0]["K"])


def write_7scenes(seq: Path, frames: list[dict], depth_frames: list[dict] | None = None) -> Path:
    """seq-NN/frame-NNNNNN.{color.png, depth.png (mm, 65535 = none), pose.txt}; depth from ``depth_frames``."""
    for n, (f, fd) in enumerate(zip(frames, depth_frames or frames, strict=True)):
        stem = seq / f"frame-{n:06d}"
        _png(stem.with_name(stem.name + ".color.png"), f["rgb"])
        raw = mm(fd["depth_m"])
        raw[fd["depth_m"] <= 0] = 65535
        _png(stem.with_name(stem.name + ".depth.png"), raw)
        _txt(stem.with_name(stem.name + ".pose.txt"), f["pose"])
    return seq


def quaternion_xyzw(R: np.ndarray) -> np.ndarray:
    """Unit quaternion (x, y, z, w) of a rotation matrix (w > 0 branch; the fixtures' rotations are small)."""
    w = np.sqrt(max(1e-12, 1 + np.trace(R))) / 2
    return np.array([(R[2, 1] - R[1, 2]) / (4 * w), (R[0, 2] - R[2, 0]) / (4 * w), (R[1, 0] - R[0, 1]) / (4 * w), w])


def write_tum(seq: Path, frames: list[dict], t0: float = 1305031102.0, dt: float = 1 / 30) -> Path:
    """rgb.txt, depth.txt (depth stamps 7 ms later), groundtruth.txt (100 Hz, quaternions); depth = metres * 5000."""
    rgb_lines, depth_lines, gt_lines = ["# color images"], ["# depth maps"], ["# timestamp tx ty tz qx qy qz qw"]
    for n, f in enumerate(frames):
        t = t0 + n * dt
        _png(seq / "rgb" / f"{t:.6f}.png", f["rgb"])
        _png(seq / "depth" / f"{t + 0.007:.6f}.png", np.round(f["depth_m"] * 5000).astype(np.uint16))
        rgb_lines.append(f"{t:.6f} rgb/{t:.6f}.png")
        depth_lines.append(f"{t + 0.007:.6f} depth/{t + 0.007:.6f}.png")
        q = quaternion_xyzw(f["pose"][:3, :3])
        for off in (-0.004, 0.003, 0.013):  # only the 3 ms sample is the frame's pose; the others are 10 cm off
            p = f["pose"][:3, 3] + (0 if off == 0.003 else 0.1)
            gt_lines.append(f"{t + off:.4f} " + " ".join(f"{v:.7f}" for v in (*p, *q)))
    for name, lines in (("rgb.txt", rgb_lines), ("depth.txt", depth_lines), ("groundtruth.txt", gt_lines)):
        (seq / name).write_text("\n".join(lines) + "\n")
    return seq

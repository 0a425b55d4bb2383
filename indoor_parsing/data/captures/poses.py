"""Reading camera matrices: intrinsics, 4x4 / 3x4 / quaternion poses, rigidity, camera-to-world vs world-to-camera."""

import math
from pathlib import Path

import numpy as np

from indoor_parsing.data.captures.base import NonRigidPoseError
from indoor_parsing.io import DataFileError

RIGID_TOL = 1e-2  # |R Rᵀ - I| and |det R - 1| above this is not round-off of a printed rotation


def read_numbers(path: Path) -> np.ndarray:
    """Every number of a text file, in order (``nan`` / ``-inf`` kept)."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise DataFileError(f"{path}: cannot read ({err})") from err
    try:
        return np.asarray([float(v) for v in text.replace(",", " ").split()], np.float64)
    except ValueError as err:
        raise DataFileError(f"{path}: expected numbers only ({err})") from err


def intrinsics_from_numbers(values: np.ndarray, where: str) -> np.ndarray:
    """(3, 3) K from 9 (3x3), 16 (4x4) or 4 (``fx fy cx cy``) numbers."""
    if values.size == 4:
        fx, fy, cx, cy = values
        K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], np.float64)
    elif values.size in (9, 16):
        n = int(math.isqrt(values.size))
        K = values.reshape(n, n)[:3, :3].astype(np.float64)
    else:
        raise DataFileError(f"{where}: intrinsics need 4 (fx fy cx cy), 9 (3x3) or 16 (4x4) numbers, got {values.size}")
    if not (np.all(np.isfinite(K)) and K[0, 0] > 0 and K[1, 1] > 0 and np.allclose(K[2], [0, 0, 1])):
        raise DataFileError(f"{where}: not a pinhole intrinsics matrix (fx, fy > 0, last row 0 0 1): {K.tolist()}")
    return K


def parse_intrinsics(spec: str, base: Path) -> tuple[np.ndarray, str]:
    """K from ``"fx,fy,cx,cy"`` or a file (relative to ``base`` unless absolute); returns (K, where)."""
    parts = spec.replace(",", " ").split()
    try:
        values = np.asarray([float(v) for v in parts], np.float64)
        return intrinsics_from_numbers(values, f"intrinsics {spec!r}"), f"intrinsics {spec!r}"
    except ValueError:
        pass
    path = Path(spec).expanduser()
    path = path if path.is_absolute() else base / path
    if not path.is_file():
        raise DataFileError(f"{path}: intrinsics file not found (give a file or 'fx,fy,cx,cy')")
    return intrinsics_from_numbers(read_numbers(path), str(path)), str(path)


def pose_from_numbers(values: np.ndarray, where: str) -> np.ndarray:
    """(4, 4) from 16 (4x4 row-major), 12 (3x4 row-major) or 7 (``tx ty tz qx qy qz qw``) numbers."""
    if values.size == 16:
        return values.reshape(4, 4).astype(np.float64)
    if values.size == 12:
        return np.vstack([values.reshape(3, 4), [0, 0, 0, 1]]).astype(np.float64)
    if values.size == 7:
        return quaternion_pose(values[:3], values[3:], where)
    raise DataFileError(
        f"{where}: a pose needs 16 (4x4), 12 (3x4) or 7 (tx ty tz qx qy qz qw) numbers, got {values.size}"
    )


def quaternion_pose(t: np.ndarray, q_xyzw: np.ndarray, where: str) -> np.ndarray:
    """(4, 4) from a translation and a unit quaternion (x, y, z, w; TUM RGB-D's order)."""
    q = np.asarray(q_xyzw, np.float64)
    norm = float(np.linalg.norm(q))
    if not np.all(np.isfinite(q)) or not np.all(np.isfinite(t)):
        T = np.full((4, 4), np.nan)
        return T
    if abs(norm - 1.0) > RIGID_TOL:
        raise NonRigidPoseError(f"{where}: quaternion {q.tolist()} has norm {norm:.4f}, not a rotation (expected 1)")
    x, y, z, w = q / norm
    R = np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])  # fmt: skip
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, t
    return T


def rigid(T: np.ndarray, where: str) -> np.ndarray:
    """The pose with its rotation re-orthonormalised; NonRigidPoseError when it is no rotation + translation."""
    R = T[:3, :3]
    err = float(np.abs(R @ R.T - np.eye(3)).max())
    det = float(np.linalg.det(R))
    if err > RIGID_TOL or abs(det - 1.0) > RIGID_TOL or not np.allclose(T[3], [0, 0, 0, 1], atol=1e-6):
        raise NonRigidPoseError(
            f"{where}: not a rigid pose (max |R Rᵀ - I| = {err:.3g}, det R = {det:.4f}, last row {T[3].tolist()}); "
            "poses must be rotation + translation in metres, without scale"
        )
    U, _, Vt = np.linalg.svd(R)
    out = T.copy()
    out[:3, :3] = U @ Vt  # printed rotations carry ~1e-6 round-off; the loaders check 1e-3
    return out


def to_camera_to_world(T: np.ndarray, convention: str) -> np.ndarray:
    """A rigid pose in ``convention`` -> camera-to-world."""
    if convention == "camera-to-world":
        return T
    inv = np.eye(4)
    inv[:3, :3] = T[:3, :3].T
    inv[:3, 3] = -T[:3, :3].T @ T[:3, 3]
    return inv


def checked_pose(T: np.ndarray, convention: str, where: str) -> tuple[np.ndarray | None, str | None]:
    """(camera-to-world pose, None), or (None, reason) for a non-finite pose (tracking lost). Raises when not rigid."""
    if not np.all(np.isfinite(T)):
        return None, f"non-finite pose in {where} (tracking lost)"
    return to_camera_to_world(rigid(T, where), convention), None

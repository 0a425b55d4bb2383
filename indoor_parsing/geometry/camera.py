"""Camera geometry shared by every method: pixel grids, back-projection, projection, rigid transforms, poses.

Conventions: intrinsics ``K`` (3x3) of the image as stored, pixel centres at integer coordinates, OpenCV camera axes
(x right, y down, z forward), poses camera-to-world (4x4), depth = z-depth in metres with 0 = missing. All functions
are batched torch, dtype-agnostic (float32 / float64 follow the depth or point tensor) and differentiable where a
gradient means something. Warping and z-buffering between views: ``warp.py``; view overlap: ``overlap.py``.
"""

import torch

EPS = 1e-6  # smallest z treated as in front of the camera


def pixel_grid(height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """Homogeneous pixel coordinates ``[u, v, 1]`` of every pixel centre, (3, H*W)."""
    v, u = torch.meshgrid(
        torch.arange(height, dtype=like.dtype, device=like.device),
        torch.arange(width, dtype=like.dtype, device=like.device),
        indexing="ij",
    )
    return torch.stack([u.flatten(), v.flatten(), torch.ones_like(u).flatten()])  # (3, H*W)


def backproject(depth: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Lift every pixel to a camera-frame point, ``X = z K^-1 [u, v, 1]^T``.

    Args:
        depth: (B, 1, H, W) z-depth in metres (0 gives the camera centre).
        K: (B, 3, 3) intrinsics.

    Returns:
        (B, 3, H, W) camera points.
    """
    B, _, H, W = depth.shape
    rays = torch.linalg.inv(K.to(depth)) @ pixel_grid(H, W, depth)  # (B, 3, H*W)
    return rays.view(B, 3, H, W) * depth


def transform_points(T: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Apply rigid transforms ``R p + t``; T (B, 4, 4), points (B, 3, ...) with any trailing shape."""
    B = points.shape[0]
    T = T.to(points)
    flat = points.reshape(B, 3, -1)  # (B, 3, N)
    return (T[:, :3, :3] @ flat + T[:, :3, 3:]).reshape(points.shape)


def project(points: torch.Tensor, K: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pinhole projection ``u ~ K X``; z is clamped so points at or behind the camera give finite (far-off) pixels.

    Args:
        points: (B, 3, ...) camera points.
        K: (B, 3, 3) intrinsics.

    Returns:
        uv (B, 2, ...) pixel coordinates and z (B, 1, ...) unclamped depth (test ``z > 0`` for validity).
    """
    B = points.shape[0]
    flat = points.reshape(B, 3, -1)  # (B, 3, N)
    z = flat[:, 2:3]
    K = K.to(points)
    uv = K[:, :2, :2] @ (flat[:, :2] / z.clamp(min=EPS)) + K[:, :2, 2:]  # (B, 2, N)
    trailing = points.shape[2:]
    return uv.reshape(B, 2, *trailing), z.reshape(B, 1, *trailing)


def invert_pose(T: torch.Tensor) -> torch.Tensor:
    """Inverse of rigid transforms (B, 4, 4), ``[R^T, -R^T t]`` (exact, unlike a general matrix inverse)."""
    R_t = T[:, :3, :3].transpose(1, 2)
    out = torch.zeros_like(T)
    out[:, :3, :3] = R_t
    out[:, :3, 3:] = -R_t @ T[:, :3, 3:]
    out[:, 3, 3] = 1
    return out


def relative_pose(T_a: torch.Tensor, T_b: torch.Tensor) -> torch.Tensor:
    """Transform taking camera-a points into camera b, ``inv(T_b) @ T_a``, from camera-to-world poses (B, 4, 4)."""
    return invert_pose(T_b) @ T_a.to(T_b)

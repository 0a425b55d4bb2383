"""Moving pixels between views: inverse warping with an occlusion test (S4-Net Eq. 4) and z-buffered projection of
points into an image grid (3D-to-2D feature projection). Conventions as in ``camera.py``."""

import math
from typing import Literal

import torch
import torch.nn.functional as F

from indoor_parsing.geometry.camera import EPS, backproject, invert_pose, project, transform_points


def _to_grid(uv: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pixel coordinates (B, 2, H, W) -> grid_sample grid (B, H, W, 2); align_corners=True puts -1/+1 on the centres
    of the first/last pixel, which is exactly the integer pixel-centre convention."""
    scale = uv.new_tensor([2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)]).view(1, 2, 1, 1)
    return (uv * scale - 1).permute(0, 2, 3, 1)


def inverse_warp(
    src: torch.Tensor,
    src_depth: torch.Tensor,
    tgt_depth: torch.Tensor,
    K_tgt: torch.Tensor,
    K_src: torch.Tensor,
    T_tgt_to_src: torch.Tensor,
    *,
    abs_tol: float = 0.05,
    rel_tol: float = 0.05,
    mode: Literal["bilinear", "nearest"] = "bilinear",
    scale_invariant: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Resample a source view into the target view through the target depth (S4-Net Eq. 4).

    Every target pixel p with depth d goes to ``p' = K_src T d K_tgt^-1 p`` and reads ``src`` there. A pixel is valid
    when d > 0, p' lies inside the source image (between the first and last pixel centres), the source depth at p'
    (nearest pixel, so depths are never blended across edges) is > 0, and the point is not occluded in the source:
    ``|z_src - s * depth_src(p')| < abs_tol + rel_tol * z_src`` with s = 1.

    With ``scale_invariant`` (predicted depths, S4-Net Sec. 3.3), s is the per-image median of
    ``z_src / depth_src(p')`` over the in-view pixels: a global scale error of either depth map (or a different one in
    each) moves every ratio alike and is absorbed, while an occluder still stands out of its image's median.

    Args:
        src: (B, C, Hs, Ws) values to warp; an integer tensor (labels) requires ``mode="nearest"`` and keeps its dtype.
        src_depth: (B, 1, Hs, Ws) source depth; None skips the source-depth and occlusion tests (a view without
            depth, e.g. the proxy-depth overlap of an RGB-only sequence).
        tgt_depth: (B, 1, H, W) target depth.
        K_tgt: (B, 3, 3) target intrinsics.
        K_src: (B, 3, 3) source intrinsics.
        T_tgt_to_src: (B, 4, 4) target-camera to source-camera transform (``relative_pose(T_tgt, T_src)``).
        abs_tol: occlusion tolerance in metres.
        rel_tol: occlusion tolerance relative to z.
        mode: ``"bilinear"`` for images and features, ``"nearest"`` for labels.
        scale_invariant: compare depths up to the median ratio (see above).

    Returns:
        warped (B, C, H, W), 0 where invalid (so no gradient reaches ``src`` there), and valid (B, 1, H, W) bool.
    """
    if mode not in ("bilinear", "nearest"):
        raise ValueError(f"inverse_warp: mode must be 'bilinear' or 'nearest', got {mode!r}")
    integer = not src.is_floating_point()
    if integer and mode != "nearest":
        raise ValueError(f"inverse_warp: integer src ({src.dtype}) needs mode='nearest'")
    _, _, Hs, Ws = src.shape
    points = transform_points(T_tgt_to_src, backproject(tgt_depth, K_tgt))  # (B, 3, H, W) in the source camera
    uv, z = project(points, K_src)  # (B, 2, H, W), (B, 1, H, W)
    grid = _to_grid(uv, Hs, Ws)  # (B, H, W, 2)
    values = src.to(tgt_depth.dtype) if integer else src
    warped = F.grid_sample(values, grid.to(values.dtype), mode=mode, padding_mode="zeros", align_corners=True)
    u, v = uv[:, :1], uv[:, 1:]
    tol = 1e-3  # pixels: round-off must not reject the border pixels of an identity warp
    inside = (u >= -tol) & (u <= Ws - 1 + tol) & (v >= -tol) & (v <= Hs - 1 + tol)
    valid = (tgt_depth > 0) & (z > EPS) & inside  # (B, 1, H, W)
    if src_depth is not None:
        z, grid = z.detach(), grid.detach()  # the tests below are comparisons: no gradient through them
        d_src = F.grid_sample(src_depth.to(z), grid, mode="nearest", padding_mode="zeros", align_corners=True)
        seen = valid & (d_src > 0)
        if scale_invariant:
            d_src = d_src * _median_ratio(z, d_src, seen)
        valid = seen & ((z - d_src).abs() < abs_tol + rel_tol * z)
    warped = warped * valid.to(warped.dtype)
    return (warped.round().to(src.dtype) if integer else warped), valid


def _median_ratio(z: torch.Tensor, d: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-image median of ``z / d`` over ``mask`` (all (B, 1, H, W)), (B, 1, 1, 1); 1 where the mask is empty."""
    ratio = torch.where(mask, z / d.clamp_min(EPS), torch.nan).flatten(1)  # (B, H*W)
    median = ratio.nanmedian(1).values
    return torch.where(torch.isfinite(median), median, torch.ones_like(median)).view(-1, 1, 1, 1)


def zbuffer_project(
    points: torch.Tensor,
    K: torch.Tensor,
    T_c2w: torch.Tensor,
    height: int,
    width: int,
    *,
    stride: int = 1,
    depth: torch.Tensor | None = None,
    depth_tol: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest world point per cell of a (height // stride, width // stride) grid (3D-to-2D feature projection).

    A point falls into the cell of its rounded pixel ``(round(v) // stride, round(u) // stride)``. With ``depth``
    given, points whose z differs from the frame depth at their pixel by more than ``depth_tol`` are dropped first,
    which also drops points at pixels without depth (nothing proves them visible). Ties in z go to the lowest index.

    Args:
        points: (N, 3) world points.
        K: (3, 3) intrinsics of the (height, width) image.
        T_c2w: (4, 4) camera-to-world pose.
        height: image height.
        width: image width.
        stride: grid cell size in pixels.
        depth: optional (H, W) frame depth in metres for the visibility test.
        depth_tol: visibility tolerance in metres.

    Returns:
        index (h, w) int64 of the winning point (-1 where none) and mask (h, w) bool.
    """
    if points.dim() != 2 or points.shape[1] != 3:
        raise ValueError(f"zbuffer_project: points must be (N, 3), got {tuple(points.shape)}")
    h, w = height // stride, width // stride
    cam = transform_points(invert_pose(T_c2w.to(points)[None]), points.T[None])  # (1, 3, N)
    uv, z = project(cam, K.to(points)[None])
    px, py, z = uv[0, 0].round(), uv[0, 1].round(), z[0, 0]  # (N,)
    keep = (z > EPS) & (px >= 0) & (px <= width - 1) & (py >= 0) & (py <= height - 1)
    cx, cy = (px.clamp(0, width - 1).long() // stride), (py.clamp(0, height - 1).long() // stride)
    keep &= (cx < w) & (cy < h)
    if depth is not None:
        if tuple(depth.shape) != (height, width):
            raise ValueError(f"zbuffer_project: depth must be ({height}, {width}), got {tuple(depth.shape)}")
        d = depth.to(points)[py.clamp(0, height - 1).long(), px.clamp(0, width - 1).long()]
        keep &= (z - d).abs() <= depth_tol
    ids = torch.nonzero(keep).squeeze(1)  # (M,)
    cell = cy[ids] * w + cx[ids]
    # Pass 1: nearest z per cell; pass 2: lowest point index among those at that z (deterministic tie-break).
    zmin = torch.full((h * w,), math.inf, dtype=z.dtype, device=z.device).scatter_reduce(0, cell, z[ids], "amin")
    at_min = z[ids] == zmin[cell]
    none = points.shape[0]
    index = torch.full((h * w,), none, dtype=torch.long, device=points.device)
    index = index.scatter_reduce(0, cell[at_min], ids[at_min], "amin")
    mask = index < none
    return torch.where(mask, index, -1).view(h, w), mask.view(h, w)

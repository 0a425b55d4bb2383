"""Camera geometry shared by every method: back-projection, projection, inverse warping, z-buffering,
view overlap, label boundaries (HHA encoding: indoor_parsing/hha.py).

Conventions: intrinsics ``K`` (3x3) of the image as stored, pixel centres at integer coordinates, OpenCV camera axes
(x right, y down, z forward), poses camera-to-world (4x4), depth = z-depth in metres with 0 = missing. All functions
are batched torch, dtype-agnostic (float32 / float64 follow the depth or point tensor) and differentiable where a
gradient means something.
"""

import math
from typing import Literal

import torch
import torch.nn.functional as F

_EPS = 1e-6  # smallest z treated as in front of the camera


def _pixel_grid(height: int, width: int, like: torch.Tensor) -> torch.Tensor:
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
    rays = torch.linalg.inv(K.to(depth)) @ _pixel_grid(H, W, depth)  # (B, 3, H*W)
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
    uv = K[:, :2, :2] @ (flat[:, :2] / z.clamp(min=_EPS)) + K[:, :2, 2:]  # (B, 2, N)
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
    valid = (tgt_depth > 0) & (z > _EPS) & inside  # (B, 1, H, W)
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
    ratio = torch.where(mask, z / d.clamp_min(_EPS), torch.nan).flatten(1)  # (B, H*W)
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
    keep = (z > _EPS) & (px >= 0) & (px <= width - 1) & (py >= 0) & (py <= height - 1)
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


def view_overlap(
    depth_a: torch.Tensor,
    K_a: torch.Tensor,
    T_a: torch.Tensor,
    depth_b: torch.Tensor,
    K_b: torch.Tensor,
    T_b: torch.Tensor,
    *,
    stride: int = 4,
    abs_tol: float = 0.05,
    rel_tol: float = 0.05,
) -> torch.Tensor:
    """Fraction of view a's valid-depth pixels (every ``stride``-th) seen by view b with agreeing depth, (B,).

    S4-Net keeps neighbours with at least 25 % overlap. Pixel ``j`` of the subsampled grid is pixel ``j * stride`` of
    the full one, so its intrinsics are ``diag(1/stride, 1/stride, 1) K``.
    """
    sub = depth_a[..., ::stride, ::stride]  # (B, 1, h, w)
    S = torch.diag(sub.new_tensor([1.0 / stride, 1.0 / stride, 1.0]))
    _, valid = inverse_warp(
        depth_b, depth_b, sub, S @ K_a.to(sub), K_b, relative_pose(T_a, T_b), abs_tol=abs_tol, rel_tol=rel_tol
    )
    total = (sub > 0).flatten(1).sum(1)
    return valid.flatten(1).sum(1).to(sub.dtype) / total.clamp(min=1).to(sub.dtype)


def overlap_matrix(
    depth: torch.Tensor,
    K: torch.Tensor,
    T: torch.Tensor,
    *,
    src_depth: torch.Tensor | None = None,
    K_src: torch.Tensor | None = None,
    occlusion: bool = True,
    abs_tol: float = 0.05,
    rel_tol: float = 0.05,
    chunk: int = 256,
) -> torch.Tensor:
    """All-pairs view overlap of a sequence from the validity of its Eq. 4 warps, (N, N) with a zero diagonal.

    Entry ``[i, j]`` is the fraction of view i's pixels with depth whose warp into view j is valid (in view, source
    depth present, not occluded): the same test L_G applies, so a pair passes the threshold exactly when the warp
    would supervise that share of e. Pass a coarse grid of e's pixels (e.g. every 8th pixel with
    ``diag(1/8, 1/8, 1) K``): the cost is N^2 times its pixel count. The views warped into read their depth from
    ``src_depth`` (finer, for an occlusion test as exact as L_G's; default: ``depth``).

    Args:
        depth: (N, 1, h, w) depth of every view's grid of target pixels, metres (0 = missing).
        K: (N, 3, 3) intrinsics of that grid.
        T: (N, 4, 4) camera-to-world poses.
        src_depth: (N, 1, Hs, Ws) depth read at the warped positions (None: ``depth``).
        K_src: (N, 3, 3) intrinsics of ``src_depth`` (None: ``K``).
        occlusion: test source depth and occlusion; False keeps only "lands inside view j in front of it" (views
            without depth, where ``depth`` is a proxy).
        abs_tol, rel_tol: occlusion tolerance, as in :func:`inverse_warp`.
        chunk: views j warped per call (memory bound).
    """
    N = depth.shape[0]
    src_depth, K_src = (depth, K) if src_depth is None else (src_depth, K_src)
    total = (depth > 0).flatten(1).sum(1).clamp(min=1).to(depth.dtype)  # (N,)
    out = depth.new_zeros(N, N)
    for i in range(N):
        for j0 in range(0, N, chunk):
            js = slice(j0, min(N, j0 + chunk))
            n = js.stop - js.start
            views = src_depth[js].to(depth.dtype)  # (n, 1, Hs, Ws); may be stored in half precision
            _, valid = inverse_warp(
                views, views if occlusion else None, depth[i : i + 1].expand(n, -1, -1, -1),
                K[i : i + 1].expand(n, -1, -1), K_src[js], relative_pose(T[i : i + 1].expand(n, -1, -1), T[js]),
                abs_tol=abs_tol, rel_tol=rel_tol,
            )  # fmt: skip
            out[i, js] = valid.flatten(1).sum(1).to(depth.dtype) / total[i]
    return out.fill_diagonal_(0)


def boundary_mask(label: torch.Tensor, width: int) -> torch.Tensor:
    """True within ``width`` pixels (Chebyshev) of a label change, (B, H, W) bool; S4-Net ignores these pixels.

    A (2w+1)^2 window holding two different labels means the centre pixel has a differing label within distance w;
    max_pool2d pads with -inf, so the image border is not a change.
    """
    if width < 0:
        raise ValueError(f"boundary_mask: width must be >= 0, got {width}")
    if width == 0:
        return torch.zeros_like(label, dtype=torch.bool)
    x = label.unsqueeze(1).to(torch.float64)  # (B, 1, H, W); float64 keeps any int32 id exact
    k = 2 * width + 1
    hi = F.max_pool2d(x, k, stride=1, padding=width)
    lo = -F.max_pool2d(-x, k, stride=1, padding=width)
    return (hi != lo).squeeze(1)

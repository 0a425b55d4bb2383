"""HHA encoding of depth (Gupta et al., ECCV 2014): horizontal disparity, height above the floor, angle to gravity.

The "+HHA" row of GeoAware's Table 4 feeds it to the encoder. Conventions as in geometry.py (OpenCV camera axes,
z-depth in metres, 0 = missing).
"""

import math

import torch
import torch.nn.functional as F

from indoor_parsing.geometry.camera import backproject


def _surface_normals(points: torch.Tensor, valid: torch.Tensor, window: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit normals facing the camera from central differences of the point map, averaged over a window.

    Averaging unit normals (not raw cross products) keeps the long edges at depth jumps from dominating; the
    orientation test ``n . X < 0`` also makes the result independent of mirrored intrinsics (negative fx).

    Returns:
        normals (B, 3, H, W) and their validity (B, 1, H, W).
    """
    P = F.pad(points, (1, 1, 1, 1), mode="replicate")
    m = F.pad(valid.to(points.dtype), (1, 1, 1, 1), mode="replicate")
    du = P[..., 1:-1, 2:] - P[..., 1:-1, :-2]  # (B, 3, H, W)
    dv = P[..., 2:, 1:-1] - P[..., :-2, 1:-1]
    n = F.normalize(torch.cross(du, dv, dim=1), dim=1)
    ok = valid & (m[..., 1:-1, 2:] * m[..., 1:-1, :-2] * m[..., 2:, 1:-1] * m[..., :-2, 1:-1] > 0)
    n = torch.where((n * points).sum(1, keepdim=True) > 0, -n, n) * ok
    n = F.avg_pool2d(n, window, stride=1, padding=window // 2, count_include_pad=False)
    good = valid & (n.norm(dim=1, keepdim=True) > 1e-3)
    return F.normalize(n, dim=1) * good, good


def _estimate_gravity(normals: torch.Tensor, good: torch.Tensor, thresholds: tuple[float, ...] = (45.0, 15.0)):
    """Gravity (B, 3) refined from camera +y, following Gupta et al. (2014) Sec. 3.1 in simplified form.

    Each round takes the normals within ``thr`` degrees of the current up direction (floors, ceilings) and those
    within ``thr`` degrees of perpendicular to it (walls), and picks the unit vector most parallel to the first set
    and most perpendicular to the second: the eigenvector with the smallest eigenvalue of
    ``N_perp^T N_perp - N_par^T N_par``. Simplification: one estimate per image over all pixels, no iterations to
    convergence, a faint prior towards the previous estimate, and with fewer than 3 candidate normals the previous
    estimate is kept.
    """
    B = normals.shape[0]
    n = normals.flatten(2).transpose(1, 2)  # (B, HW, 3)
    ok = good.flatten(1)  # (B, HW)
    up = normals.new_tensor([0.0, -1.0, 0.0]).expand(B, 3).clone()
    for thr in thresholds:
        cos = (n @ up.unsqueeze(2)).squeeze(2).abs()  # (B, HW)
        par = (ok & (cos > math.cos(math.radians(thr)))).to(n.dtype)
        perp = (ok & (cos < math.sin(math.radians(thr)))).to(n.dtype)
        M = (n * perp.unsqueeze(2)).transpose(1, 2) @ n - (n * par.unsqueeze(2)).transpose(1, 2) @ n  # (B, 3, 3)
        # A faint pull towards the current estimate picks it when the data leave the direction undetermined
        # (e.g. a single wall and no floor); it is 1e-3 of the data weight.
        M = M - 1e-3 * (par.sum(1) + perp.sum(1)).view(B, 1, 1) * (up.unsqueeze(2) @ up.unsqueeze(1))
        vec = torch.linalg.eigh(M)[1][..., 0]  # (B, 3), smallest eigenvalue first
        vec = torch.where((vec * up).sum(1, keepdim=True) < 0, -vec, vec)
        enough = (par.sum(1) + perp.sum(1) >= 3).unsqueeze(1)
        up = torch.where(enough, vec, up)
    return -up


HHA_FLOOR_MIN_DROP_M = 0.9  # the lowest valid point must lie this far below the camera to count as the floor
HHA_FALLBACK_FLOOR_M = 1.3  # otherwise the floor is assumed this far below the camera (Gupta et al.'s code)


def hha(depth: torch.Tensor, K: torch.Tensor, *, gravity: torch.Tensor | None = None) -> torch.Tensor:
    """HHA encoding (Gupta et al., ECCV 2014): horizontal disparity, height above ground, angle with gravity.

    Channels follow the reference implementation's 8-bit scaling divided by 255 and clipped to [0, 1]:
    disparity ``310 / max(z, 1 m)`` (31000 / depth-in-cm with the 1 m floor), height above the floor in cm, and
    ``angle + 38`` where angle is in degrees between the surface normal (facing the camera) and the up direction
    ``-gravity`` (floors ~38, walls ~128, ceilings ~218). Depth 0 gives 0 in every channel, as do pixels whose normal
    is undefined (no valid neighbours) in the angle channel.

    The floor is the lowest valid point along ``up``; when that point lies less than 0.9 m below the camera no floor
    is visible, and the floor is assumed 1.3 m below the camera (Gupta et al.'s reference code: ``if yMin > -90,
    yMin = -130``). Gravity itself falls back to camera +y when too few floor- or wall-like normals are found.

    Args:
        depth: (B, 1, H, W) metres, 0 = missing.
        K: (B, 3, 3) intrinsics.
        gravity: optional (B, 3) camera-frame gravity direction; estimated from the normals when None (see
            ``_estimate_gravity``: starts from camera +y, i.e. camera -y is up).

    Returns:
        (B, 3, H, W) floats in [0, 1].
    """
    valid = depth > 0  # (B, 1, H, W)
    points = backproject(depth, K)
    normals, good = _surface_normals(points, valid)
    if gravity is None:
        gravity = _estimate_gravity(normals, good)
    up = -F.normalize(gravity.to(depth), dim=1).view(-1, 3, 1, 1)
    disparity = 310.0 / depth.clamp(min=1.0)
    height = (points * up).sum(1, keepdim=True)  # (B, 1, H, W) metres along up, 0 at the camera
    lowest = torch.where(valid, height, math.inf).flatten(1).amin(1).view(-1, 1, 1, 1)
    # Gupta et al.'s floor fallback: a lowest point less than 0.9 m below the camera is no floor (none visible), so
    # the floor is taken 1.3 m below the camera (also for frames without any valid depth).
    no_floor = ~(lowest <= -HHA_FLOOR_MIN_DROP_M)
    floor = torch.where(no_floor, torch.full_like(lowest, -HHA_FALLBACK_FLOOR_M), lowest)
    height = (height - floor) * 100.0
    angle = torch.rad2deg(torch.acos((normals * up).sum(1, keepdim=True).clamp(-1, 1))) + 38.0
    out = torch.cat([disparity, height, angle * good], 1) / 255.0
    return out.clamp(0, 1) * valid

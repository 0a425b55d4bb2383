"""Checks of a recording before it is indexed: colour/depth registration and the pose-convention probe."""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from indoor_parsing.data.captures.base import PoseConventionError, Recording, RegistrationError
from indoor_parsing.data.captures.poses import to_camera_to_world
from indoor_parsing.data.prepare.common import scale_intrinsics
from indoor_parsing.geometry.overlap import view_overlap

ASPECT_TOL = 0.01  # relative difference of W/H below which two images are resizes of each other
FOCAL_TOL = 0.03  # relative focal-length difference tolerated between the colour K (rescaled) and the depth K
CENTRE_TOL = 0.03  # principal-point difference tolerated, as a fraction of the image size


@dataclass(frozen=True)
class Registration:
    """How a recording's colour and depth become one pixel grid.

    Attributes:
        size: (W, H) of the stored frames.
        K: (3, 3) intrinsics of the stored frames.
        resize_colour: the colour is resized to ``size``.
        reproject_depth: (3, 3) intrinsics of the depth camera, whose depth is resampled into the stored camera;
            None when the depth is already on the stored grid.
    """

    size: tuple[int, int]
    K: np.ndarray
    resize_colour: bool
    reproject_depth: np.ndarray | None


def _same_aspect(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return abs(a[0] / a[1] - b[0] / b[1]) <= ASPECT_TOL * a[0] / a[1]


def _intrinsics_agree(K: np.ndarray, K_depth: np.ndarray, depth_size: tuple[int, int]) -> bool:
    W, H = depth_size
    focal = max(abs(K[0, 0] / K_depth[0, 0] - 1), abs(K[1, 1] / K_depth[1, 1] - 1))
    centre = max(abs(K[0, 2] - K_depth[0, 2]) / W, abs(K[1, 2] - K_depth[1, 2]) / H)
    return focal <= FOCAL_TOL and centre <= CENTRE_TOL


def registration(rec: Recording, colour_size: tuple[int, int], depth_size: tuple[int, int]) -> Registration:
    """Decide the stored grid; RegistrationError when colour and depth cannot be put on one grid."""
    (Wc, Hc), (Wd, Hd) = colour_size, depth_size
    where = f"{rec.source} ({rec.intrinsics_source})"
    if rec.K_colour is None:  # only the depth camera is known: the colour is registered to it
        if not _same_aspect(colour_size, depth_size):
            raise RegistrationError(
                f"{where}: colour {Wc}x{Hc} and depth {Wd}x{Hd} differ in aspect ratio and only depth intrinsics are "
                "given; the colour cannot be registered to the depth"
            )
        return Registration(depth_size, rec.K_depth, colour_size != depth_size, None)
    scaled = scale_intrinsics(rec.K_colour, Wd / Wc, Hd / Hc) if _same_aspect(colour_size, depth_size) else None
    if rec.K_depth is None or (scaled is not None and _intrinsics_agree(scaled, rec.K_depth, depth_size)):
        if scaled is None:
            raise RegistrationError(
                f"{where}: colour {Wc}x{Hc} and depth {Wd}x{Hd} differ in aspect ratio, so the depth is not "
                "registered to the colour image; register it first or give the depth intrinsics"
            )
        return Registration(depth_size, scaled, colour_size != depth_size, None)
    if not rec.reproject_depth:
        ref = scaled if scaled is not None else rec.K_colour
        raise RegistrationError(
            f"{where}: colour intrinsics at the depth size (fx {ref[0, 0]:.1f}, fy {ref[1, 1]:.1f}, cx "
            f"{ref[0, 2]:.1f}, cy {ref[1, 2]:.1f}) disagree with the depth intrinsics (fx {rec.K_depth[0, 0]:.1f}, "
            f"fy {rec.K_depth[1, 1]:.1f}, cx {rec.K_depth[0, 2]:.1f}, cy {rec.K_depth[1, 2]:.1f}): colour and depth "
            "are not registered"
        )
    if scaled is not None:  # store at the depth resolution, in the colour camera
        return Registration(depth_size, scaled, colour_size != depth_size, rec.K_depth)
    return Registration(colour_size, rec.K_colour, False, rec.K_depth)


def reproject_depth(depth: np.ndarray, K_depth: np.ndarray, K: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Depth (H', W') of a camera with intrinsics ``K_depth`` -> the camera ``K`` of ``size`` at the same centre and
    orientation: a pixel's ray keeps its z, so each target pixel reads the nearest depth pixel on its ray."""
    W, H = size
    u, v = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
    x, y = (u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1]  # normalised ray (z = 1)
    ud = np.rint(K_depth[0, 0] * x + K_depth[0, 2]).astype(np.int64)
    vd = np.rint(K_depth[1, 1] * y + K_depth[1, 2]).astype(np.int64)
    inside = (ud >= 0) & (ud < depth.shape[1]) & (vd >= 0) & (vd < depth.shape[0])
    out = np.zeros((H, W), np.float32)
    out[inside] = depth[vd[inside], ud[inside]]
    return out


# ----------------------------------------------------------------------------------------- pose-convention probe

REFUSE_RATIO = 0.5  # the given convention overlaps less than half as much as its inverse: refuse
WARN_RATIO = 0.8
MIN_ROTATION_DEG = 3.0  # pairs that rotate less do not tell the conventions apart
MAX_PAIRS = 8


@dataclass(frozen=True)
class ProbeResult:
    """Mean view overlap of probe pairs with the poses as given and inverted; ``verdict`` ok / warn / refuse / none."""

    pairs: int
    given: float
    inverse: float
    verdict: str

    def message(self, where: str, convention: str) -> str:
        other = "world-to-camera" if convention == "camera-to-world" else "camera-to-world"
        return (f"{where}: poses read as {convention} make neighbouring frames' depth agree on {self.given:.0%} of "
                f"the pixels, read as {other} on {self.inverse:.0%} ({self.pairs} frame pairs); the poses are "
                f"probably {other}: pass --pose-convention {other}")  # fmt: skip


def _rotation_deg(Ta: np.ndarray, Tb: np.ndarray) -> float:
    c = (np.trace(Ta[:3, :3].T @ Tb[:3, :3]) - 1) / 2
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


def probe_pairs(poses: list[np.ndarray], window: int = 10) -> list[tuple[int, int]]:
    """Up to MAX_PAIRS (i, j): from evenly spread frames i, the first later frame within ``window`` that has turned
    by at least MIN_ROTATION_DEG (else the most turned one there)."""
    n = len(poses)
    pairs = []
    for i in sorted(set(np.linspace(0, n - 2, min(MAX_PAIRS, n - 1)).round().astype(int).tolist())) if n > 1 else []:
        cands = list(range(i + 1, min(n, i + 1 + window)))
        turned = [j for j in cands if _rotation_deg(poses[i], poses[j]) >= MIN_ROTATION_DEG]
        pairs.append((i, turned[0] if turned else max(cands, key=lambda j: _rotation_deg(poses[i], poses[j]))))
    return pairs


def probe_convention(depth: Callable[[int], np.ndarray], K: np.ndarray, poses: list[np.ndarray]) -> ProbeResult:
    """Overlap of pairs of frames (``depth(i)`` in metres, one K, camera-to-world poses as read) vs. inverted poses.

    With the right convention the depth of one frame, moved into the other, lands on the other's depth; with the
    wrong one the relative motion is wrong and far fewer pixels agree (geometry.view_overlap, both directions).
    """
    pairs = probe_pairs(poses)
    if not pairs:
        return ProbeResult(0, float("nan"), float("nan"), "none")
    loaded = {i: torch.from_numpy(np.ascontiguousarray(depth(i), np.float64)) for p in pairs for i in p}
    Ks = torch.from_numpy(K).expand(len(pairs), 3, 3)
    D_a = torch.stack([loaded[i] for i, _ in pairs])[:, None]  # (P, 1, h, w)
    D_b = torch.stack([loaded[j] for _, j in pairs])[:, None]
    ia, ib = [p[0] for p in pairs], [p[1] for p in pairs]
    result = []
    for Ts in (poses, [to_camera_to_world(T, "world-to-camera") for T in poses]):
        T = torch.from_numpy(np.stack(Ts))
        ab = view_overlap(D_a, Ks, T[ia], D_b, Ks, T[ib], stride=1)
        ba = view_overlap(D_b, Ks, T[ib], D_a, Ks, T[ia], stride=1)
        result.append(float(torch.cat([ab, ba]).mean()))
    given, inverse = result
    return ProbeResult(len(pairs), given, inverse, verdict(given, inverse))


def verdict(given: float, inverse: float) -> str:
    """ "refuse" when the given convention overlaps less than REFUSE_RATIO of its inverse (which itself overlaps),
    "warn" below WARN_RATIO, "no_overlap" when neither overlaps, else "ok"."""
    if inverse >= 0.1 and given < REFUSE_RATIO * inverse:
        return "refuse"
    if inverse - given >= 0.05 and given < WARN_RATIO * inverse:
        return "warn"
    if max(given, inverse) < 0.05:
        return "no_overlap"
    return "ok"


def raise_or_note(result: ProbeResult, where: str, convention: str) -> str | None:
    """PoseConventionError for "refuse"; a note for "warn" / "no_overlap"; None when fine."""
    if result.verdict == "refuse":
        raise PoseConventionError(result.message(where, convention))
    if result.verdict == "warn":
        return "warning: " + result.message(where, convention)
    if result.verdict == "no_overlap":
        return (f"warning: {where}: neighbouring frames' depth agrees on under 5% of the pixels in either pose "
                "convention; check the depth scale, the intrinsics and the poses")  # fmt: skip
    return None

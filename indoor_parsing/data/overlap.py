"""Neighbour candidates of a registered sequence (S4-Net): all-pairs view overlap, cached, with a diagnosis.

S4-Net draws the neighbours e' of a frame e among the frames of the sequence that overlap it by at least 25 %. The
overlap of (e, e') is the share of e's pixels whose Eq. 4 warp into e' is valid (``geometry.overlap_matrix``),
computed once per sequence on a coarse grid of depth pixels and cached next to the layout.
"""

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import torch

from indoor_parsing.data.layout import Frame
from indoor_parsing.geometry import invert_pose, overlap_matrix
from indoor_parsing.io import load_depth, save_npy

log = logging.getLogger(__name__)

PROXY_DEPTH_M = 2.0  # RGB-only sequences: e's pixels are put on a plane this far away (a room-scale guess)
COLLAPSE_SHARE = 0.5  # more than this share of frames without any neighbour means the geometry is broken


def sequence_overlap(
    root: Path, frames: list[Frame], stride: int, abs_tol: float, rel_tol: float, window: int | None = None
) -> np.ndarray:
    """(N, N) float32 overlap of every frame pair (row: the frame e, column: the candidate e'), cached in ``root``.

    Frames without depth (an RGB-only sequence: every frame must lack it) are put on a plane ``PROXY_DEPTH_M`` away
    and only tested for landing inside the other view. ``window`` (sequence positions) zeroes pairs farther apart
    (None: the whole sequence, as in the paper).
    """
    settings = [stride, abs_tol, rel_tol, window, PROXY_DEPTH_M]
    ident = [(f.key, f.depth, f.intrinsics, f.pose) for f in frames]
    key = hashlib.sha1(json.dumps([settings, ident]).encode()).hexdigest()[:12]
    cache = root / f"s4net_overlap_{key}.npy"
    if cache.is_file():
        overlap = np.load(cache)
        if overlap.shape == (len(frames), len(frames)):
            return overlap
    depth, K, T, occlusion = _coarse_views(root, frames, stride)
    overlap = overlap_matrix(depth, K, T, occlusion=occlusion, abs_tol=abs_tol, rel_tol=rel_tol).numpy()
    if window is not None:
        pos = np.arange(len(frames))
        overlap = np.where(np.abs(pos[:, None] - pos[None]) <= window, overlap, 0.0)
    overlap = overlap.astype(np.float32)
    try:
        save_npy(cache, overlap)
    except OSError as err:  # a read-only dataset folder only costs the recomputation next time
        log.warning("could not cache view overlaps in %s (%s)", cache, err)
    return overlap


def _coarse_views(root: Path, frames: list[Frame], stride: int):
    """Depth (N, 1, h, w) on every ``stride``-th pixel, its intrinsics (N, 3, 3), poses (N, 4, 4), occlusion flag."""
    with_depth = [f.depth is not None for f in frames]
    if any(with_depth) and not all(with_depth):
        raise ValueError(f"{root}: {with_depth.count(False)} of {len(frames)} frames have no depth; a sequence has "
                         "depth for every frame or for none (RGB-only)")  # fmt: skip
    if all(with_depth):
        depth = torch.stack([torch.from_numpy(load_depth(root / f.depth)[::stride, ::stride].copy()) for f in frames])
    else:
        h, w = -(-frames[0].height // stride), -(-frames[0].width // stride)
        depth = torch.full((len(frames), h, w), PROXY_DEPTH_M)
    sub = torch.diag(torch.tensor([1.0 / stride, 1.0 / stride, 1.0]))
    K = torch.stack([sub @ torch.from_numpy(f.K).float() for f in frames])  # intrinsics of the subsampled grid
    T = torch.stack([torch.from_numpy(f.T).float() for f in frames])
    return depth[:, None].float(), K, T, all(with_depth)


def candidates(overlap: np.ndarray, min_overlap: float) -> list[list[int]]:
    """Per frame: the frames (positions) whose overlap with it is at least ``min_overlap``, itself excluded."""
    keep = overlap >= min_overlap
    np.fill_diagonal(keep, False)
    return [np.flatnonzero(row).tolist() for row in keep]


def diagnose(
    root: Path, frames: list[Frame], overlap: np.ndarray, min_overlap: float, stride: int, tol: tuple[float, float]
) -> str | None:
    """A warning when most frames have no neighbour (L_G would be empty: the source model trains alone), else None.

    The message gives the numbers and tests the likeliest cause: poses stored world-to-camera. It recomputes the
    overlap of up to 12 evenly spaced frames with inverted poses and reports whether that finds neighbours.
    """
    found = [bool(c) for c in candidates(overlap, min_overlap)]
    without = found.count(False) / max(len(found), 1)
    best = overlap.max(1) if overlap.size else np.zeros(0)
    log.info("S4-Net neighbours: %d of %d frames have one with >= %.0f%% overlap (median best overlap %.2f)",
             sum(found), len(found), 100 * min_overlap, float(np.median(best)) if best.size else 0.0)  # fmt: skip
    if len(frames) < 2 or without <= COLLAPSE_SHARE:
        return None
    msg = (f"S4-Net: {without:.0%} of the {len(frames)} frames of {root} have no neighbour with >= "
           f"{min_overlap:.0%} view overlap (median best overlap {float(np.median(best)):.1%}); those frames get no "
           "L_G and training reduces to the source loss. Check that poses are camera-to-world with OpenCV axes, depth "
           "is in metres and the intrinsics match the images.")  # fmt: skip
    pick = np.unique(np.linspace(0, len(frames) - 1, min(12, len(frames))).round().astype(int))
    depth, K, T, occlusion = _coarse_views(root, [frames[i] for i in pick], stride)
    plain = overlap[np.ix_(pick, pick)]
    flipped = overlap_matrix(depth, K, invert_pose(T), occlusion=occlusion, abs_tol=tol[0], rel_tol=tol[1]).numpy()
    if flipped.max(1).mean() > 2 * plain.max(1).mean() + 0.05:
        msg += (f" With the poses inverted, these {len(pick)} frames overlap {flipped.max(1).mean():.0%} on average "
                f"(as given: {plain.max(1).mean():.0%}): the poses look world-to-camera; invert them.")  # fmt: skip
    return msg

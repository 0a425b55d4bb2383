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
from indoor_parsing.geometry.camera import invert_pose
from indoor_parsing.geometry.overlap import overlap_matrix
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
    overlap = _overlap(root, frames, stride, abs_tol, rel_tol)
    if window is not None:
        pos = np.arange(len(frames))
        overlap = np.where(np.abs(pos[:, None] - pos[None]) <= window, overlap, 0.0)
    overlap = overlap.astype(np.float32)
    try:
        save_npy(cache, overlap)
    except OSError as err:  # a read-only dataset folder only costs the recomputation next time
        log.warning("could not cache view overlaps in %s (%s)", cache, err)
    return overlap


def _overlap(root: Path, frames: list[Frame], stride: int, abs_tol: float, rel_tol: float, invert: bool = False):
    """``overlap_matrix`` of the frames (poses inverted on request) on every ``stride``-th pixel of e; the views e'
    are read at a 4x finer stride, where the occlusion test at depth edges is as L_G's (the coarse grid alone
    misses 3-8 % of the overlap on SynthRooms)."""
    depth, K, T, occlusion = _views(root, frames, stride)
    depth = depth.float()
    src, K_src = (depth, K) if not occlusion or stride < 4 else _views(root, frames, stride // 4)[:2]
    T = invert_pose(T) if invert else T
    return overlap_matrix(depth, K, T, src_depth=src, K_src=K_src, occlusion=occlusion, abs_tol=abs_tol,
                          rel_tol=rel_tol).numpy()  # fmt: skip


def _views(root: Path, frames: list[Frame], stride: int):
    """Depth (N, 1, h, w) on every ``stride``-th pixel (half precision: memory), its intrinsics (N, 3, 3), poses
    (N, 4, 4) and whether the depth is measured (False: the RGB-only proxy plane)."""
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
    return depth[:, None].half(), K, T, all(with_depth)


def candidates(overlap: np.ndarray, min_overlap: float) -> list[list[int]]:
    """Per frame: the frames (positions) whose overlap with it is at least ``min_overlap``, itself excluded."""
    keep = overlap >= min_overlap
    np.fill_diagonal(keep, False)
    return [np.flatnonzero(row).tolist() for row in keep]


def diagnose(
    root: Path, frames: list[Frame], overlap: np.ndarray, min_overlap: float, stride: int, tol: tuple[float, float]
) -> str | None:
    """A warning when the poses look world-to-camera or most frames have no neighbour (L_G would be nearly empty and
    the source model would train alone), else None.

    World-to-camera poses do not empty every candidate list (nearly equal poses stay nearly equal when inverted), so
    the overlap of up to 12 evenly spaced frames is also computed with inverted poses: clearly more overlap that way
    means the poses are inverted.
    """
    found = [bool(c) for c in candidates(overlap, min_overlap)]
    without = found.count(False) / max(len(found), 1)
    best = float(np.median(overlap.max(1))) if len(frames) > 1 else 0.0
    log.info("S4-Net neighbours: %d of %d frames have one with >= %.0f%% overlap (median best overlap %.2f)",
             sum(found), len(found), 100 * min_overlap, best)  # fmt: skip
    if len(frames) < 2:
        return None
    pick = np.unique(np.linspace(0, len(frames) - 1, min(12, len(frames))).round().astype(int))
    plain = overlap[np.ix_(pick, pick)].max(1).mean()
    flipped = _overlap(root, [frames[i] for i in pick], stride, *tol, invert=True).max(1).mean()
    inverted = flipped > 2 * plain + 0.05
    if without <= COLLAPSE_SHARE and not inverted:
        return None
    msg = (f"S4-Net: {without:.0%} of the {len(frames)} frames of {root} have no neighbour with >= {min_overlap:.0%} "
           f"view overlap (median best overlap {best:.1%}); frames without one get no L_G, and with too few the "
           "training reduces to the source loss.")  # fmt: skip
    if inverted:
        return msg + (f" With the poses inverted, {len(pick)} sampled frames overlap their best neighbour by "
                      f"{flipped:.0%} on average (as given: {plain:.0%}): the poses look world-to-camera; store "
                      "camera-to-world poses (invert them).")  # fmt: skip
    return msg + (
        " Check that poses are camera-to-world with OpenCV axes (x right, y down, z forward), depth is in "
        "metres and the intrinsics match the images."
    )

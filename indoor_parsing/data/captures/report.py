"""The labelling report of an adapted capture: frames, coverage of the consistency loss, frames with no neighbour.

Coverage is what S4-Net's L_G can reach: the fraction of a frame's valid-depth pixels (every ``overlap_stride``-th)
onto which at least one of its overlap-selected neighbours warps (Eq. 4's validity: in view, with depth, not
occluded), before the boundary mask. A frame without any neighbour above ``min_overlap`` gets no L_G at all.
"""

import numpy as np
import torch

from indoor_parsing.geometry.camera import relative_pose
from indoor_parsing.geometry.warp import inverse_warp
from indoor_parsing.io import load_depth


def coverage(dm, frames, candidates: list[list[int]]) -> list[float]:
    """Per frame: fraction of its subsampled valid-depth pixels covered by the warps of its candidate neighbours.

    Every depth map is loaded once, subsampled by ``overlap_stride`` (so the neighbours' depth used by the occlusion
    test is the subsampled one too; their intrinsics follow), and each frame's neighbours are warped in one batch.
    """
    s = dm.overlap_stride
    S = torch.diag(torch.tensor([1.0 / s, 1.0 / s, 1.0], dtype=torch.float64))
    depth = [torch.from_numpy(load_depth(dm.root / f.depth)[::s, ::s].copy()).double()[None] for f in frames]
    K = [S @ torch.from_numpy(f.K) for f in frames]
    T = [torch.from_numpy(f.T) for f in frames]
    out = []
    for i, js in enumerate(candidates):
        total = int((depth[i] > 0).sum())
        if not js or total == 0:
            out.append(0.0)
            continue
        n = len(js)
        nb = torch.stack([depth[j] for j in js])  # (n, 1, h, w)
        rel = torch.stack([relative_pose(T[i][None], T[j][None])[0] for j in js])  # (n, 4, 4)
        _, valid = inverse_warp(nb, nb, depth[i][None].expand(n, -1, -1, -1), K[i].expand(n, 3, 3),
                                torch.stack([K[j] for j in js]), rel, abs_tol=dm.occlusion_tol[0],
                                rel_tol=dm.occlusion_tol[1])  # fmt: skip
        out.append(float(valid.any(0).sum()) / total)
    return out


def neighbour_report(dm) -> dict:
    """``{sequence: {"frames", "coverage", "no_neighbour": [frame names]}}`` over an S4NetDataModule's training
    sequences (its overlap candidates are computed, or read from their cache, on the way)."""
    out = {}
    for name in dm.train_sequences:
        frames = dm.sequences[name]
        candidates = dm._candidates(frames)
        has_depth = all(f.depth is not None for f in frames)  # an RGB-only recording warps with predicted depth
        cov = coverage(dm, frames, candidates) if has_depth else []
        out[name] = {
            "frames": len(frames),
            "coverage": (round(float(np.mean(cov)), 4) if cov else 0.0) if has_depth else None,
            "no_neighbour": [
                f.extra.get("name", f"{f.index:06d}") for f, js in zip(frames, candidates, strict=True) if not js
            ],  # fmt: skip
        }
    return out


def summary(report: dict) -> str:
    """A few lines for the terminal."""
    lines = []
    for name, rec in report.get("adaptation", {}).items():
        none = rec["no_neighbour"]
        shown = ", ".join(none[:8]) + (f" and {len(none) - 8} more" if len(none) > 8 else "")
        tail = f": {shown}" if none else ""
        if rec["coverage"] is None:
            lines.append(f"  {name}: {rec['frames']} frames adapted on (RGB only: coverage needs sensor depth); "
                         f"{len(none)} frames with no valid neighbour{tail}")  # fmt: skip
            continue
        lines.append(f"  {name}: {rec['frames']} frames adapted on, consistency loss covers {rec['coverage']:.0%} of "
                     f"the depth pixels; {len(none)} frames with no valid neighbour{tail}")  # fmt: skip
    for name, n in report.get("labelled", {}).items():
        lines.append(f"  {name}: {n} frames labelled")
    return "\n".join(lines)

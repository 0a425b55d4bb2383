"""The labelling report of an adapted capture: frames, coverage of the consistency loss, frames with no neighbour.

Coverage is what S4-Net's L_G can reach: the fraction of a frame's valid-depth pixels (every ``overlap_stride``-th)
onto which at least one of its overlap-selected neighbours warps (Eq. 4's validity: in view, with depth, not
occluded), before the boundary mask. A frame without any neighbour above ``min_overlap`` gets no L_G at all.
"""

import numpy as np
import torch

from indoor_parsing.geometry import inverse_warp, relative_pose
from indoor_parsing.io import load_depth


def _coverage(dm, frames, i: int, js: list[int]) -> float:
    """Fraction of frame i's subsampled valid-depth pixels covered by the warps of frames ``js``."""
    s = dm.overlap_stride
    f = frames[i]
    sub = torch.from_numpy(load_depth(dm.root / f.depth)[::s, ::s].copy()).double()[None, None]  # (1, 1, h, w)
    total = int((sub > 0).sum())
    if not js or total == 0:
        return 0.0
    K = torch.diag(torch.tensor([1.0 / s, 1.0 / s, 1.0], dtype=torch.float64)) @ torch.from_numpy(f.K)
    covered = torch.zeros_like(sub, dtype=torch.bool)
    for j in js:
        nb = frames[j]
        d = torch.from_numpy(load_depth(dm.root / nb.depth)).double()[None, None]
        T = relative_pose(torch.from_numpy(f.T)[None], torch.from_numpy(nb.T)[None])
        _, valid = inverse_warp(d, d, sub, K[None], torch.from_numpy(nb.K)[None], T, abs_tol=dm.occlusion_tol[0],
                                rel_tol=dm.occlusion_tol[1])  # fmt: skip
        covered |= valid
    return float(covered.sum()) / total


def neighbour_report(dm) -> dict:
    """``{sequence: {"frames", "coverage", "no_neighbour": [frame names]}}`` over an S4NetDataModule's training
    sequences (its overlap candidates are computed, or read from their cache, on the way)."""
    out = {}
    for name in dm.train_sequences:
        frames = dm.sequences[name]
        candidates = dm._candidates(frames)
        coverage = [_coverage(dm, frames, i, js) for i, js in enumerate(candidates)]
        out[name] = {
            "frames": len(frames),
            "coverage": round(float(np.mean(coverage)), 4) if coverage else 0.0,
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
        lines.append(f"  {name}: {rec['frames']} frames adapted on, consistency loss covers {rec['coverage']:.0%} of "
                     f"the depth pixels; {len(none)} frames with no valid neighbour{tail}")  # fmt: skip
    for name, n in report.get("labelled", {}).items():
        lines.append(f"  {name}: {n} frames labelled")
    return "\n".join(lines)

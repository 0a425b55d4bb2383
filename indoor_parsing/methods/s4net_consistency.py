"""S4-Net's multi-view targets: neighbours warped into e (Eq. 4), merged into L_G's label (Eq. 3), L_DG's photometric
term (Sec. 3.3), and the coverage of L_G, watched so that a broken geometry does not silently train the source model.
"""

import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_warn

from indoor_parsing.data.sample import IMAGENET_MEAN, IMAGENET_STD
from indoor_parsing.geometry.camera import relative_pose
from indoor_parsing.geometry.warp import inverse_warp
from indoor_parsing.losses import photometric_loss


def warp_neighbors(
    depth: torch.Tensor, K: torch.Tensor, T: torch.Tensor, neighbors: list[dict], boundary_width: int,
    abs_tol: float = 0.05, rel_tol: float = 0.05, scale_invariant: bool = False,
) -> list[dict]:  # fmt: skip
    """Warp every neighbour's class probabilities (and RGB, when given) into the target view e (Eq. 4).

    Args:
        depth: (B, 1, H, W) depth of e used for the warp (sensor, or predicted).
        K: (B, 3, 3) intrinsics of e.
        T: (B, 4, 4) camera-to-world pose of e.
        neighbors: dicts with ``prob`` (B, K, H', W') teacher probabilities, ``depth`` (B, 1, H', W') for the
            occlusion test, ``intrinsics``, ``pose``, optionally ``usable`` (B,) bool (False: a padding slot) and
            ``rgb`` (B, 3, H', W').
        boundary_width: pixels within this distance of a boundary of the neighbour's predicted segments are marked.
        abs_tol, rel_tol: occlusion test tolerance (metres, relative to depth).
        scale_invariant: occlusion test up to the depths' median ratio (predicted depths, whose scale may be off).

    Returns:
        Per neighbour: ``prob`` (B, K, H, W), ``near`` (B, 1, H, W) near a predicted boundary, ``valid``
        (B, 1, H, W) with depth, in view, unoccluded and usable, and ``rgb`` (B, 3, H, W) when given.
    """
    out = []
    for nb in neighbors:
        prob = nb["prob"]
        C = prob.shape[1]
        edge = boundary_mask(prob.argmax(1), boundary_width).unsqueeze(1).to(prob.dtype)  # (B, 1, H', W')
        values = torch.cat([prob, edge] + ([nb["rgb"]] if "rgb" in nb else []), 1)
        warped, valid = inverse_warp(
            values, nb["depth"], depth, K, nb["intrinsics"], relative_pose(T, nb["pose"]), abs_tol=abs_tol,
            rel_tol=rel_tol, scale_invariant=scale_invariant,
        )  # fmt: skip
        if "usable" in nb:
            valid = valid & nb["usable"].to(valid.device).view(-1, 1, 1, 1)
        item = {"prob": warped[:, :C], "near": warped[:, C : C + 1] >= 0.5, "valid": valid}
        if "rgb" in nb:
            item["rgb"] = warped[:, C + 1 :]
        out.append(item)
    return out


def merge_labels(warped: list[dict], ignore_index: int = 255) -> torch.Tensor:
    """Eq. 3's target: argmax of the summed warped probabilities; ignored where no neighbour is valid or any valid
    neighbour puts the pixel near a segment boundary. Returns (B, H, W) int64."""
    total = sum(w["prob"] * w["valid"] for w in warped)  # (B, K, H, W)
    covered = torch.stack([w["valid"] for w in warped]).any(0)  # (B, 1, H, W)
    near = torch.stack([w["valid"] & w["near"] for w in warped]).any(0)
    label = total.argmax(1)  # (B, H, W)
    return torch.where((covered & ~near).squeeze(1), label, ignore_index)


def photometric_consistency(rgb: torch.Tensor, seg: torch.Tensor, warped: list[dict], alpha: float) -> torch.Tensor:
    """L_DG: photometric loss between e and each warped neighbour where the warp is valid, away from boundaries and
    where the warped segmentation agrees with e's own (``seg``, (B, H, W)); pixel-weighted over neighbours."""
    total, count = rgb.new_zeros(()), rgb.new_zeros(())
    for w in warped:
        mask = w["valid"] & ~w["near"] & (w["prob"].argmax(1) == seg).unsqueeze(1)  # (B, 1, H, W)
        n = mask.sum()
        total = total + photometric_loss(w["rgb"], rgb, mask, alpha) * n
        count = count + n
    return total / count.clamp_min(1)


def to_unit_rgb(image: torch.Tensor) -> torch.Tensor:
    """ImageNet-normalised (B, 3, H, W) -> RGB in [0, 1] (float, for photometric losses)."""
    mean = image.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = image.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (image * std + mean).clamp(0, 1)


class CoverageMonitor:
    """L_G coverage (share of target pixels with a merged label) and the share of target frames without any valid
    neighbour warp; warns once when, over the first ``after`` target batches, coverage stays below ``threshold``.

    Args:
        threshold: coverage below this is a collapse (the paper's 25 % overlap with 4 neighbours gives far more).
        after: target batches accumulated before judging (one batch at a sequence's end may be poor).
    """

    def __init__(self, threshold: float = 0.05, after: int = 10):
        self.threshold, self.after = threshold, after
        self.pixels = self.covered = self.frames = self.lonely = 0
        self.batches, self.warned = 0, False

    def update(self, label: torch.Tensor, warped: list[dict], ignore_index: int = 255) -> dict[str, float]:
        """Per-batch ``geo_coverage`` and ``geo_frames_without_neighbor`` from the merged label (B, H, W)."""
        covered = int((label != ignore_index).sum())
        any_valid = torch.stack([w["valid"].flatten(1).any(1) for w in warped]).any(0)  # (B,)
        lonely = int((~any_valid).sum())
        self.pixels, self.covered = self.pixels + label.numel(), self.covered + covered
        self.frames, self.lonely, self.batches = self.frames + label.shape[0], self.lonely + lonely, self.batches + 1
        if not self.warned and self.batches >= self.after and self.covered < self.threshold * self.pixels:
            self.warned = True
            rank_zero_warn(
                f"S4-Net: L_G covers only {self.covered / self.pixels:.1%} of the target pixels over the first "
                f"{self.batches} target batches ({self.lonely} of {self.frames} frames have no valid neighbour warp); "
                "the geometric term is nearly empty, so this trains the source model alone. Check that the target "
                "poses are camera-to-world (invert world-to-camera poses), depth is in metres and intrinsics match "
                "the images; see train/geo_coverage."
            )
        return {"geo_coverage": covered / label.numel(), "geo_frames_without_neighbor": lonely / label.shape[0]}


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

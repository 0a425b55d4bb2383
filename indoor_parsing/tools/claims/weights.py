"""The fitted 3D teacher's weights, kept small enough to commit, so a new machine need not refit the teacher."""

from pathlib import Path

import torch

from indoor_parsing.distill.extract import file_sha256
from indoor_parsing.io import atomic_path

TEACHER_WEIGHTS = "teacher3d.ckpt"  # under --out: the fitted teacher's weights, committed


def keep_weights(ckpt: Path, out: Path) -> str:
    """A Lightning checkpoint without optimiser, scheduler and loop state (loadable by ``load_from_checkpoint``),
    written atomically to ``out``; returns its sha256."""
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    keep = {k: state[k] for k in ("state_dict", "hyper_parameters", "pytorch-lightning_version") if k in state}
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        torch.save(keep, tmp)
    return file_sha256(out)

"""Per-scene frame sequences and the neighbour lookup used by multi-view methods."""

from collections import defaultdict

import numpy as np
import torch

from indoor_parsing.data.layout import Frame


class SequenceIndex:
    """Frames grouped by (scene, sequence), ordered by their position in the sequence.

    Args:
        frames: frames of one split (indices below refer to positions in this list).
    """

    def __init__(self, frames: list[Frame]):
        groups: dict[tuple[str, str], list[int]] = defaultdict(list)
        for i, f in enumerate(frames):
            groups[(f.scene, f.sequence)].append(i)
        self.sequences = {k: sorted(v, key=lambda i: frames[i].index) for k, v in groups.items()}
        self.position = {i: (k, p) for k, seq in self.sequences.items() for p, i in enumerate(seq)}

    def neighbors(self, i: int, window: int | None) -> list[int]:
        """Frames of the same sequence within ``window`` positions of frame ``i`` (None: all), excluding ``i``."""
        key, p = self.position[i]
        seq = self.sequences[key]
        lo, hi = (0, len(seq)) if window is None else (max(0, p - window), min(len(seq), p + window + 1))
        return [seq[q] for q in range(lo, hi) if q != p]

    def sampler(self, count: int, window: int | None, candidates=None):
        """A callable ``i -> count`` neighbour indices drawn at random without repetition (torch RNG, so per-worker
        seeded).

        A frame with fewer than ``count`` candidates gets every candidate once and ``i`` itself in the remaining slots
        (a batch needs equal counts); the dataset marks such slots ``usable = False``, so they carry no signal.

        Args:
            count: neighbour slots per sample.
            window: sequence positions searched on either side (None: the whole sequence).
            candidates: optional ``i -> list[int]`` that replaces the window lookup (e.g. an overlap filter).
        """

        def draw(i: int) -> list[int]:
            pool = [j for j in (candidates(i) if candidates is not None else self.neighbors(i, window)) if j != i]
            pick = [pool[int(k)] for k in torch.randperm(len(pool))[:count]]
            return pick + [i] * (count - len(pick))

        return draw

    def __len__(self) -> int:
        return len(self.sequences)

    def lengths(self) -> np.ndarray:
        return np.asarray([len(v) for v in self.sequences.values()])

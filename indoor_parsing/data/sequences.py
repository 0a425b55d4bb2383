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

    def neighbors(self, i: int, window: int) -> list[int]:
        """Frames of the same sequence within ``window`` positions of frame ``i`` (excluding ``i``)."""
        key, p = self.position[i]
        seq = self.sequences[key]
        return [seq[q] for q in range(max(0, p - window), min(len(seq), p + window + 1)) if q != p]

    def sampler(self, count: int, window: int, candidates=None):
        """A callable ``i -> count`` neighbour indices drawn at random (torch RNG, so per-worker seeded).

        Args:
            count: neighbours per sample; frames with fewer candidates repeat some (a sample always has ``count``).
            window: sequence positions searched on either side.
            candidates: optional ``i -> list[int]`` that replaces the window lookup (e.g. an overlap filter).
        """

        def draw(i: int) -> list[int]:
            pool = candidates(i) if candidates is not None else self.neighbors(i, window)
            if not pool:
                return [i] * count  # the frame itself: warping it onto itself carries no extra signal
            pick = torch.randint(0, len(pool), (count,)) if len(pool) < count else torch.randperm(len(pool))[:count]
            return [pool[int(k)] for k in pick]

        return draw

    def __len__(self) -> int:
        return len(self.sequences)

    def lengths(self) -> np.ndarray:
        return np.asarray([len(v) for v in self.sequences.values()])

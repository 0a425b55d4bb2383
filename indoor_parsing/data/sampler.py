"""A sampler whose order *and* per-sample augmentation seeds are fixed by (seed, epoch).

It yields ``(index, sample_seed)`` pairs; FrameDataset seeds its augmentation from ``sample_seed``. A run resumed
from an epoch-boundary checkpoint therefore sees exactly the batches an uninterrupted run would have seen, with any
number of loader workers (worker seeds depend on global RNG state, which a resume does not reproduce).
"""

import numpy as np
from torch.utils.data import Sampler


class EpochSampler(Sampler):
    """Shuffled (or sequential) indices with per-sample seeds derived from ``(seed, epoch)``.

    Args:
        length: dataset length.
        shuffle: random order per epoch.
        seed: base seed (the run's seed).
    """

    def __init__(self, length: int, shuffle: bool, seed: int = 0):
        self.length = length
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self._epoch_was_set = False

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every training epoch."""
        self.epoch = epoch
        self._epoch_was_set = True

    def __len__(self) -> int:
        return self.length

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(self.length) if self.shuffle else np.arange(self.length)
        seeds = rng.integers(0, 2**31 - 1, self.length)
        if not self._epoch_was_set:
            # Wrapped (e.g. by Lightning's DistributedSamplerWrapper) nobody calls set_epoch: advance ourselves.
            self.epoch += 1
        self._epoch_was_set = False
        return iter([(int(i), int(s)) for i, s in zip(order, seeds, strict=True)])

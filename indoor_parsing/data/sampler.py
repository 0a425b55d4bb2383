"""A sampler whose order *and* per-sample augmentation seeds are fixed by (seed, epoch), sharded across processes.

It yields ``(index, sample_seed)`` pairs; FrameDataset seeds its augmentation from ``sample_seed``. A run resumed
from an epoch-boundary checkpoint therefore sees exactly the batches an uninterrupted run would have seen, with any
number of loader workers (worker seeds depend on global RNG state, which a resume does not reproduce).

Under DDP every process takes every ``num_replicas``-th position of the one epoch-wide list, so the processes together
see the frames (and augmentations) of a single-process epoch. Training lists are padded to a multiple of the
processes (every process needs the same number of steps); evaluation and prediction lists are not padded, so no frame
is scored or written twice (Lightning's own DistributedSampler would pad by repeating frames). It is a
``DistributedSampler``, so Lightning keeps it instead of wrapping it in its padding sampler.
"""

import numpy as np
import torch.distributed as dist
from torch.utils.data import DistributedSampler


def _world() -> tuple[int, int]:
    """(processes, this process's rank) of the initialised process group, else (1, 0)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


class EpochSampler(DistributedSampler):
    """Shuffled (or sequential) indices with per-sample seeds derived from ``(seed, epoch)``; this process's share.

    Args:
        length: dataset length.
        shuffle: random order per epoch; a shuffled (training) list is padded to a multiple of ``num_replicas``.
        seed: base seed (the run's seed).
        num_replicas: processes sharing the list; None = the initialised process group's size (1 without one).
        rank: this process's rank; None = the process group's rank (0 without one).
    """

    def __init__(self, length: int, shuffle: bool, seed: int = 0, num_replicas: int | None = None,
                 rank: int | None = None):  # fmt: skip
        world, own = _world()
        self.num_replicas = world if num_replicas is None else num_replicas
        self.rank = own if rank is None else rank
        if not 0 <= self.rank < self.num_replicas:
            raise ValueError(f"EpochSampler: rank {self.rank} outside [0, {self.num_replicas})")
        if not shuffle and 0 < length < self.num_replicas:
            # A process without a single frame would skip evaluation and leave the others waiting in the metric sync.
            raise ValueError(
                f"EpochSampler: {length} evaluation frame(s) cannot be shared by {self.num_replicas} processes; "
                "use fewer devices or a larger split"
            )
        self.length = length
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.drop_last = False
        self._epoch_was_set = False
        self.total_size = -(-length // self.num_replicas) * self.num_replicas if shuffle else length
        self.num_samples = len(range(self.rank, self.total_size, self.num_replicas))

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every epoch."""
        self.epoch = epoch
        self._epoch_was_set = True

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(self.length) if self.shuffle else np.arange(self.length)
        seeds = rng.integers(0, 2**31 - 1, self.length)
        if not self._epoch_was_set:
            # Iterated outside a Trainer (nobody calls set_epoch): advance ourselves.
            self.epoch += 1
        self._epoch_was_set = False
        # Training only: the list is extended by repeating it from its start (as DistributedSampler pads).
        order, seeds = np.resize(order, self.total_size), np.resize(seeds, self.total_size)
        mine = slice(self.rank, self.total_size, self.num_replicas)
        return iter([(int(i), int(s)) for i, s in zip(order[mine], seeds[mine], strict=True)])

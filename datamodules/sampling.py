"""A shuffling sampler whose order depends only on ``(seed, epoch)``.

Lightning calls ``set_epoch`` on a loader's sampler at the start of every epoch, so a run
resumed from a checkpoint at epoch ``e`` sees the same order in epoch ``e`` as an uninterrupted
run with the same seed; a ``DataLoader(shuffle=True)`` draws from a random state that a
checkpoint does not hold.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import Dataset, DistributedSampler, Sampler


class EpochShuffleSampler(Sampler[int]):
    """A permutation of ``range(length)`` drawn from ``seed + epoch``."""

    def __init__(self, length: int, seed: int = 0) -> None:
        if isinstance(length, bool) or not isinstance(length, int) or length < 0:
            raise ValueError(f"length must be an int >= 0, got {length!r}")
        self.length, self.seed, self.epoch = length, int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.length, generator=generator).tolist())

    def __len__(self) -> int:
        return self.length


def training_sampler(dataset: Dataset, shuffle: bool, seed: int) -> Sampler[int] | None:
    """The training loader's sampler: :class:`EpochShuffleSampler` (or None, in order) in one
    process; under ``torch.distributed`` a ``DistributedSampler`` with the same ``(seed,
    epoch)`` permutation, each rank taking every ``world_size``-th item of it, so the ranks'
    batches together are the one-process batches (Lightning keeps a sampler it is given)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized() \
            and torch.distributed.get_world_size() > 1:
        return DistributedSampler(dataset, shuffle=shuffle, seed=seed)
    return EpochShuffleSampler(len(dataset), seed) if shuffle else None

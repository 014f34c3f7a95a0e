"""Data order keyed on the iteration number, so a resumed run sees exactly the batches it would have seen.

Iteration ``i`` of a stage belongs to epoch ``i // iters_per_epoch``; each epoch is a permutation drawn
from ``(seed, stage, epoch)``, and each item carries its own seed ``(seed, stage, i, slot)`` that drives
its random crop and augmentation. Nothing depends on how many iterations ran before in this process, on
the number of DataLoader workers or on the number of DDP ranks: rank ``r`` of ``W`` takes the ``r``-th
contiguous share of the same global batch. (A ``DistributedSampler`` shards by epoch, not by iteration,
and would not make a resume mid-epoch exact.)
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sized
from typing import Any, cast

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

_STAGE_IDS = {"pretrain": 1, "gan": 2}


def _mix(*parts: int) -> int:
    return int(np.random.SeedSequence([p & 0xFFFFFFFF for p in parts]).generate_state(1, np.uint64)[0] >> 1)


def dataset_size(dataset: Dataset[Any]) -> int:
    """``len(dataset)``: torch's ``Dataset`` type does not declare ``__len__``, ours all have it."""
    return len(cast(Sized, dataset))


def iters_per_epoch(num_items: int, batch_size: int) -> int:
    """Full global batches per pass over the data (at least one; small sets repeat within a batch)."""
    return max(1, num_items // batch_size)


class IterationBatchSampler:
    """Infinite batch sampler starting at ``start_iter``; yields lists of ``(index, item_seed)``."""

    def __init__(
        self,
        *,
        num_items: int,
        batch_size: int,
        seed: int,
        stage: str,
        start_iter: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if num_items < 1:
            raise ValueError("the training set is empty")
        if batch_size % world_size:
            raise ValueError(f"batch_size {batch_size} is not divisible by the {world_size} processes")
        self.num_items = num_items
        self.batch_size = batch_size
        self.seed = seed
        self.stage_id = _STAGE_IDS[stage]
        self.start_iter = start_iter
        self.rank = rank
        self.world_size = world_size
        self.per_epoch = iters_per_epoch(num_items, batch_size)
        self._perm_epoch = -1
        self._perm: list[int] = []

    def global_batch(self, iteration: int) -> list[tuple[int, int]]:
        epoch, pos = divmod(iteration, self.per_epoch)
        if epoch != self._perm_epoch:
            g = torch.Generator().manual_seed(_mix(self.seed, self.stage_id, epoch))
            perm = torch.randperm(self.num_items, generator=g).tolist()
            reps = -(-self.batch_size // self.num_items)  # a set smaller than a batch repeats
            self._perm = (perm * reps) if reps > 1 else perm
            self._perm_epoch = epoch
        idx = self._perm[pos * self.batch_size : (pos + 1) * self.batch_size]
        return [(i, _mix(self.seed, self.stage_id, iteration, slot)) for slot, i in enumerate(idx)]

    def local_batch(self, iteration: int) -> list[tuple[int, int]]:
        share = self.batch_size // self.world_size
        return self.global_batch(iteration)[self.rank * share : (self.rank + 1) * share]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        it = self.start_iter
        while True:
            yield self.local_batch(it)
            it += 1


class SeededItems(Dataset[Any]):
    """Wraps a dataset so that item ``(index, seed)`` is produced with all random state seeded from seed.

    Datasets keeping their own generators (albumentations ``Compose``) are reached through their
    ``reseed(seed)`` method when they have one; global python/numpy/torch generators are seeded too (and
    restored afterwards in the main process, where they also drive training).
    """

    def __init__(self, base: Dataset[Any]) -> None:
        self.base = base

    def __len__(self) -> int:
        return dataset_size(self.base)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        index, seed = key
        in_main = get_worker_info() is None
        if in_main:
            saved = (random.getstate(), np.random.get_state(), torch.get_rng_state())
        try:
            random.seed(seed)
            np.random.seed(seed % (1 << 32))
            torch.default_generator.manual_seed(seed)  # CPU only: CUDA generators stay untouched
            reseed = getattr(self.base, "reseed", None)
            if callable(reseed):
                reseed(seed)
            return self.base[index]
        finally:
            if in_main:
                random.setstate(saved[0])
                np.random.set_state(saved[1])
                torch.set_rng_state(saved[2])

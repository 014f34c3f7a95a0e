"""Real-ESRGAN's training-pair pool: batches leave through a shuffled pool, so degradations mix.

Every item of one of our batches comes from its own degradation draw already; the pool also mixes pairs
across iterations (and, where a degradation ran per batch, across batches), as Real-ESRGAN's
``_dequeue_and_enqueue`` does. The first ``size / batch`` iterations fill the pool and train on their own
batches; after that each iteration shuffles the pool with a generator seeded from (seed, iteration),
trains on the first ``batch`` pairs and puts its fresh batch in their place. The pool is part of the
training state, so a resumed run sees the same batches.
"""

from __future__ import annotations

from typing import Any

import torch


class PairPool:
    """A fixed-size pool of training pairs (every tensor key of a batch, e.g. ``lr``, ``hr``, ``hr_usm``)."""

    def __init__(self, *, size: int, batch_size: int, seed: int) -> None:
        if batch_size < 1 or size < batch_size or size % batch_size:
            raise ValueError(f"pool size {size} must be a positive multiple of the batch size {batch_size}")
        self.size = size
        self.batch_size = batch_size
        self.seed = seed
        self.filled = 0
        self._store: dict[str, torch.Tensor] = {}

    def __call__(self, batch: dict[str, torch.Tensor], *, iteration: int) -> dict[str, torch.Tensor]:
        """The batch to train on at ``iteration`` (the input batch itself while the pool fills)."""
        tensors = {k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}
        b = next(iter(tensors.values())).shape[0]
        if b != self.batch_size:
            raise ValueError(f"pool: batch of {b} pairs, expected {self.batch_size}")
        if self.filled < self.size:
            for key, value in tensors.items():
                if key not in self._store:
                    self._store[key] = value.new_empty((self.size, *value.shape[1:]))
                self._store[key][self.filled : self.filled + b] = value.detach()
            self.filled += b
            return batch
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + iteration)
        order = torch.randperm(self.size, generator=g).to(next(iter(self._store.values())).device)
        out: dict[str, Any] = dict(batch)
        for key, value in tensors.items():
            pool = self._store[key][order]  # shuffled copy
            out[key] = pool[:b].clone()
            pool[:b] = value.detach()
            self._store[key] = pool
        return out

    def state_dict(self) -> dict[str, Any]:
        store = {k: v.cpu() for k, v in self._store.items()}
        return {"size": self.size, "filled": self.filled, "store": store}

    def load_state_dict(self, state: dict[str, Any], *, device: torch.device | None = None) -> None:
        if state["size"] != self.size:
            raise ValueError(f"pool: checkpoint has a pool of {state['size']} pairs, the config {self.size}")
        self.filled = int(state["filled"])
        self._store = {k: v.to(device) if device is not None else v for k, v in state["store"].items()}

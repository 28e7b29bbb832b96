"""`SurpriseModule`: the outer loop of the detector — the memory's keys, initial weights and
gates are learned on a first stretch of the stream so that the memory, writing row after row,
predicts the next row well (the paper's outer loop around the test-time inner loop)."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch import Tensor
from torch.utils.data import IterableDataset

from .network import SurpriseMemory


class FirstStretch(IterableDataset):
    """The first stretch of every lane, ``values (C, T)`` and ``features (C, T, F)``, as one
    batch per epoch."""

    items_are_batches = True  # a loader passes items through as they are

    def __init__(self, values: Tensor, features: Tensor | None) -> None:
        self.values, self.features = values, features

    def __len__(self) -> int:
        return 1

    def __iter__(self):
        yield {"values": self.values, "features": self.features}


class SurpriseModule(pl.LightningModule):
    """Learns :class:`SurpriseMemory` on a stretch: the loss is the mean squared momentary
    error over the stretch (after ``burn_in`` rows), back-propagated through every write."""

    def __init__(self, context: int = 16, n_features: int = 0, key_dim: int = 16,
                 memory_depth: int = 2, memory_hidden: int = 32, chunk_size: int = 8,
                 max_lr: float = 1.0, lr: float = 1e-2, burn_in: int = 16) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = SurpriseMemory(context, n_features, key_dim, memory_depth, memory_hidden,
                                  chunk_size, max_lr)

    def training_step(self, batch: dict[str, Tensor], batch_index: int) -> Tensor:
        values = batch["values"]
        state = self.net.initial_state(values[:, 0])
        errors, _ = self.net(values, state, batch["features"])  # (C, T)
        loss = errors[:, self.hparams.burn_in:].square().mean()
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)

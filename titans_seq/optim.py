"""The optimiser every titans_seq LightningModule uses: AdamW, linear warm-up, cosine decay."""

from __future__ import annotations

import math

import lightning.pytorch as pl
import torch


def warmup_cosine_adamw(module: pl.LightningModule, lr: float, weight_decay: float,
                        warmup_fraction: float) -> dict:
    """``configure_optimizers``' answer: AdamW over the trainable parameters (no decay on
    biases, norms and gates, i.e. parameters of fewer than 2 dims; frozen ones left out), a
    linear warm-up over ``warmup_fraction`` of the steps the Trainer will take, then cosine
    decay to 0, stepped per batch."""
    decay, no_decay = [], []
    for parameter in module.parameters():
        if parameter.requires_grad:
            (no_decay if parameter.dim() < 2 else decay).append(parameter)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay},
         {"params": no_decay, "weight_decay": 0.0}], lr=lr)
    total = max(1, int(module.trainer.estimated_stepping_batches))
    warm = max(1, int(total * warmup_fraction))

    def schedule(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = min(1.0, (step - warm) / max(1, total - warm))
        return 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    return {"optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

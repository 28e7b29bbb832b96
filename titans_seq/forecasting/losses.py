"""Training losses of the forecasting head and the pinball metric torchmetrics lacks."""

from __future__ import annotations

from typing import Literal, Sequence

import torch
from torch import Tensor
from torchmetrics import Metric

LossName = Literal["mse", "mae", "quantile"]


def pinball(forecast: Tensor, target: Tensor, quantiles: Tensor) -> Tensor:
    """Pinball (quantile) loss per element: ``forecast (..., Q)``, ``target (...)``."""
    error = target.unsqueeze(-1) - forecast
    return torch.maximum(quantiles * error, (quantiles - 1) * error)


def forecast_loss(name: LossName, forecast: Tensor, target: Tensor, observed: Tensor,
                  quantiles: Sequence[float] | None = None) -> Tensor:
    """Mean loss over observed target values (missing ones do not count)."""
    weight = observed.to(forecast.dtype)
    if name == "quantile":
        levels = torch.as_tensor(quantiles, dtype=forecast.dtype, device=forecast.device)
        per_element = pinball(forecast, target, levels).mean(-1)
    elif name == "mse":
        per_element = (forecast - target) ** 2
    elif name == "mae":
        per_element = (forecast - target).abs()
    else:
        raise ValueError(f"loss must be 'mse', 'mae' or 'quantile', got {name!r}")
    return (per_element * weight).sum() / weight.sum().clamp_min(1.0)


class PinballLoss(Metric):
    """Mean pinball loss over all elements and quantiles (synchronised across processes)."""

    full_state_update = False

    def __init__(self, quantiles: Sequence[float], **kwargs) -> None:
        super().__init__(**kwargs)
        self.register_buffer("levels", torch.as_tensor(list(quantiles), dtype=torch.float32))
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64),
                       dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, forecast: Tensor, target: Tensor) -> None:
        """``forecast (N, Q)`` and ``target (N,)``: observed elements only."""
        losses = pinball(forecast.float(), target.float(), self.levels)
        self.total += losses.sum().double()
        self.count += losses.numel()

    def compute(self) -> Tensor:
        return (self.total / self.count.clamp_min(1)).float()

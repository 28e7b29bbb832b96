"""Reversible instance normalisation (RevIN, Kim et al., ICLR 2022), aware of missing values."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class RevIN(nn.Module):
    """Standardise each window's channels by their own observed mean and std, then undo it on
    the forecast, so a model sees level- and scale-free shapes (and a shift in level after
    training is no extrapolation).

    ``normalise(x, observed)`` with ``x, observed (..., T, C)`` returns the normalised values
    (0 where unobserved) and ``(mean, std)`` of shape ``(..., 1, C)``; ``denormalise`` maps
    ``(..., H, C[, Q])`` back. ``affine=True`` adds RevIN's learned per-channel affine map.
    """

    def __init__(self, channels: int, affine: bool = False, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.affine = affine
        if affine:
            self.weight = nn.Parameter(torch.ones(channels))
            self.bias = nn.Parameter(torch.zeros(channels))

    def normalise(self, x: Tensor, observed: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        weight = observed.to(x.dtype)
        count = weight.sum(-2, keepdim=True).clamp_min(1.0)
        mean = (x * weight).sum(-2, keepdim=True) / count  # (..., 1, C)
        var = (((x - mean) * weight) ** 2).sum(-2, keepdim=True) / count
        std = torch.sqrt(var + self.eps)
        normalised = (x - mean) / std
        if self.affine:
            normalised = normalised * self.weight + self.bias
        return normalised * weight, (mean, std)

    def denormalise(self, y: Tensor, stats: tuple[Tensor, Tensor]) -> Tensor:
        mean, std = stats
        extra = y.dim() - mean.dim()  # quantile axis after the channels
        if self.affine:
            weight = self.weight.view(-1, *([1] * extra))
            bias = self.bias.view(-1, *([1] * extra))
            weight = torch.where(weight.abs() < self.eps, torch.full_like(weight, self.eps),
                                 weight)
            y = (y - bias) / weight
        mean = mean.view(*mean.shape, *([1] * extra))
        std = std.view(*std.shape, *([1] * extra))
        return y * std + mean

"""Causal depthwise 1-D convolution that can be streamed (§4.4: after the q, k, v projections)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .native import native_causal_conv


class CausalDepthwiseConv1d(nn.Module):
    """Depthwise convolution over time where output t sees inputs ``t − kernel_size + 1 … t``.

    ``forward(x, tail=None, mask=None) -> (y, tail)``: ``x (B, T, channels)``; ``tail`` holds the
    last ``kernel_size − 1`` valid inputs of the previous call (zeros before the first), so a
    sequence fed in pieces gives the same output as fed whole.
    """

    def __init__(self, channels: int, kernel_size: int = 4) -> None:
        super().__init__()
        if kernel_size < 1:
            raise ValueError(f"kernel_size must be >= 1, got {kernel_size}")
        self.channels = channels
        self.kernel_size = kernel_size
        self.weight = nn.Parameter(torch.empty(channels, 1, kernel_size))
        self.bias = nn.Parameter(torch.zeros(channels))
        nn.init.uniform_(self.weight, -1 / math.sqrt(kernel_size), 1 / math.sqrt(kernel_size))

    def forward(self, x: Tensor, tail: Tensor | None = None, mask: Tensor | None = None,
                native: bool = False) -> tuple[Tensor, Tensor]:
        """``native=True`` runs the convolution through the native CPU kernel (float32 and
        float64 CPU inputs; others take ``F.conv1d``): same values to rounding."""
        batch, length, channels = x.shape
        history = self.kernel_size - 1
        if tail is None:
            tail = x.new_zeros(batch, history, channels)
        extended = torch.cat([tail.to(x.dtype), x], dim=1)  # (B, K − 1 + T, channels)
        if native and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
            y = native_causal_conv(extended, self.weight.to(x.dtype)[:, 0],
                                   self.bias.to(x.dtype))  # (B, T, channels)
        else:
            y = F.conv1d(extended.transpose(1, 2), self.weight.to(x.dtype),
                         self.bias.to(x.dtype), groups=channels).transpose(1, 2)  # (B, T, ch)
        # The new tail ends at each row's last valid input (padding is only at the end).
        valid_counts = mask.sum(1) if mask is not None else torch.full(
            (batch,), length, device=x.device)
        index = valid_counts[:, None] + torch.arange(history, device=x.device)[None, :]
        new_tail = extended.gather(1, index[:, :, None].expand(-1, -1, channels))
        return y, new_tail

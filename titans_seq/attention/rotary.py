"""Rotary position embedding (Su et al., 2021) at absolute positions, so a streamed call rotates
its tokens exactly as one call over the whole sequence would."""

from __future__ import annotations

import torch
from torch import Tensor


def apply_rotary(x: Tensor, positions: Tensor, base: float = 10000.0) -> Tensor:
    """Rotate ``x (B, H, T, D)`` (D even) by the angles of ``positions (B, T)``."""
    half = x.shape[-1] // 2
    frequencies = base ** (-torch.arange(half, device=x.device, dtype=torch.float32) / half)
    angles = positions.to(torch.float32)[:, None, :, None] * frequencies  # (B, 1, T, D/2)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    first, second = x[..., :half], x[..., half:]
    return torch.cat([first * cos - second * sin, first * sin + second * cos], dim=-1)

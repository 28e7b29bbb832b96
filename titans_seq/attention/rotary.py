"""Rotary position embedding (Su et al., 2021) at absolute positions, so a streamed call rotates
its tokens exactly as one call over the whole sequence would."""

from __future__ import annotations

import torch
from torch import Tensor


def apply_rotary(x: Tensor, positions: Tensor, base: float = 10000.0) -> Tensor:
    """Rotate ``x (B, H, T, D)`` (D even) by the angles of ``positions (B, T)``.

    Parameters
    ----------
    x : Tensor
        Queries or keys, ``(B, H, T, D)``.
    positions : Tensor
        Absolute integer positions, ``(B, T)``.
    base : float
        The frequency base.

    Returns
    -------
    Tensor
        ``x`` rotated pairwise (first half against second half), same shape and dtype.
    """
    half = x.shape[-1] // 2
    # float64 angles: in fp32, position 10⁶ would already shift scores by about 0.6 %.
    frequencies = base ** (-torch.arange(half, device=x.device, dtype=torch.float64) / half)
    angles = positions.to(torch.float64)[:, None, :, None] * frequencies  # (B, 1, T, D/2)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    first, second = x[..., :half], x[..., half:]
    return torch.cat([first * cos - second * sin, first * sin + second * cos], dim=-1)

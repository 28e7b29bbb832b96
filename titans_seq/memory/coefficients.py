"""Closed-form coefficients of momentum and forgetting inside a chunk (Eqs. 13, 16 and 18).

Inside one chunk the gradients ``u_i`` are all taken at the chunk-start weights, so the
recurrence ``S_t = η_t S_{t−1} − θ_t u_i``, ``W_t = (1 − α_t) W_{t−1} + m_t S_t`` is linear and
unrolls to (local positions 1…C, ``W_0, S_0`` the state before the chunk)::

    S_t = E[t, 0] S_0 − Σ_{i≤t} E[t, i] θ_i u_i
    W_t = B[t, 0] W_0 + G[t, 0] S_0 − Σ_{i≤t} G[t, i] θ_i u_i

with ``E[t, i] = Π_{j=i+1..t} η_j``, ``B[t, r] = Π_{j=r+1..t} (1 − α_j)`` and
``G[t, i] = Σ_{r=i..t} m_r B[t, r] E[r, i]`` (``G = B · diag(m) · E``, a small matmul).
``m_t`` is 1 for real tokens and 0 for padding, whose gates are also neutralised
(θ = 0, η = 1, α = 0), so that a padded step is an exact identity.

The products are built from segment sums of logarithms (no division of cumulative products),
so a gate of exactly 0 (η = 0 turns momentum off) is exact and stable.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def segment_log_sums(log_values: Tensor) -> Tensor:
    """``out[..., t, i] = Σ_{j=i+1..t} x_j`` for ``t ≥ i`` and ``−inf`` above the diagonal.

    ``log_values (..., L)`` → ``(..., L, L)``. Built by a masked cumulative sum rather than a
    difference of cumulative sums, so no precision is lost to cancellation.
    """
    length = log_values.shape[-1]
    lower = torch.ones(length, length, dtype=torch.bool, device=log_values.device).tril()
    strictly_lower = lower.tril(-1)
    repeated = log_values.unsqueeze(-1).expand(*log_values.shape, length)  # (..., t, i) = x_t
    sums = repeated.masked_fill(~strictly_lower, 0).cumsum(dim=-2)
    return sums.masked_fill(~lower, float("-inf"))


@dataclass
class ChunkCoefficients:
    """Per-chunk coefficients over the N chunks of a call (B, H, N, ...).

    The memory is kept as a pair ``[W; S]`` per layer, so each coefficient comes as a pair too.
    """

    token_weights: Tensor   # (B, H, N, C, C)     G[t, i] θ_i: weight of u_i in W_t
    read_weights: Tensor    # (B, H, N, C, 2, 1)  [B[t, 0], G[t, 0]]: weights of W_0, S_0 in W_t
    # (B, H, N, 2, 2): [[B[C,0], G[C,0]], [0, E[C,0]]], maps [W_0; S_0] to [W_C; S_C]
    transition: Tensor
    # (B, H, N, 2, 1, C): −[G[C, i] θ_i, E[C, i] θ_i], the weights of u_i in W_C and S_C
    update_weights: Tensor

    def split(self, chunks_per_block: int) -> list["ChunkCoefficients"]:
        """The coefficients of consecutive blocks of chunks (a split's backward is one cat)."""
        fields = (self.token_weights, self.read_weights, self.transition, self.update_weights)
        return [ChunkCoefficients(*parts) for parts in
                zip(*(f.split(chunks_per_block, dim=2) for f in fields))]


def chunk_coefficients(theta: Tensor, eta: Tensor, alpha: Tensor, valid: Tensor
                       ) -> ChunkCoefficients:
    """Coefficients for gates ``(B, H, N, C)`` and ``valid (B, 1 or H, N, C)`` (bool)."""
    tiny = torch.finfo(theta.dtype).tiny  # log(0) would give NaN gradients; tiny**k is 0 enough
    theta = theta * valid
    eta = torch.where(valid, eta, torch.ones_like(eta))
    keep = torch.where(valid, 1 - alpha, torch.ones_like(alpha))

    # Index 0 stands for the state before the chunk: prepend a neutral step.
    def with_start(x: Tensor) -> Tensor:
        return torch.nn.functional.pad(x, (1, 0))
    momentum_products = segment_log_sums(with_start(eta.clamp_min(tiny).log())).exp()  # E
    decay_products = segment_log_sums(with_start(keep.clamp_min(tiny).log())).exp()  # B
    written = with_start(valid.to(theta.dtype))  # m_r, 0 for the start index
    accumulated = decay_products @ (written.unsqueeze(-1) * momentum_products)  # G (.., C+1, C+1)

    token_weights = accumulated[..., 1:, 1:] * theta.unsqueeze(-2)
    zero = torch.zeros_like(theta[..., 0])
    transition = torch.stack([
        torch.stack([decay_products[..., -1, 0], accumulated[..., -1, 0]], dim=-1),
        torch.stack([zero, momentum_products[..., -1, 0]], dim=-1)], dim=-2)
    return ChunkCoefficients(
        token_weights=token_weights,
        read_weights=torch.stack([decay_products[..., 1:, 0], accumulated[..., 1:, 0]],
                                 dim=-1).unsqueeze(-1),
        transition=transition,
        update_weights=-torch.stack([token_weights[..., -1, :],
                                     momentum_products[..., -1, 1:] * theta],
                                    dim=-2).unsqueeze(-2),
    )

"""The per-token reference of the memory recurrence: slow, plain, and the oracle for the fast path.

It follows the paper's equations one token at a time, and takes the inner gradient with
``torch.func.grad`` rather than the closed form, so that it checks the chunked path's algebra
independently.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from .chunked import clip_factor
from .mlp import memory_mlp
from .state import MemoryState
from .validation import check_scan_inputs, compute_dtype


def _token_loss(weights: tuple[Tensor, ...], key: Tensor, value: Tensor) -> Tensor:
    """``‖M_W(k) − v‖²`` summed over features (Eq. 12) for one token of one head."""
    return ((memory_mlp(key, weights) - value) ** 2).sum()


# Gradient with respect to the weights, mapped over heads and then over the batch.
_per_row_gradient = torch.func.vmap(torch.func.vmap(torch.func.grad(_token_loss)))


def _where(condition: Tensor, new: tuple[Tensor, ...], old: tuple[Tensor, ...]
           ) -> tuple[Tensor, ...]:
    """Row-wise select: ``condition`` is (B,), the tensors (B, H, D_in, D_out)."""
    return tuple(torch.where(condition[:, None, None, None], n, o) for n, o in zip(new, old))


def memory_scan_reference(q: Tensor, k: Tensor, v: Tensor, theta: Tensor, eta: Tensor,
                          alpha: Tensor, weights: Sequence[Tensor], chunk_size: int = 16,
                          state: MemoryState | None = None, mask: Tensor | None = None, *,
                          max_surprise_norm: float | None = None
                          ) -> tuple[Tensor, MemoryState]:
    """Per-token reference of :func:`titans_seq.memory.memory_scan` (same signature and result).

    For every token ``t`` of a row (``W_c`` = the weights at the start of its chunk):

    - ``u_t = ∂‖M_{W_c}(k_t) − v_t‖² / ∂W``      (Eqs. 12 and 16), times
      ``min(1, τ / ‖u_t‖)`` (norm over all layers) with ``max_surprise_norm=τ``
    - ``S_t = η_t S_{t−1} − θ_t u_t``            (Eqs. 10 and 18)
    - ``W_t = (1 − α_t) W_{t−1} + S_t``          (Eq. 13)
    - ``y_t = M_{W_t}(q_t)``                     (Eq. 15, read after the update)

    Padded tokens (``mask`` False) leave the state untouched and give ``y_t = 0``.
    """
    check_scan_inputs(q, k, v, theta, eta, alpha, weights, chunk_size, state, mask,
                      max_surprise_norm=max_surprise_norm)
    dtype = compute_dtype(q, k, v, theta, eta, alpha, *weights)
    q, k, v, theta, eta, alpha = (t.to(dtype) for t in (q, k, v, theta, eta, alpha))
    batch, _, length, _ = k.shape
    if state is None:
        state = MemoryState.initial(weights, batch, chunk_size, dtype)
    if mask is None:
        mask = torch.ones(batch, length, dtype=torch.bool, device=k.device)

    current, momentum, chunk_start = state.weights, state.momentum, state.chunk_start_weights
    current, momentum, chunk_start = (tuple(w.to(dtype) for w in group)
                                      for group in (current, momentum, chunk_start))
    tokens_seen = state.tokens_seen.clone()
    outputs = []
    with torch.autocast(q.device.type, enabled=False):
        for t in range(length):
            valid = mask[:, t]
            # A token that opens a chunk takes its gradient at the current weights.
            opens_chunk = tokens_seen % chunk_size == 0
            gradient_point = _where(opens_chunk, current, chunk_start)
            gradient = _per_row_gradient(gradient_point, k[:, :, t], v[:, :, t])
            if max_surprise_norm is not None:
                squared = sum(u.square().sum((-2, -1)) for u in gradient)  # (B, H)
                factor = clip_factor(squared, max_surprise_norm)[:, :, None, None]
                gradient = tuple(u * factor for u in gradient)

            def gate(g: Tensor) -> Tensor:
                return g[:, :, t, None, None]  # (B, H, 1, 1)
            new_momentum = tuple(gate(eta) * s - gate(theta) * u
                                 for s, u in zip(momentum, gradient))
            new_weights = tuple((1 - gate(alpha)) * w + s
                                for w, s in zip(current, new_momentum))
            output = memory_mlp(q[:, :, t, None, :], new_weights)[:, :, 0]  # (B, H, D_v)

            current = _where(valid, new_weights, current)
            momentum = _where(valid, new_momentum, momentum)
            chunk_start = _where(valid, gradient_point, chunk_start)
            tokens_seen = tokens_seen + valid.long()
            outputs.append(output * valid[:, None, None])

    # A state whose next token opens a chunk holds the current weights as its chunk start.
    chunk_start = _where(tokens_seen % chunk_size == 0, current, chunk_start)
    y = torch.stack(outputs, dim=2)  # (B, H, T, D_v)
    return y, MemoryState(current, momentum, chunk_start, tokens_seen, chunk_size)

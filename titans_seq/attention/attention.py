"""Multi-head attention with a persistent prefix and a streaming key/value window.

The MAG and MAL blocks use :class:`SlidingWindowAttention` directly; the MAC block uses its
projections and :meth:`Attention.attend` over its own segment buffer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..memory.validation import check_padding_mask, check_sequence
from .kernels import ALWAYS, BACKENDS, INVALID, attend
from .rotary import apply_rotary


@dataclass
class AttentionCache:
    """Streaming state of :class:`SlidingWindowAttention`: each row's last ``window − 1`` valid
    tokens (the most a future query can still see) and their absolute positions.

    The persistent tokens' keys are not kept here: they are parameters, so every call recomputes
    them (with current weights, and with gradients after ``detach``).
    """

    keys: Tensor  # (B, H, window − 1, D), rotated at their positions
    values: Tensor  # (B, H, window − 1, D)
    positions: Tensor  # (B, window − 1) int64, INVALID for empty slots
    tokens_seen: Tensor  # (B,) int64

    def detach(self) -> "AttentionCache":
        return AttentionCache(self.keys.detach(), self.values.detach(), self.positions,
                              self.tokens_seen)


class Attention(nn.Module):
    """Projections, rotary positions and the masked attention kernel shared by the variants."""

    def __init__(self, dim: int, heads: int, rotary: bool = True, backend: str = "auto") -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be divisible by attention heads ({heads})")
        if backend not in BACKENDS:
            raise ValueError(f"attention backend must be one of {BACKENDS}, got {backend!r}")
        self.heads, self.head_dim = heads, dim // heads
        if rotary and self.head_dim % 2:
            raise ValueError(f"rotary positions need an even head dim, got {self.head_dim}")
        self.rotary, self.backend = rotary, backend
        self.query = nn.Linear(dim, dim, bias=False)
        self.key_value = nn.Linear(dim, 2 * dim, bias=False)
        self.output = nn.Linear(dim, dim, bias=False)

    def _split_heads(self, x: Tensor) -> Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.heads, self.head_dim).transpose(1, 2)  # (B, H, T, D)

    def queries(self, x: Tensor, positions: Tensor) -> Tensor:
        """``x (B, T, dim)`` at ``positions (B, T)`` → ``(B, H, T, D)``."""
        q = self._split_heads(self.query(x))
        return apply_rotary(q, positions) if self.rotary else q

    def keys_values(self, x: Tensor, positions: Tensor | None) -> tuple[Tensor, Tensor]:
        """Keys and values ``(B, H, T, D)``; ``positions=None`` for position-free tokens."""
        k, v = self.key_value(x).chunk(2, dim=-1)
        k, v = self._split_heads(k), self._split_heads(v)
        if self.rotary and positions is not None:
            k = apply_rotary(k, positions)
        return k, v

    def attend(self, q: Tensor, k: Tensor, v: Tensor, query_positions: Tensor,
               key_positions: Tensor, window: int) -> Tensor:
        """Attention of ``q (B, H, T, D)`` over ``k, v (B, H, S, D)``, projected: (B, T, dim)."""
        out = attend(q, k, v, query_positions, key_positions, window, self.backend)
        batch, _, length, _ = out.shape
        return self.output(out.transpose(1, 2).reshape(batch, length, -1))  # (B, T, dim)


class SlidingWindowAttention(Attention):
    """Causal sliding-window attention over ``[P ‖ x]`` (the SW-Attn* of Eqs. 26 and 31).

    Each token sees itself and the ``window − 1`` tokens before it, plus the persistent tokens,
    which stay visible at every position (attention sinks, §3.3). Long inputs are processed in
    blocks of queries, so the cost is linear in T.
    """

    def __init__(self, dim: int, heads: int, window: int, rotary: bool = True,
                 backend: str = "auto") -> None:
        super().__init__(dim, heads, rotary, backend)
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be a positive int, got {window!r}")
        self.window = window

    def initial_cache(self, batch_size: int, reference: Tensor) -> AttentionCache:
        """An empty window for ``batch_size`` rows, on ``reference``'s device and dtype."""
        slots = self.window - 1
        empty = reference.new_zeros(batch_size, self.heads, slots, self.head_dim)
        positions = torch.full((batch_size, slots), INVALID, dtype=torch.long,
                               device=reference.device)
        tokens_seen = torch.zeros(batch_size, dtype=torch.long, device=reference.device)
        return AttentionCache(empty, empty, positions, tokens_seen)

    def forward(self, x: Tensor, cache: AttentionCache, mask: Tensor | None = None,
                prefix: Tensor | None = None, *,
                validate: bool = True) -> tuple[Tensor, AttentionCache]:
        """Attend over ``[prefix ‖ window ‖ x]``.

        Parameters
        ----------
        x : Tensor
            ``(B, T, dim)``, the tokens after the cache's.
        cache : AttentionCache
            From :meth:`initial_cache` or an earlier call.
        mask : Tensor, optional
            ``(B, T)`` bool, True = valid, padding only at the end of a row.
        prefix : Tensor, optional
            ``(1 or B, N_p, dim)``: the persistent tokens' inputs, visible to every query.
        validate : bool
            Check the inputs (reads tensor values; callers that have checked pass False).

        Returns
        -------
        y : Tensor
            ``(B, T, dim)``.
        cache : AttentionCache
            The window after each row's last valid token.
        """
        if validate:
            self._check_input(x, cache, mask)
        batch, length, _ = x.shape
        positions = cache.tokens_seen[:, None] + torch.arange(length, device=x.device)  # (B, T)
        q = self.queries(x, positions)
        k, v = self.keys_values(x, positions)  # (B, H, T, D)
        cache_keys, cache_values = cache.keys.to(k.dtype), cache.values.to(v.dtype)

        prefix_keys, prefix_values, prefix_positions = [cache_keys], [cache_values], \
            [cache.positions]
        if prefix is not None:
            sink_keys, sink_values = self.keys_values(prefix, None)  # (1 or B, H, N_p, D)
            sinks = sink_keys.shape[2]
            prefix_keys.insert(0, sink_keys.expand(batch, -1, -1, -1))
            prefix_values.insert(0, sink_values.expand(batch, -1, -1, -1))
            prefix_positions.insert(0, positions.new_full((batch, sinks), ALWAYS))
        prefix_keys = torch.cat(prefix_keys, dim=2)  # (B, H, N_p + window − 1, D)
        prefix_values = torch.cat(prefix_values, dim=2)
        prefix_positions = torch.cat(prefix_positions, dim=1)  # (B, N_p + window − 1)

        # Queries in blocks: a block sees the prefix and the new keys from window − 1 before it.
        block = max(self.window, 64)
        outputs = []
        for start in range(0, length, block):
            end = min(start + block, length)
            first_key = max(0, start - self.window + 1)
            keys = torch.cat([prefix_keys, k[:, :, first_key:end]], dim=2)  # (B, H, S, D)
            values = torch.cat([prefix_values, v[:, :, first_key:end]], dim=2)
            key_positions = torch.cat([prefix_positions, positions[:, first_key:end]], dim=1)
            outputs.append(self.attend(q[:, :, start:end], keys, values,
                                       positions[:, start:end], key_positions, self.window))
        y = torch.cat(outputs, dim=1) if len(outputs) > 1 else outputs[0]  # (B, T, dim)

        # The new window: each row's last window − 1 valid tokens of [cache ‖ new].
        valid = mask.sum(1) if mask is not None else positions.new_full((batch,), length)
        slots = self.window - 1
        index = torch.arange(slots, device=x.device)[None, :] + valid[:, None]  # (B, slots)
        all_keys = torch.cat([cache_keys, k], dim=2)  # (B, H, slots + T, D)
        all_values = torch.cat([cache_values, v], dim=2)
        all_positions = torch.cat([cache.positions, positions], dim=1)  # (B, slots + T)
        gather_index = index[:, None, :, None].expand(batch, self.heads, slots, self.head_dim)
        new_cache = AttentionCache(
            all_keys.gather(2, gather_index), all_values.gather(2, gather_index),
            all_positions.gather(1, index), cache.tokens_seen + valid)
        return y, new_cache

    def _check_input(self, x: Tensor, cache: AttentionCache, mask: Tensor | None) -> None:
        check_sequence(x, self.heads * self.head_dim)
        if not isinstance(cache, AttentionCache):
            raise TypeError("cache must be an AttentionCache (from initial_cache or forward)")
        if cache.keys.shape[0] != x.shape[0] or cache.keys.shape[2] != self.window - 1:
            raise ValueError(f"cache holds {cache.keys.shape[0]} rows × {cache.keys.shape[2]} "
                             f"slots; expected {x.shape[0]} × {self.window - 1} (window − 1)")
        if mask is not None:
            check_padding_mask(mask, *x.shape[:2])

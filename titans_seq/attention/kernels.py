"""The one attention computation every variant uses, on two backends with the same result.

Keys carry an integer position each. A query at absolute position ``p`` sees a key when

- the key is *always visible* (persistent tokens, MAC's retrieved memory tokens), or
- the key is positioned at ``s`` with ``0 <= p − s < window`` (causal, sliding window).

Empty cache slots carry :data:`INVALID`, so no query sees them. The rule is the same for
sliding-window attention (MAG, MAL) and MAC's segment attention (causal inside the segment:
every positioned key there belongs to the query's own segment, so ``window`` = segment length).

``"sdpa"`` builds the boolean mask and calls ``scaled_dot_product_attention``; ``"flex"``
expresses the same rule as a ``flex_attention`` ``mask_mod`` (block-sparse and fused on CUDA).
"""

from __future__ import annotations

import functools
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

ALWAYS = -1  # key position of always-visible tokens
INVALID = 2 ** 62  # key position of empty cache slots: "in the future" for every query

BACKENDS = ("auto", "sdpa", "flex")


def resolve_backend(backend: str, device: torch.device) -> str:
    """``"auto"`` is flex_attention on CUDA, SDPA elsewhere."""
    if backend == "auto":
        return "flex" if device.type == "cuda" else "sdpa"
    return backend


def visibility_mask(query_positions: Tensor, key_positions: Tensor, window: int) -> Tensor:
    """``(B, 1, T, S)`` bool from query positions ``(B, T)`` and key positions ``(B, S)``."""
    distance = query_positions[:, :, None] - key_positions[:, None, :]  # (B, T, S)
    positioned = (distance >= 0) & (distance < window) & (key_positions[:, None, :] >= 0)
    always = (key_positions == ALWAYS)[:, None, :]
    return (positioned | always)[:, None]  # (B, 1, T, S)


def attend(q: Tensor, k: Tensor, v: Tensor, query_positions: Tensor, key_positions: Tensor,
           window: int, backend: str = "sdpa") -> Tensor:
    """``softmax(q kᵀ / √D + mask) v`` under the visibility rule of this module.

    Parameters
    ----------
    q : Tensor
        Queries ``(B, H, T, D)``.
    k, v : Tensor
        Keys and values ``(B, H, S, D)``.
    query_positions : Tensor
        ``(B, T)`` int64 absolute positions of the queries.
    key_positions : Tensor
        ``(B, S)`` int64: a position, :data:`ALWAYS` or :data:`INVALID` per key.
    window : int
        A query at ``p`` sees positioned keys in ``(p − window, p]``.
    backend : {"auto", "sdpa", "flex"}
        See :func:`resolve_backend`. flex has no backward on CPU.

    Returns
    -------
    Tensor
        ``(B, H, T, D)``. Every query must see at least one key (its own position), which
        holds for the callers.
    """
    backend = resolve_backend(backend, q.device)
    if backend == "sdpa":
        mask = visibility_mask(query_positions, key_positions, window)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return _flex_attend(q, k, v, query_positions, key_positions, window)


def _flex_attend(q: Tensor, k: Tensor, v: Tensor, query_positions: Tensor,
                 key_positions: Tensor, window: int) -> Tensor:
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    def mask_mod(b, h, q_index, kv_index):
        query = query_positions[b, q_index]
        key = key_positions[b, kv_index]
        distance = query - key
        return (key == ALWAYS) | ((key >= 0) & (distance >= 0) & (distance < window))

    batch, _, length, _ = q.shape
    block_mask = create_block_mask(mask_mod, batch, None, length, k.shape[2], device=q.device,
                                   _compile=q.is_cuda)
    if q.is_cuda:
        return _compiled_flex()(q, k, v, block_mask=block_mask)
    with warnings.catch_warnings():  # eager flex on CPU: correct, unfused; used for tests
        warnings.filterwarnings("ignore", message=".*flex_attention called without torch.compile")
        return flex_attention(q, k, v, block_mask=block_mask)


@functools.cache
def _compiled_flex():
    """``torch.compile`` of flex_attention, built once; shapes that change between calls
    (streaming, the last short block) are traced dynamically after the first recompile."""
    from torch.nn.attention.flex_attention import flex_attention
    return torch.compile(flex_attention, dynamic=None)

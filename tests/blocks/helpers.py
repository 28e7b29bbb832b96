"""Tiny encoders for the block tests (float64 so equalities are tight)."""

from __future__ import annotations

import torch

from titans_seq import TitansEncoder

VARIANTS = ("mac", "mag", "mal", "lmm")


def tiny_encoder(variant, seed=0, dtype=torch.float64, **overrides):
    torch.manual_seed(seed)
    options = dict(dim=16, depth=2, heads=2, memory_heads=2, chunk_size=4, window=5,
                   segment_len=6, persistent_tokens=2, memory_tokens=2, ffn_mult=2.0)
    options.update(overrides)
    return TitansEncoder(variant, **options).to(dtype)


def run_in_pieces(encoder, x, cuts, state=None):
    bounds = [0, *cuts, x.shape[1]]
    outputs = []
    for start, end in zip(bounds[:-1], bounds[1:]):
        y, state = encoder(x[:, start:end], state)
        outputs.append(y)
    return torch.cat(outputs, dim=1), state

"""Persistent memory (the paper's §3.3, Eq. 19): learnable, input-independent tokens."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class PersistentMemory(nn.Module):
    """``N_p`` learnable tokens ``P = [p_1 … p_{N_p}]`` that a block prepends to its input.

    They hold task knowledge that does not depend on the input, and act as attention sinks.
    """

    def __init__(self, num_tokens: int, dim: int) -> None:
        super().__init__()
        if isinstance(num_tokens, bool) or not isinstance(num_tokens, int) or num_tokens < 1:
            raise ValueError(f"num_tokens must be a positive int, got {num_tokens!r}")
        self.tokens = nn.Parameter(torch.randn(num_tokens, dim) * 0.02)

    @property
    def num_tokens(self) -> int:
        return self.tokens.shape[0]

    def forward(self, batch_size: int) -> Tensor:
        """The tokens for ``batch_size`` rows: ``(B, N_p, dim)`` (an expand, gradients flow)."""
        return self.tokens.unsqueeze(0).expand(batch_size, -1, -1)

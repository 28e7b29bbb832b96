"""The memory MLP ``M_W(x) = silu(... silu(x @ W1) ...) @ WL`` (no bias), written functionally.

The weights are the memory's state, so the MLP is a function of them rather than a module.
"""

from __future__ import annotations

from typing import Sequence

import torch.nn.functional as F
from torch import Tensor


def memory_mlp(x: Tensor, weights: Sequence[Tensor]) -> Tensor:
    """Apply the memory MLP: ``x (..., D_in)`` with weights ``(..., D_in, D_out)`` per layer."""
    hidden = x
    for layer, weight in enumerate(weights):
        hidden = hidden @ weight
        if layer < len(weights) - 1:
            hidden = F.silu(hidden)
    return hidden

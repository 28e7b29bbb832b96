"""The state of the neural long-term memory: everything needed to resume a sequence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor


@dataclass
class MemoryState:
    """Per-row state of the memory recurrence (Eqs. 13-14 and 18 of the paper).

    Attributes
    ----------
    weights:
        The memory MLP's weights after the last token seen, one ``(B, H, D_in, D_out)``
        tensor per layer (``W_t``).
    momentum:
        The surprise momentum ``S_t``, same shapes as ``weights``.
    chunk_start_weights:
        The weights at the start of the chunk the next token falls into (``W_{t'}`` of Eq. 16):
        the point at which that token's gradient is taken. Equal to ``weights`` when the next
        token starts a new chunk.
    tokens_seen:
        ``(B,)`` int64, how many valid tokens each row has consumed. The position inside the
        current chunk is ``tokens_seen % chunk_size``.
    chunk_size:
        The chunk size the state was built with; a call with another chunk size is refused.
    chunk_offset:
        ``tokens_seen % chunk_size`` when every row shares it and it is known without reading
        the tensor (None otherwise). It spares the scan a device sync, and ``torch.compile`` a
        graph break, on the common unmasked path.
    """

    weights: tuple[Tensor, ...]
    momentum: tuple[Tensor, ...]
    chunk_start_weights: tuple[Tensor, ...]
    tokens_seen: Tensor
    chunk_size: int
    chunk_offset: int | None = None

    @classmethod
    def initial(cls, weights: Sequence[Tensor], batch_size: int, chunk_size: int,
                dtype: torch.dtype | None = None) -> "MemoryState":
        """The state before any token: ``W_0`` from ``weights`` (H, D_in, D_out), ``S_0 = 0``.

        The batch dimension is an ``expand``, so gradients flow back into ``weights``.
        """
        dtype = dtype or weights[0].dtype
        expanded = tuple(w.to(dtype).unsqueeze(0).expand(batch_size, *w.shape) for w in weights)
        zeros = tuple(torch.zeros_like(w) for w in expanded)
        tokens_seen = torch.zeros(batch_size, dtype=torch.long, device=weights[0].device)
        return cls(expanded, zeros, expanded, tokens_seen, chunk_size, 0)

    @property
    def batch_size(self) -> int:
        return self.tokens_seen.shape[0]

    @property
    def depth(self) -> int:
        return len(self.weights)

    def detach(self) -> "MemoryState":
        """The same state cut from the autograd graph (truncated back-propagation through time)."""
        return MemoryState(
            tuple(w.detach() for w in self.weights),
            tuple(s.detach() for s in self.momentum),
            tuple(w.detach() for w in self.chunk_start_weights),
            self.tokens_seen.clone(),
            self.chunk_size,
            self.chunk_offset,
        )

    def to(self, *args, **kwargs) -> "MemoryState":
        """Move the float tensors (``tensor.to`` arguments); the token counter keeps its dtype."""
        def move(tensors: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
            return tuple(t.to(*args, **kwargs) for t in tensors)
        weights = move(self.weights)
        return MemoryState(weights, move(self.momentum), move(self.chunk_start_weights),
                           self.tokens_seen.to(weights[0].device), self.chunk_size,
                           self.chunk_offset)

    def select(self, rows: Tensor | slice | Sequence[int]) -> "MemoryState":
        """The state of a subset of rows (e.g. to drop finished streams from a batch)."""
        return MemoryState(
            tuple(w[rows] for w in self.weights),
            tuple(s[rows] for s in self.momentum),
            tuple(w[rows] for w in self.chunk_start_weights),
            self.tokens_seen[rows],
            self.chunk_size,
            self.chunk_offset,
        )

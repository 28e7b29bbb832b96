"""`SurpriseMemory`: a Titans memory that learns, as it reads a stream, to predict each row from
the rows before it; what it fails to predict is its surprise.

Each channel of a stream is a lane. At row ``t`` the memory holds the association
``k_t → v_t`` with

- key ``k_t``: the ``context`` values before row ``t`` relative to the last of them, that last
  value (the level) and, when the stream has timestamps, the row's time of day and day of
  week, through a learned projection and ℓ2-normalised (the paper's keys, §4.4);
- value ``v_t = x_t − x_{t−1}``: the row's change (so a persisting level shift is learnt at
  once, and the memory spends its capacity on shapes, not levels).

Every row is one write of the Titans rule (Eqs. 12–14: surprise with momentum, forgetting), by
:func:`~titans_seq.memory.memory_scan` with constant learned gates. The prediction of row
``t`` is the memory *before* it writes row ``t``: the token of row ``t − 1`` queries with
``k_t`` (known by then; a call's first row is predicted from the state the previous call left),
so ``ŷ_t = M_{t−1}(k_t)`` and the
momentary error ``v_t − ŷ_t`` is exactly what the write of row ``t`` then learns from (its
associative loss is the square). Reading a stream in pieces equals reading it at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..memory import MemoryState, memory_mlp, memory_scan


@dataclass
class SurpriseState:
    """Where each lane stands: the memory after the last row, and the ``context`` values
    before the next row."""

    memory: MemoryState | None  # None before the first row: the initial weights
    recent: Tensor              # (B, context) standardised values


class SurpriseMemory(nn.Module):
    """The memory and its learned keys and gates (all lanes share them).

    Parameters
    ----------
    context : int
        Values before a row that make its key (relative to the last of them), with that last
        value itself (the level).
    n_features : int
        Known-in-advance features of each row added to its key (time of day, day of week).
    key_dim : int
        Width of the keys (the memory MLP's input).
    memory_depth, memory_hidden : int
        The memory MLP (1 layer: a linear memory).
    chunk_size : int
        Rows per chunk of the scan (their gradients are taken at the chunk's start, Eq. 16).
    max_lr : float
        Upper bound of the learned inner learning rate ``θ``.
    max_surprise_norm : float, optional
        Clip of each write's surprise (see :func:`~titans_seq.memory.memory_scan`): the outer
        loop may raise ``θ`` where the unclipped rule diverges.
    """

    def __init__(self, context: int = 16, n_features: int = 0, key_dim: int = 16,
                 memory_depth: int = 2, memory_hidden: int = 32, chunk_size: int = 8,
                 max_lr: float = 1.0, max_surprise_norm: float | None = 1.0) -> None:
        super().__init__()
        self.context, self.n_features = context, n_features
        self.chunk_size, self.max_lr = chunk_size, max_lr
        self.max_surprise_norm = max_surprise_norm
        self.key = nn.Linear(context + 1 + n_features, key_dim, bias=False)
        sizes = [key_dim] + [memory_hidden] * (memory_depth - 1) + [1]
        self.initial_weights = nn.ParameterList(
            [nn.Parameter(torch.randn(1, d_in, d_out) / math.sqrt(d_in)
                          * (0.0 if layer == memory_depth - 1 else 1.0))
             for layer, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:]))])
        # θ = max_lr · σ(·), η = σ(·), α = σ(·): a cautious learner with some momentum and
        # mild forgetting to start from (θ = 0.27, η = 0.73 diverged on a plain sine)
        self.gate_logits = nn.Parameter(torch.tensor([-3.0, 0.0, -5.0]))

    def initial_state(self, first_values: Tensor) -> SurpriseState:
        """Before a stream's first row (``first_values (B,)``): its lags are that value."""
        recent = first_values[:, None].expand(-1, self.context).clone()
        return SurpriseState(None, recent)

    def keys(self, lags: Tensor, features: Tensor | None) -> Tensor:
        """``lags (B, N, context)``, ``features (B, N, F)`` → ``(B, N, key_dim)`` keys,
        ℓ2-normalised."""
        pieces = [lags - lags[..., -1:], lags[..., -1:]]
        if self.n_features:
            pieces.append(features)
        keys = self.key(torch.cat(pieces, -1))
        # smooth at 0 (flat lags give a zero key): F.normalize's gradient is NaN there
        return keys * torch.rsqrt(keys.square().sum(-1, keepdim=True) + 1e-6)

    def gates(self, shape: tuple[int, ...]) -> tuple[Tensor, Tensor, Tensor]:
        theta, eta, alpha = torch.sigmoid(self.gate_logits)
        return tuple(gate.expand(shape) for gate in (self.max_lr * theta, eta, alpha))

    def forward(self, values: Tensor, state: SurpriseState, features: Tensor | None = None
                ) -> tuple[Tensor, SurpriseState]:
        """Read ``values (B, N)`` (standardised; ``features (B, N, F)``) after ``state``;
        returns each row's change minus the memory's prediction of it before the row's
        write (the momentary error, ``(B, N)``) and the state after them."""
        lanes, rows = values.shape
        history = torch.cat([state.recent, values], 1)  # (B, context + N)
        lags = history[:, :-1].unfold(1, self.context, 1)  # (B, N, context): before each row
        keys = self.keys(lags, features)  # (B, N, key_dim)
        changes = values - lags[..., -1]  # (B, N): v_t
        # The first row's prediction: the memory as the previous call left it.
        weights = (list(self.initial_weights) if state.memory is None
                   else list(state.memory.weights))  # (1 | B, 1, D_in, D_out)
        first = memory_mlp(keys[:, None, :1], weights)[:, 0, 0, 0]  # (B,)
        # (B, 1, N, D): one head; row t writes k_t → v_t, then reads with k_{t+1}: the
        # prediction of row t + 1 before its write (the last read has no next row yet)
        k, v = keys[:, None], changes[:, None, :, None]
        q = torch.cat([keys[:, None, 1:], keys[:, None, -1:]], 2)
        theta, eta, alpha = self.gates((lanes, 1, rows))
        reads, memory = memory_scan(q, k, v, theta, eta, alpha, list(self.initial_weights),
                                    self.chunk_size, state=state.memory,
                                    max_surprise_norm=self.max_surprise_norm)
        predictions = torch.cat([first[:, None], reads[:, 0, :-1, 0]], 1)  # (B, N)
        return changes - predictions, SurpriseState(memory, history[:, -self.context:])

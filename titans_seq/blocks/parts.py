"""What the Titans blocks share: their state, feed-forward and memory gate (their
configuration is :class:`~titans_seq.blocks.config.BlockConfig`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from ..attention import AttentionCache, PersistentMemory
from ..memory import NeuralMemory, NeuralMemoryState
from .config import BlockConfig


@dataclass
class SegmentState:
    """MAC's streaming state besides the memory: the open segment's keys and values."""

    retrieved_keys: Tensor | None  # (B, H, N_l, D) the memory tokens of the open segment
    retrieved_values: Tensor | None
    keys: Tensor  # (B, H, n, D) the open segment's n tokens so far
    values: Tensor
    positions: Tensor  # (B, n) int64
    phase: int | None  # n, shared by all rows; None when rows stopped at different places
    # Tokens seen per row: the memory's count (MAC writes every token, and only them).

    def detach(self) -> "SegmentState":
        def cut(t: Tensor | None) -> Tensor | None:
            return t.detach() if t is not None else None
        return SegmentState(cut(self.retrieved_keys), cut(self.retrieved_values),
                            self.keys.detach(), self.values.detach(), self.positions,
                            self.phase)


@dataclass
class BlockState:
    """Streaming state of one block: its memory and, per variant, attention window or segment."""

    memory: NeuralMemoryState
    attention: AttentionCache | None = None  # MAG, MAL
    segment: SegmentState | None = None  # MAC

    def detach(self) -> "BlockState":
        return BlockState(self.memory.detach(),
                          self.attention.detach() if self.attention is not None else None,
                          self.segment.detach() if self.segment is not None else None)


class RMSNorm(nn.RMSNorm):
    """RMSNorm computed in its weight's precision: under bf16 autocast the residual stream and
    the attention outputs arrive in bf16, and normalising them in fp32 is both the numerically
    sound choice (autocast does so for layer_norm) and what the fused kernel needs."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.to(self.weight.dtype))


def build_memory(config: BlockConfig) -> NeuralMemory:
    """The block's :class:`NeuralMemory` from its configuration."""
    return NeuralMemory(
        config.dim, heads=config.memory_heads, head_dim=config.memory_head_dim,
        memory_depth=config.memory_depth, memory_hidden=config.memory_hidden,
        chunk_size=config.chunk_size, max_lr=config.max_lr, momentum=config.momentum,
        forgetting=config.forgetting, convolution=config.convolution,
        max_surprise_norm=config.max_surprise_norm, compiled=config.compiled_memory,
        kernel=config.memory_kernel)


class FeedForward(nn.Module):
    """Pre-norm position-wise MLP sub-layer with its residual: ``x + W2 GELU(W1 norm(x))``."""

    def __init__(self, dim: int, mult: float, dropout: float) -> None:
        super().__init__()
        hidden = max(1, int(round(dim * mult)))
        self.norm = RMSNorm(dim)
        self.up = nn.Linear(dim, hidden)
        self.down = nn.Linear(hidden, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.dropout(self.down(F.gelu(self.up(self.norm(x)))))


class MemoryGate(nn.Module):
    """``y ⊗ M(·)`` of Eqs. 25 and 28: both normalised with learnable vector-valued weights, the
    memory branch through a non-linearity (sigmoid), multiplied element-wise, then projected."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.branch_norm = RMSNorm(dim)
        self.memory_norm = RMSNorm(dim)
        self.output = nn.Linear(dim, dim, bias=False)

    def forward(self, branch: Tensor, memory: Tensor) -> Tensor:
        return self.output(self.branch_norm(branch) * self.memory_norm(memory).sigmoid())


class TitansBlock(nn.Module):
    """What every block has: persistent tokens, a memory, residual dropout, a feed-forward.

    Subclasses define ``initial_state(batch_size)`` and ``forward(x, state, mask)``.
    """

    def __init__(self, config: BlockConfig, persistent: bool = True) -> None:
        super().__init__()
        self.config = config
        self.persistent = (PersistentMemory(config.persistent_tokens, config.dim)
                           if config.persistent_tokens and persistent else None)
        self.attention: nn.Module | None = None  # set by the variants that attend
        self.memory = build_memory(config)
        self.dropout = nn.Dropout(config.dropout)
        self.feed_forward = (FeedForward(config.dim, config.ffn_mult, config.dropout)
                             if config.ffn_mult else None)

    def _primed_memory(self, batch_size: int, norm: nn.Module) -> NeuralMemoryState:
        """A fresh memory that has read the persistent tokens (the ``P ‖`` of Eq. 19)."""
        state = self.memory.initial_state(batch_size)
        if self.persistent is not None:
            tokens = norm(self.persistent(batch_size))  # (B, N_p, dim)
            _, state = self.memory(tokens, state, validate=False)
        return state

    def _initial_cache(self, batch_size: int) -> AttentionCache | None:
        if self.attention is None:
            return None
        return self.attention.initial_cache(batch_size, self.memory.initial_weights[0])

    def _feed_forward(self, h: Tensor) -> Tensor:
        return self.feed_forward(h) if self.feed_forward is not None else h

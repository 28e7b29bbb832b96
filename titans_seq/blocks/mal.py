"""The MAL block: memory as a layer (Eqs. 29-31)."""

from __future__ import annotations

from torch import Tensor, nn

from ..attention import PersistentMemory, SlidingWindowAttention
from .parts import BlockConfig, BlockState, FeedForward, RMSNorm, build_memory


class MALBlock(nn.Module):
    """``x̃ = [P ‖ x]``, ``y = M(x̃)`` (Eq. 30), ``o = SW-Attn(y)`` (Eq. 31), with pre-norm
    residuals: ``h = x + M(norm x)``, ``o = h + SWA(norm h)``, then ``o + FFN(o)``.

    The persistent tokens go through the memory first, once per stream; the attention sees
    their layer outputs as always-visible keys. ``attention=False`` leaves the LMM block.
    """

    def __init__(self, config: BlockConfig) -> None:
        super().__init__()
        self.config = config
        self.persistent = (PersistentMemory(config.persistent_tokens, config.dim)
                           if config.persistent_tokens else None)
        self.memory_norm = RMSNorm(config.dim)
        self.memory = build_memory(config)
        self.attention = None
        if config.attention:
            self.attention_norm = RMSNorm(config.dim)
            self.attention = SlidingWindowAttention(config.dim, config.heads, config.window,
                                                    config.rotary, config.attention_backend)
        self.dropout = nn.Dropout(config.dropout)
        self.feed_forward = (FeedForward(config.dim, config.ffn_mult, config.dropout)
                             if config.ffn_mult else None)

    def initial_state(self, batch_size: int) -> BlockState:
        memory_state = self.memory.initial_state(batch_size)
        like = self.memory.initial_weights[0]
        prefix = None
        if self.persistent is not None:
            tokens = self.persistent(batch_size)  # (B, N_p, dim)
            read, memory_state = self.memory(self.memory_norm(tokens), memory_state, validate=False)
            prefix = tokens + read
        cache = None
        if self.attention is not None:
            sinks = self.attention_norm(prefix) if prefix is not None else None
            cache = self.attention.initial_cache(batch_size, sinks, like)
        return BlockState(memory_state, cache)

    def forward(self, x: Tensor, state: BlockState,
                mask: Tensor | None = None) -> tuple[Tensor, BlockState]:
        read, memory_state = self.memory(self.memory_norm(x), state.memory, mask, validate=False)
        h = x + self.dropout(read)
        cache = None
        if self.attention is not None:
            attended, cache = self.attention(self.attention_norm(h), state.attention, mask)
            h = h + self.dropout(attended)
        if self.feed_forward is not None:
            h = self.feed_forward(h)
        return h, BlockState(memory_state, cache)

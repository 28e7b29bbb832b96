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
        """The state before any input: the memory has read the persistent tokens."""
        memory_state = self.memory.initial_state(batch_size)
        if self.persistent is not None:
            tokens = self.memory_norm(self.persistent(batch_size))  # (B, N_p, dim)
            _, memory_state = self.memory(tokens, memory_state, validate=False)
        reference = self.memory.initial_weights[0]
        cache = (self.attention.initial_cache(batch_size, reference)
                 if self.attention is not None else None)
        return BlockState(memory_state, cache)

    def _attention_prefix(self) -> Tensor | None:
        """The persistent positions' layer outputs ``P + M(norm P)`` (the memory from its
        initial state), as the attention sees them: ``(1, N_p, dim)``, recomputed per call."""
        if self.persistent is None:
            return None
        tokens = self.persistent(1)  # (1, N_p, dim)
        read, _ = self.memory(self.memory_norm(tokens), self.memory.initial_state(1),
                              validate=False)
        return self.attention_norm(tokens + read)

    def forward(self, x: Tensor, state: BlockState,
                mask: Tensor | None = None) -> tuple[Tensor, BlockState]:
        """``x (B, T, dim)`` → ``(B, T, dim)`` and the state after each row's last valid token."""
        read, memory_state = self.memory(self.memory_norm(x), state.memory, mask,
                                         validate=False)
        h = x + self.dropout(read)
        cache = None
        if self.attention is not None:
            attended, cache = self.attention(self.attention_norm(h), state.attention, mask,
                                             self._attention_prefix(), validate=False)
            h = h + self.dropout(attended)
        if self.feed_forward is not None:
            h = self.feed_forward(h)
        return h, BlockState(memory_state, cache)

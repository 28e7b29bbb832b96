"""The LMM block: the neural memory alone as the sequence mixer ("Titans (LMM)", §4)."""

from __future__ import annotations

from torch import Tensor, nn

from ..attention import PersistentMemory
from .parts import BlockConfig, BlockState, FeedForward, RMSNorm, build_memory


class LMMBlock(nn.Module):
    """``h = x + M(norm([P ‖ x]))``, then ``h + FFN(h)``: MAL without its attention.

    The persistent tokens are the first ``N_p`` tokens of every sequence the memory sees
    (Eq. 19). They do not depend on the input, so they are written once, when a stream's state
    is created; their outputs are not returned.
    """

    def __init__(self, config: BlockConfig) -> None:
        super().__init__()
        self.config = config
        self.persistent = (PersistentMemory(config.persistent_tokens, config.dim)
                           if config.persistent_tokens else None)
        self.memory_norm = RMSNorm(config.dim)
        self.memory = build_memory(config)
        self.dropout = nn.Dropout(config.dropout)
        self.feed_forward = (FeedForward(config.dim, config.ffn_mult, config.dropout)
                             if config.ffn_mult else None)

    def initial_state(self, batch_size: int) -> BlockState:
        """The state before any input: the memory has read the persistent tokens."""
        state = self.memory.initial_state(batch_size)
        if self.persistent is not None:
            _, state = self.memory(self.memory_norm(self.persistent(batch_size)), state,
                                   validate=False)
        return BlockState(state)

    def forward(self, x: Tensor, state: BlockState,
                mask: Tensor | None = None) -> tuple[Tensor, BlockState]:
        """``x (B, T, dim)`` → ``(B, T, dim)`` and the state after each row's last valid token."""
        read, memory_state = self.memory(self.memory_norm(x), state.memory, mask, validate=False)
        h = x + self.dropout(read)
        if self.feed_forward is not None:
            h = self.feed_forward(h)
        return h, BlockState(memory_state)

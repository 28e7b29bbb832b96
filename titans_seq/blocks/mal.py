"""The MAL block: memory as a layer (Eqs. 29-31)."""

from __future__ import annotations

from torch import Tensor

from ..attention import SlidingWindowAttention
from .config import BlockConfig
from .parts import BlockState, RMSNorm, TitansBlock


class MALBlock(TitansBlock):
    """``x̃ = [P ‖ x]``, ``y = M(x̃)`` (Eq. 30), ``o = SW-Attn(y)`` (Eq. 31), with pre-norm
    residuals: ``h = x + M(norm x)``, ``o = h + SWA(norm h)``, then ``o + FFN(o)``.

    The persistent tokens go through the memory first, once per stream; the attention sees
    their layer outputs as always-visible keys. ``attention=False`` leaves the LMM block.
    """

    def __init__(self, config: BlockConfig) -> None:
        super().__init__(config)
        self.memory_norm = RMSNorm(config.dim)
        self.attention = None
        if config.attention:
            self.attention_norm = RMSNorm(config.dim)
            self.attention = SlidingWindowAttention(config.dim, config.heads, config.window,
                                                    config.rotary, config.attention_backend)

    def initial_state(self, batch_size: int) -> BlockState:
        """The state before any input: the memory has read the persistent tokens."""
        return BlockState(self._primed_memory(batch_size, self.memory_norm),
                          self._initial_cache(batch_size))

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
        return self._feed_forward(h), BlockState(memory_state, cache)

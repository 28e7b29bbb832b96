"""The MAG block: memory as a gate (Eqs. 26-28)."""

from __future__ import annotations

from torch import Tensor

from ..attention import SlidingWindowAttention
from .config import BlockConfig
from .parts import BlockState, MemoryGate, RMSNorm, TitansBlock


class MAGBlock(TitansBlock):
    """Two branches over the same input ``x̃ = [P ‖ x]`` (Eq. 26): sliding-window attention
    ``y = SW-Attn*(x̃)`` (Eq. 27) and the memory ``M(x̃)``, combined by ``o = y ⊗ M(x̃)``
    (Eq. 28) — each normalised with learnable weights, the memory through a sigmoid, multiplied
    (:class:`MemoryGate`). Pre-norm residual: ``h = x + gate(SWA(n), M(n))`` with
    ``n = norm(x)``, then ``h + FFN(h)``.

    The persistent tokens are written into the memory once per stream and stay visible to the
    attention at every position. ``attention=False`` gates ``n`` itself by the memory.
    """

    def __init__(self, config: BlockConfig) -> None:
        super().__init__(config)
        self.norm = RMSNorm(config.dim)
        self.attention = (SlidingWindowAttention(config.dim, config.heads, config.window,
                                                 config.rotary, config.attention_backend)
                          if config.attention else None)
        self.gate = MemoryGate(config.dim)

    def initial_state(self, batch_size: int) -> BlockState:
        """The state before any input: the memory has read the persistent tokens."""
        return BlockState(self._primed_memory(batch_size, self.norm),
                          self._initial_cache(batch_size))

    def forward(self, x: Tensor, state: BlockState,
                mask: Tensor | None = None) -> tuple[Tensor, BlockState]:
        """``x (B, T, dim)`` → ``(B, T, dim)`` and the state after each row's last valid token."""
        normed = self.norm(x)
        read, memory_state = self.memory(normed, state.memory, mask, validate=False)
        branch, cache = normed, None
        if self.attention is not None:
            prefix = self.norm(self.persistent(1)) if self.persistent is not None else None
            branch, cache = self.attention(normed, state.attention, mask, prefix,
                                           validate=False)
        h = x + self.dropout(self.gate(branch, read))
        return self._feed_forward(h), BlockState(memory_state, cache)

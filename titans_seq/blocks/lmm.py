"""The LMM block: the neural memory alone as the sequence mixer ("Titans (LMM)", §4)."""

from __future__ import annotations

from torch import Tensor

from .config import BlockConfig
from .parts import BlockState, RMSNorm, TitansBlock


class LMMBlock(TitansBlock):
    """``h = x + M(norm([P ‖ x]))``, then ``h + FFN(h)``: MAL without its attention.

    The persistent tokens are the first ``N_p`` tokens of every sequence the memory sees
    (Eq. 19). They do not depend on the input, so they are written once, when a stream's state
    is created; their outputs are not returned.
    """

    def __init__(self, config: BlockConfig) -> None:
        super().__init__(config)
        self.memory_norm = RMSNorm(config.dim)

    def initial_state(self, batch_size: int) -> BlockState:
        """The state before any input: the memory has read the persistent tokens."""
        return BlockState(self._primed_memory(batch_size, self.memory_norm))

    def forward(self, x: Tensor, state: BlockState,
                mask: Tensor | None = None) -> tuple[Tensor, BlockState]:
        """``x (B, T, dim)`` → ``(B, T, dim)`` and the state after each row's last valid token."""
        read, memory_state = self.memory(self.memory_norm(x), state.memory, mask, validate=False)
        return self._feed_forward(x + self.dropout(read)), BlockState(memory_state)

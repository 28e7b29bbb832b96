"""``TitansEncoder``: a stack of MAC, MAG, MAL or LMM blocks, streamable and optionally
bidirectional."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..memory.validation import check_padding_mask, check_sequence
from .config import EncoderConfig
from .lmm import LMMBlock
from .mac import MACBlock
from .mag import MAGBlock
from .mal import MALBlock
from .parts import BlockState, RMSNorm

BLOCKS = {"mac": MACBlock, "mag": MAGBlock, "mal": MALBlock, "lmm": LMMBlock}


@dataclass
class EncoderState:
    """Streaming state of a :class:`TitansEncoder`: one :class:`BlockState` per block."""

    blocks: tuple[BlockState, ...]

    def detach(self) -> "EncoderState":
        """The same state cut from the autograd graph (truncated back-propagation)."""
        return EncoderState(tuple(block.detach() for block in self.blocks))

    @property
    def batch_size(self) -> int:
        """Number of streams (rows) the state holds."""
        return self.blocks[0].memory.tokens_seen.shape[0]


class TitansEncoder(nn.Module):
    """A Titans sequence encoder (§4): ``forward(x, state=None, mask=None) -> (y, state)``.

    Built from an :class:`~titans_seq.blocks.config.EncoderConfig` (every option and its
    default is documented there), given whole or as keyword arguments:
    ``TitansEncoder(EncoderConfig(variant="mac", dim=32))``,
    ``TitansEncoder(variant="mac", dim=32)`` and ``TitansEncoder("mac", dim=32)`` are the
    same encoder; keywords given beside a config replace its fields.
    """

    def __init__(self, config: EncoderConfig | str | None = None, **options: Any) -> None:
        super().__init__()
        if isinstance(config, str):  # the variant's name, for short
            config, options = None, {"variant": config, **options}
        config = EncoderConfig.coerce(config, "config")
        if options:
            config = EncoderConfig.coerce({**config.to_dict(), **options}, "TitansEncoder")
        self.config = config
        self.variant, self.dim, self.depth = config.variant, config.dim, config.depth
        self.bidirectional = config.bidirectional
        blocks = config.block()
        block = BLOCKS[config.variant]
        self.blocks = nn.ModuleList(block(blocks) for _ in range(config.depth))
        self.norm = RMSNorm(config.dim)
        if config.bidirectional:
            self.backward_blocks = nn.ModuleList(block(blocks) for _ in range(config.depth))
            self.backward_norm = RMSNorm(config.dim)
            self.merge = nn.Linear(2 * config.dim, config.dim)

    def initial_state(self, batch_size: int) -> EncoderState:
        """The state before any token (persistent tokens already written), for a batch."""
        if self.bidirectional:
            raise ValueError("a bidirectional encoder reads whole sequences and has no "
                             "streaming state; build it with bidirectional=False to stream")
        return self._initial_state_of(self.blocks, batch_size)

    def forward(self, x: Tensor, state: EncoderState | None = None,
                mask: Tensor | None = None) -> tuple[Tensor, EncoderState | None]:
        """``x (B, T, dim)`` → ``y (B, T, dim)`` and the state after each row's last valid token.

        ``mask (B, T)`` bool, True = valid, padding only at the end of a row: padding changes
        no valid output and no state, and its outputs are 0. A bidirectional encoder returns
        ``None`` as the state.
        """
        self._check_input(x, state, mask)
        return self._forward(x, state, mask)

    def _forward(self, x: Tensor, state: EncoderState | None,
                 mask: Tensor | None) -> tuple[Tensor, EncoderState | None]:
        """:meth:`forward` after the input checks (the part ``torch.compile`` traces whole)."""
        if self.bidirectional:
            return self._bidirectional(x, mask), None
        if state is None:
            state = self.initial_state(x.shape[0])
        return self._run(self.blocks, self.norm, x, state, mask)

    @staticmethod
    def _run(blocks: nn.ModuleList, norm: nn.Module, x: Tensor, state: EncoderState,
             mask: Tensor | None) -> tuple[Tensor, EncoderState]:
        block_states = []
        for block, block_state in zip(blocks, state.blocks):
            x, block_state = block(x, block_state, mask)
            block_states.append(block_state)
        y = norm(x)
        if mask is not None:
            y = y * mask[:, :, None]
        return y, EncoderState(tuple(block_states))

    def _bidirectional(self, x: Tensor, mask: Tensor | None) -> Tensor:
        batch, length, _ = x.shape
        forward, _ = self._run(self.blocks, self.norm, x,
                               self._initial_state_of(self.blocks, batch), mask)
        # Reverse each row's valid part in place; padding stays at the end.
        valid = mask.sum(1) if mask is not None else torch.full(
            (batch,), length, device=x.device)
        steps = torch.arange(length, device=x.device)[None, :]
        index = torch.where(steps < valid[:, None], valid[:, None] - 1 - steps, steps)  # (B, T)
        index = index[:, :, None].expand(-1, -1, self.dim)
        reversed_x = x.gather(1, index)
        backward, _ = self._run(self.backward_blocks, self.backward_norm, reversed_x,
                                self._initial_state_of(self.backward_blocks, batch), mask)
        backward = backward.gather(1, index)  # back to the original order
        y = self.merge(torch.cat([forward, backward], dim=-1))
        return y * mask[:, :, None] if mask is not None else y

    @staticmethod
    def _initial_state_of(blocks: nn.ModuleList, batch_size: int) -> EncoderState:
        """The initial state of a stack of blocks (either direction of a bidirectional one)."""
        return EncoderState(tuple(block.initial_state(batch_size) for block in blocks))

    def _check_input(self, x: Tensor, state: EncoderState | None, mask: Tensor | None) -> None:
        check_sequence(x, self.dim)
        if mask is not None:
            check_padding_mask(mask, *x.shape[:2])
        if state is not None:
            if self.bidirectional:
                raise ValueError("a bidirectional encoder has no streaming state; pass "
                                 "state=None")
            if not isinstance(state, EncoderState):
                raise TypeError(f"state must be an EncoderState (as returned by forward), got "
                                f"{type(state).__name__}")
            if len(state.blocks) != self.depth:
                raise ValueError(f"state has {len(state.blocks)} blocks, the encoder {self.depth}")
            if state.batch_size != x.shape[0]:
                raise ValueError(f"state is for {state.batch_size} rows, x has {x.shape[0]}")
            for index, (block, block_state) in enumerate(zip(self.blocks, state.blocks)):
                problem = _state_mismatch(block, block_state, x.device)
                if problem:
                    raise ValueError(f"state.blocks[{index}] does not fit this encoder: "
                                     f"{problem}; pass a state this encoder returned")
        if mask is not None and mask.device != x.device:
            raise ValueError(f"mask is on {mask.device}, x on {x.device}; move them together")


def _state_mismatch(block: nn.Module, state: BlockState, device: torch.device) -> str | None:
    """What is wrong with ``state`` for ``block`` (metadata only: no tensor values are read)."""
    if not isinstance(state, BlockState):
        return f"expected a BlockState, got {type(state).__name__}"
    memory = state.memory.memory
    if memory.chunk_size != block.memory.chunk_size:
        return f"chunk_size {memory.chunk_size} != {block.memory.chunk_size}"
    shapes = [tuple(w.shape[1:]) for w in memory.weights]
    expected = [tuple(w.shape) for w in block.memory.initial_weights]
    if shapes != expected:
        return f"memory weights {shapes} != {expected}"
    if memory.tokens_seen.device != device:
        return f"it is on {memory.tokens_seen.device}, x on {device}"
    if (state.memory.conv_tail is None) != (block.memory.conv is None):
        return "convolution on/off differs"
    attention = getattr(block, "attention", None)
    if isinstance(block, MACBlock):
        if state.segment is None:
            return "it is not a MAC state"
    elif attention is not None:
        if state.attention is None:
            return "it has no attention window"
        if state.attention.keys.shape[1:] != (attention.heads, attention.window - 1,
                                              attention.head_dim):
            return (f"attention window {tuple(state.attention.keys.shape[1:])} != "
                    f"{(attention.heads, attention.window - 1, attention.head_dim)}")
    return None

"""``TitansEncoder``: a stack of MAC, MAG, MAL or LMM blocks, streamable and optionally
bidirectional."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from datamodules.checks import choice, integer

from ..memory.validation import check_padding_mask, check_sequence
from .lmm import LMMBlock
from .mac import MACBlock
from .mag import MAGBlock
from .mal import MALBlock
from .parts import BlockConfig, BlockState, RMSNorm

BLOCKS = {"mac": MACBlock, "mag": MAGBlock, "mal": MALBlock, "lmm": LMMBlock}
Variant = Literal["mac", "mag", "mal", "lmm"]
# The encoder arguments the task modules expose under the same names.
MODULE_ENCODER_OPTIONS = ("variant", "dim", "depth", "heads", "memory_heads", "memory_depth",
                          "chunk_size", "max_lr", "window", "segment_len", "persistent_tokens",
                          "dropout")


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

    Parameters
    ----------
    variant : {"mac", "mag", "mal", "lmm"}
        Memory as a context (Eqs. 21-25), as a gate (Eqs. 26-28), as a layer (Eqs. 29-31), or
        the memory alone.
    dim : int
        Model width; ``x`` and ``y`` are ``(B, T, dim)``.
    depth : int
        Number of blocks.
    heads : int
        Attention heads (MAC, MAG, MAL).
    memory_heads : int
        Independent memories per block.
    memory_head_dim : int, optional
        Key/value width per memory head (default ``dim // memory_heads``).
    memory_depth : int
        Layers of each memory MLP; 1 is Table 5's linear memory.
    memory_hidden : int, optional
        Hidden width of a deep memory (default 4 × memory head dim).
    chunk_size : int
        Tokens per memory chunk (Eq. 16's ``b``).
    max_lr : float, optional
        Bound of the memory's effective inner step θ / (1 − η); default ``1 / chunk_size``
        (see :class:`~titans_seq.memory.NeuralMemory`).
    momentum, forgetting, convolution : bool
        Table 5's ablations of the memory: without momentum, weight decay, convolution.
    persistent_tokens : int
        ``N_p`` persistent tokens per block (Eq. 19); 0 is Table 5's "w/o persistent memory".
    attention : bool
        False removes the attention part of MAC, MAG and MAL (see each block).
    window : int
        Sliding-window length of MAG and MAL, including the token itself.
    segment_len : int
        MAC's segment length.
    memory_tokens : int
        MAC's ``N_l``: tokens retrieved from the memory per segment.
    ffn_mult : float
        Feed-forward width as a multiple of ``dim``; 0 removes the feed-forward sub-layers.
    dropout : float
        Dropout on every residual branch.
    rotary : bool
        Rotary positions in the attention.
    bidirectional : bool
        Also run a second stack over each row reversed (valid tokens only) and merge both
        directions per position: for classification, where the whole sequence is known. Not
        causal and not streamable.
    attention_backend : {"auto", "sdpa", "flex"}
        ``"auto"`` uses ``flex_attention`` on CUDA and ``scaled_dot_product_attention``
        elsewhere; both compute the same masks.
    compiled_memory : bool
        Run the memories' sequential chunk step through ``torch.compile`` (pure-PyTorch path).
    memory_kernel : {"auto", "native", "torch"}
        The memories' sequential pass: the native CPU kernel when it builds (``"auto"``),
        always (``"native"``) or never (``"torch"``); see :func:`~titans_seq.memory.memory_scan`.
    max_surprise_norm : float, optional
        Clip every memory write's surprise to this norm (see :class:`NeuralMemory`); None is
        the paper's update.
    """

    def __init__(self, variant: Variant = "lmm", dim: int = 64, depth: int = 2, heads: int = 4,
                 memory_heads: int = 4, memory_head_dim: int | None = None,
                 memory_depth: int = 2, memory_hidden: int | None = None, chunk_size: int = 16,
                 max_lr: float | None = None, momentum: bool = True, forgetting: bool = True,
                 convolution: bool = True, persistent_tokens: int = 4, attention: bool = True,
                 window: int = 64, segment_len: int = 64, memory_tokens: int = 4,
                 ffn_mult: float = 4.0, dropout: float = 0.0, rotary: bool = True,
                 bidirectional: bool = False, attention_backend: str = "auto",
                 compiled_memory: bool = False, memory_kernel: str = "auto",
                 max_surprise_norm: float | None = None) -> None:
        super().__init__()
        choice("variant", variant, tuple(sorted(BLOCKS)))
        depth = integer("depth", depth)
        self.variant, self.dim, self.depth = variant, dim, depth
        self.bidirectional = bidirectional
        config = BlockConfig(
            dim=dim, heads=heads, memory_heads=memory_heads, memory_head_dim=memory_head_dim,
            memory_depth=memory_depth, memory_hidden=memory_hidden, chunk_size=chunk_size,
            max_lr=max_lr, momentum=momentum, forgetting=forgetting, convolution=convolution,
            persistent_tokens=persistent_tokens, window=window,
            segment_len=segment_len, memory_tokens=memory_tokens, ffn_mult=ffn_mult,
            dropout=dropout, rotary=rotary, attention_backend=attention_backend,
            compiled_memory=compiled_memory, memory_kernel=memory_kernel,
            max_surprise_norm=max_surprise_norm,
            attention=attention and variant != "lmm")
        self.config = config
        block = BLOCKS[variant]
        self.blocks = nn.ModuleList(block(config) for _ in range(depth))
        self.norm = RMSNorm(dim)
        if bidirectional:
            self.backward_blocks = nn.ModuleList(block(config) for _ in range(depth))
            self.backward_norm = RMSNorm(dim)
            self.merge = nn.Linear(2 * dim, dim)

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

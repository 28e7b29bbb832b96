"""The settings of the blocks and of the encoder that stacks them, each field once.

:class:`BlockConfig` is what one block needs; :class:`EncoderConfig` adds how blocks are
stacked. Task modules take an :class:`EncoderConfig` whole (a nested object in a LightningCLI
config) instead of re-listing its fields, so every default lives here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

from ..attention.kernels import BACKENDS
from ..memory.checks import choice, fraction, integer, real, settings
from ..memory.native import check_kernel

Variant = Literal["mac", "mag", "mal", "lmm"]
VARIANTS = ("lmm", "mac", "mag", "mal")


@dataclass(frozen=True)
class BlockConfig:
    """Every block's hyper-parameters (checked on construction)."""

    dim: int = 64
    heads: int = 4  # attention heads
    memory_heads: int = 4
    memory_head_dim: int | None = None
    memory_depth: int = 2  # 1 = linear memory (Table 5)
    memory_hidden: int | None = None
    chunk_size: int = 16
    max_lr: float | None = None  # default 1 / chunk_size
    momentum: bool = True  # Table 5: w/o momentum
    forgetting: bool = True  # Table 5: w/o weight decay
    convolution: bool = True  # Table 5: w/o convolution
    persistent_tokens: int = 4  # N_p; 0 = Table 5's w/o persistent memory
    attention: bool = True  # MAC/MAG/MAL without their attention part
    window: int = 64  # sliding window (MAG, MAL), including the token itself
    segment_len: int = 64  # MAC segment length
    memory_tokens: int = 4  # MAC: N_l tokens retrieved from the memory per segment
    ffn_mult: float = 4.0  # 0 = no feed-forward sub-layer
    dropout: float = 0.0
    rotary: bool = True
    attention_backend: str = "auto"
    compiled_memory: bool = False
    memory_kernel: str = "auto"  # the scan's sequential pass: auto, native, triton, torch
    max_surprise_norm: float | None = None  # None: the paper's update, unclipped

    def __post_init__(self) -> None:
        self._check(uses_attention=self.attention)

    def _check(self, uses_attention: bool) -> None:
        # A frozen dataclass: the checked (plain Python) values are set through object.
        for name in ("dim", "heads", "memory_heads", "memory_depth", "chunk_size", "window",
                     "segment_len"):
            object.__setattr__(self, name, integer(name, getattr(self, name)))
        for name in ("memory_head_dim", "memory_hidden"):
            object.__setattr__(self, name, integer(name, getattr(self, name), optional=True))
        object.__setattr__(self, "max_lr", real("max_lr", self.max_lr, 0.0, low_open=True,
                                                optional=True, hint="None: 1 / chunk_size"))
        object.__setattr__(self, "max_surprise_norm",
                           real("max_surprise_norm", self.max_surprise_norm, 0.0,
                                low_open=True, optional=True, hint="None: no clipping"))
        for name in ("persistent_tokens", "memory_tokens"):
            object.__setattr__(self, name, integer(name, getattr(self, name), 0))
        object.__setattr__(self, "ffn_mult", real("ffn_mult", self.ffn_mult, 0.0))
        object.__setattr__(self, "dropout", fraction("dropout", self.dropout))
        choice("attention_backend", self.attention_backend, BACKENDS)
        check_kernel(self.memory_kernel, "memory_kernel")
        if uses_attention and self.dim % self.heads:
            raise ValueError(f"dim ({self.dim}) must be divisible by heads ({self.heads}); "
                             "change one of them")

    def with_(self, **changes) -> "BlockConfig":
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)


@dataclass(frozen=True)
class EncoderConfig(BlockConfig):
    """The settings of a :class:`~titans_seq.TitansEncoder`: its blocks' (every field of
    :class:`BlockConfig`) and how they are stacked.

    Parameters
    ----------
    variant : {"mac", "mag", "mal", "lmm"}
        Memory as a context (Eqs. 21-25), as a gate (Eqs. 26-28), as a layer (Eqs. 29-31), or
        the memory alone.
    dim : int
        Model width; the encoder's input and output are ``(B, T, dim)``.
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
        False removes the attention part of MAC, MAG and MAL (see each block); the memory
        alone (``"lmm"``) has none.
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
    attention_backend : {"auto", "sdpa", "flex"}
        ``"auto"`` uses ``flex_attention`` on CUDA and ``scaled_dot_product_attention``
        elsewhere; both compute the same masks.
    compiled_memory : bool
        Run the memories' sequential chunk step through ``torch.compile`` (pure-PyTorch path).
    memory_kernel : {"auto", "native", "triton", "torch"}
        The memories' sequential pass: ``"auto"`` takes the native CPU kernel on CPU tensors
        when it builds and the Triton kernel on CUDA tensors when Triton imports;
        ``"native"`` / ``"triton"`` insist on one; ``"torch"`` forces the pure-PyTorch path;
        see :func:`~titans_seq.memory.memory_scan`.
    max_surprise_norm : float, optional
        Clip every memory write's surprise to this norm (see :class:`NeuralMemory`); None is
        the paper's update.
    bidirectional : bool
        Also run a second stack over each row reversed (valid tokens only) and merge both
        directions per position: for classification, where the whole sequence is known. Not
        causal and not streamable.
    """

    variant: Variant = "lmm"
    depth: int = 2
    bidirectional: bool = False

    def __post_init__(self) -> None:
        choice("variant", self.variant, VARIANTS)
        object.__setattr__(self, "depth", integer("depth", self.depth))
        self._check(uses_attention=self.uses_attention)

    @property
    def uses_attention(self) -> bool:
        return self.attention and self.variant != "lmm"

    def block(self) -> BlockConfig:
        """What each block of the stack gets."""
        options = {f.name: getattr(self, f.name) for f in fields(BlockConfig)}
        return BlockConfig(**{**options, "attention": self.uses_attention})

    @classmethod
    def coerce(cls, value: Any, name: str = "encoder") -> "EncoderConfig":
        """``value`` as an :class:`EncoderConfig`: one already, a dict of its fields (as a
        checkpoint's hyper-parameters hold it), or None for the defaults."""
        return settings(cls, value, name)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (what checkpoints and YAML hold)."""
        return asdict(self)

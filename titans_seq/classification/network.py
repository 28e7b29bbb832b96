"""`TitansClassifierNet`: a Titans encoder over a token or numeric sequence, read out into
class logits."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from datamodules.checks import choice, integer

from ..blocks.encoder import TitansEncoder, Variant

Readout = Literal["last", "mean"]


class TitansClassifierNet(nn.Module):
    """Sequence → class logits.

    The input is either token ids ``(B, T)`` (``vocab_size`` given: DNA characters or k-mers),
    embedded with a padding row at id 0, or numeric features ``(B, T, n_features)`` (one-hot DNA,
    time series) projected linearly. A :class:`~titans_seq.TitansEncoder` reads it and the
    readout turns the encoded sequence into one vector:

    - ``"last"``: the output at each row's last valid position. With a causal encoder this is
      the only position that has read the whole sequence; the memory holds the rest (§3.1).
    - ``"mean"``: the mean over valid positions (the natural readout of a bidirectional encoder).

    ``stem_kernel > 1`` puts a causal convolution across channels between the embedding and
    the encoder, so each token carries its ``stem_kernel`` last inputs (motifs of DNA).

    Padding is at the end of each row (``mask (B, T)`` bool, True = valid); it writes nothing
    into the memory and never reaches the readout.
    """

    def __init__(self, n_classes: int, *, vocab_size: int | None = None, n_features: int = 1,
                 readout: Readout = "mean", head_dropout: float = 0.0, stem_kernel: int = 0,
                 variant: Variant = "lmm", dim: int = 64, depth: int = 2, heads: int = 4,
                 memory_heads: int = 4, memory_depth: int = 2, chunk_size: int = 16,
                 max_lr: float | None = None, window: int = 64, segment_len: int = 64,
                 persistent_tokens: int = 4, dropout: float = 0.1,
                 bidirectional: bool = False, max_surprise_norm: float | None = None) -> None:
        super().__init__()
        n_classes = integer("n_classes", n_classes, 2)
        choice("readout", readout, ("last", "mean"))
        vocab_size = integer("vocab_size", vocab_size, 2, optional=True)
        n_features = integer("n_features", n_features)
        stem_kernel = integer("stem_kernel", stem_kernel, 0, hint="0: no stem")
        self.vocab_size, self.n_features, self.readout = vocab_size, n_features, readout
        self.stem_kernel = stem_kernel
        if vocab_size is not None:
            self.embed: nn.Module = nn.Embedding(vocab_size, dim, padding_idx=0)
        else:
            self.embed = nn.Linear(n_features, dim)
        # A causal convolution across channels: each token sees its stem_kernel - 1
        # predecessors, so short words (DNA motifs) become single tokens for the memory.
        self.stem = nn.Conv1d(dim, dim, stem_kernel) if stem_kernel > 1 else None
        self.encoder = TitansEncoder(
            variant, dim=dim, depth=depth, heads=heads, memory_heads=memory_heads,
            memory_depth=memory_depth, chunk_size=chunk_size, max_lr=max_lr, window=window,
            segment_len=segment_len, persistent_tokens=persistent_tokens, dropout=dropout,
            bidirectional=bidirectional, max_surprise_norm=max_surprise_norm)
        self.head = nn.Sequential(nn.Dropout(head_dropout), nn.Linear(dim, n_classes))

    def forward(self, inputs: Tensor, mask: Tensor | None = None) -> Tensor:
        """``inputs (B, T)`` ids or ``(B, T, n_features)`` values, ``mask (B, T)`` → logits
        ``(B, n_classes)``."""
        self._check(inputs, mask)
        tokens = self.embed(inputs)  # (B, T, dim)
        if mask is not None:
            # Padding ids embed to 0 already; numeric padding may hold anything.
            tokens = tokens * mask[:, :, None]
        if self.stem is not None:
            # Left padding only: causal, so trailing padding never reaches a valid position.
            windows = F.pad(tokens.transpose(1, 2), (self.stem_kernel - 1, 0))  # (B, dim, T+k-1)
            tokens = F.gelu(self.stem(windows)).transpose(1, 2)  # (B, T, dim)
            if mask is not None:
                tokens = tokens * mask[:, :, None]
        encoded, _ = self.encoder(tokens, mask=mask)  # (B, T, dim), padding outputs are 0
        return self.head(self._read_out(encoded, mask))

    def _read_out(self, encoded: Tensor, mask: Tensor | None) -> Tensor:
        batch, length, dim = encoded.shape
        if self.readout == "mean":
            if mask is None:
                return encoded.mean(1)
            return encoded.sum(1) / mask.sum(1, keepdim=True).to(encoded.dtype)
        last = (mask.sum(1) - 1 if mask is not None
                else torch.full((batch,), length - 1, device=encoded.device))
        index = last[:, None, None].expand(-1, 1, dim)  # (B, 1, dim)
        return encoded.gather(1, index)[:, 0]  # (B, dim)

    def _check(self, inputs: Tensor, mask: Tensor | None) -> None:
        if not isinstance(inputs, Tensor):
            raise TypeError(f"inputs must be a torch.Tensor, got {type(inputs).__name__}")
        if self.vocab_size is not None:
            if inputs.dim() != 2 or inputs.dtype not in (torch.int64, torch.int32):
                raise ValueError(f"token inputs must be integer ids (B, T), got "
                                 f"{tuple(inputs.shape)} {inputs.dtype}")
            if inputs.numel() and (int(inputs.min()) < 0 or int(inputs.max()) >= self.vocab_size):
                raise ValueError(f"token ids must lie in [0, {self.vocab_size}); got "
                                 f"[{int(inputs.min())}, {int(inputs.max())}]")
        elif inputs.dim() != 3 or inputs.shape[-1] != self.n_features \
                or not inputs.is_floating_point():
            raise ValueError(f"numeric inputs must be float (B, T, {self.n_features}), got "
                             f"{tuple(inputs.shape)} {inputs.dtype}")
        if inputs.shape[1] == 0:
            raise ValueError("inputs have no positions (T = 0); pass sequences of length >= 1")
        if mask is not None:
            if mask.shape != inputs.shape[:2] or mask.dtype != torch.bool:
                raise ValueError(f"mask must be bool {tuple(inputs.shape[:2])}, got "
                                 f"{tuple(mask.shape)} {mask.dtype}")
            if not bool(mask[:, 0].all()):
                raise ValueError("every row needs at least one valid position (mask[:, 0] "
                                 "True); drop empty sequences")

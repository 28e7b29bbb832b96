"""`TitansClassifierNet`: a Titans encoder over a token or numeric sequence, with an optional
k-mer composition branch beside it, read out into class logits."""

from __future__ import annotations

from typing import Any, Literal, Sequence

import torch
from torch import Tensor, nn

from datamodules.checks import choice, integer

from ..blocks import EncoderConfig
from .kmers import KmerBag, checked_kmer_sizes
from .trunk import SequenceTrunk

Readout = Literal["last", "mean"]
Parts = Literal["all", "kmers", "encoder"]


class TitansClassifierNet(nn.Module):
    """Sequence → class logits.

    A :class:`SequenceTrunk` (embedding, optional strided causal stem, Titans encoder) reads
    token ids ``(B, T)`` (``vocab_size`` given: DNA characters or k-mers; id 0 is padding) or
    numeric features ``(B, T, n_features)`` (one-hot DNA, time series). The readout turns the
    encoded sequence into one vector:

    - ``"last"``: the output at each row's last valid position. With a causal encoder this is
      the only position that has read the whole sequence; the memory holds the rest (§3.1).
    - ``"mean"``: the mean over valid positions (the natural readout of a bidirectional encoder).

    With ``kmer_sizes`` a :class:`KmerBag` (k-mer frequencies → a ``kmer_hidden``-wide layer)
    sits beside the encoder with a linear head of its own; the logits are the sum of both
    heads, so the network holds what a k-mer-count model knows and the encoder adds what
    counts miss (order, position, long-range context). :meth:`train_only` trains the
    branches jointly or one after the other. ``tokenizer`` says how to read bases from the
    inputs (``"char"`` ids or ``"onehot"`` rows); the branch needs one of them.

    Padding is at the end of each row (``mask (B, T)`` bool, True = valid); it writes nothing
    into the memory, counts no k-mer and never reaches the readout.
    """

    def __init__(self, n_classes: int, *, vocab_size: int | None = None, n_features: int = 1,
                 readout: Readout = "mean", head_dropout: float = 0.0, stem_kernel: int = 0,
                 stem_stride: int = 1, kmer_sizes: Sequence[int] | None = None,
                 kmer_hidden: int = 256, tokenizer: Literal["char", "onehot"] | None = None,
                 encoder: EncoderConfig | None = None, **encoder_options: Any) -> None:
        super().__init__()
        n_classes = integer("n_classes", n_classes, 2)
        choice("readout", readout, ("last", "mean"))
        self.readout = readout
        self.trunk = SequenceTrunk(vocab_size=vocab_size, n_features=n_features,
                                   stem_kernel=stem_kernel, stem_stride=stem_stride,
                                   encoder=encoder, **encoder_options)
        self.vocab_size, self.n_features = self.trunk.vocab_size, self.trunk.n_features
        sizes = checked_kmer_sizes(kmer_sizes)
        self.kmers = (KmerBag(sizes, hidden=kmer_hidden, tokenizer=tokenizer)
                      if sizes else None)
        self.head = nn.Sequential(nn.Dropout(head_dropout),
                                  nn.Linear(self.trunk.dim, n_classes))
        # One linear head per branch, summed: each branch's logits are a classifier of their
        # own, so the branches can also be trained one after the other (train_only).
        self.kmer_head = (nn.Linear(self.kmers.hidden, n_classes)
                          if self.kmers is not None else None)
        self.parts: Parts = "all"

    def forward(self, inputs: Tensor, mask: Tensor | None = None) -> Tensor:
        """``inputs (B, T)`` ids or ``(B, T, n_features)`` values, ``mask (B, T)`` → logits
        ``(B, n_classes)``."""
        self._check(inputs, mask)
        if mask is None:
            mask = torch.ones(inputs.shape[:2], dtype=torch.bool, device=inputs.device)
        logits = 0
        if self.parts != "kmers":
            encoded, token_mask = self.trunk(inputs, mask)  # (B, T', dim), (B, T')
            logits = self.head(self._read_out(encoded, token_mask))  # (B, n_classes)
        if self.kmers is not None:
            logits = logits + self.kmer_head(self.kmers(inputs, mask))  # (B, n_classes)
        return logits

    def train_only(self, parts: Parts) -> None:
        """Which parts train (and, for ``"kmers"``, which run):

        - ``"all"``: everything, jointly;
        - ``"kmers"``: the k-mer branch alone; the encoder is not run and adds nothing;
        - ``"encoder"``: the encoder, on top of a k-mer branch trained before and now frozen
          (its running statistics too). The encoder's head starts at zero, so training starts
          from the k-mer branch's predictions and the encoder learns what they miss.
        """
        choice("parts", parts, ("all", "kmers", "encoder"))
        if parts != "all" and self.kmers is None:
            raise ValueError(f"train_only({parts!r}) needs the k-mer branch (kmer_sizes)")
        if parts == "encoder" and self.parts == "kmers":
            with torch.no_grad():
                for parameter in self.head.parameters():
                    parameter.zero_()
        self.parts = parts
        branch = (self.kmers, self.kmer_head)
        for module in (self.trunk, self.head, *branch):
            if module is not None:
                trainable = parts == "all" or (module in branch) == (parts == "kmers")
                module.requires_grad_(trainable)
        self.train(self.training)

    def train(self, mode: bool = True) -> "TitansClassifierNet":
        super().train(mode)
        if self.parts == "encoder":
            self.kmers.eval()  # frozen: batch statistics stay those it was trained with
        return self

    def _read_out(self, encoded: Tensor, mask: Tensor) -> Tensor:
        batch, length, dim = encoded.shape
        if self.readout == "mean":
            return encoded.sum(1) / mask.sum(1, keepdim=True).to(encoded.dtype)
        last = mask.sum(1) - 1
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

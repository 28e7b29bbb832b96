"""`KmerBag`: the k-mer composition of a DNA sequence as a learned feature vector, the
information a k-mer-count model uses, computed inside the network from the same inputs."""

from __future__ import annotations

from typing import Literal, Sequence

import torch
from torch import Tensor, nn

from datamodules.checks import InvalidParameterError, fraction, integer

# Char-tokenizer ids of A, C, G, T (``datamodules.dna.CharTokenizer``): 5..8.
FIRST_BASE_ID = 5


def base_codes(inputs: Tensor, mask: Tensor, tokenizer: Literal["char", "onehot"]) -> Tensor:
    """``A C G T`` → ``0 1 2 3``, anything else (N, padding, specials) → -1; ``(B, T)`` long.

    ``inputs`` are char ids ``(B, T)`` or one-hot rows ``(B, T, 4)`` (N is a zero or uniform
    row, so only exact one-hot rows count as a base)."""
    if tokenizer == "char":
        codes = inputs.long() - FIRST_BASE_ID
        base = (codes >= 0) & (codes < 4)
    else:
        values, codes = inputs.max(-1)
        base = values == 1.0
    return torch.where(base & mask, codes, -1)


def kmer_frequencies(codes: Tensor, sizes: Sequence[int],
                     dtype: torch.dtype = torch.float32) -> Tensor:
    """Overlapping k-mer frequencies of each row, for each ``k`` in ``sizes``, concatenated:
    ``(B, sum 4**k)``. A k-mer with a non-base (N, padding) is skipped; each ``k``'s counts are
    divided by the row's number of counted k-mers (zeros when it has none). Column order:
    base-4 code with the first base most significant (``A…A`` first)."""
    batch, length = codes.shape
    valid_base = codes >= 0
    base = codes.clamp_min(0)
    parts = []
    for k in sizes:
        windows = length - k + 1
        if windows <= 0:
            parts.append(codes.new_zeros((batch, 4 ** k), dtype=dtype))
            continue
        code = torch.zeros((batch, windows), dtype=torch.long, device=codes.device)
        valid = torch.ones((batch, windows), dtype=torch.bool, device=codes.device)
        for offset in range(k):  # rolling base-4 code of every window
            code = code * 4 + base[:, offset:offset + windows]
            valid = valid & valid_base[:, offset:offset + windows]
        weight = valid.to(dtype)
        counts = torch.zeros((batch, 4 ** k), dtype=dtype, device=codes.device).scatter_add_(
            1, code * valid, weight)  # (B, 4**k)
        parts.append(counts / weight.sum(1, keepdim=True).clamp_min(1.0))
    return torch.cat(parts, 1)


class KmerBag(nn.Module):
    """k-mer frequencies (:func:`kmer_frequencies`) → standardised (batch statistics in
    training, running ones at evaluation) → dropout → ``Linear`` → ReLU → dropout: a
    ``hidden``-wide vector that sits beside the encoder's readout, as a k-mer-count MLP would
    read the sequence, but trained with the rest of the network.

    Parameters
    ----------
    sizes : sequence of int
        The k-mer lengths (1 to 8), e.g. ``(1, 2, 3, 4, 5, 6)``: 5,460 frequencies.
    hidden : int
        Width of the output.
    input_dropout, dropout : float
        Dropout on the frequencies, and on the hidden vector.
    tokenizer : {"char", "onehot"}
        The layout of the inputs.
    """

    def __init__(self, sizes: Sequence[int], *, hidden: int = 256, input_dropout: float = 0.2,
                 dropout: float = 0.5, tokenizer: Literal["char", "onehot"] = "char") -> None:
        super().__init__()
        self.sizes = checked_kmer_sizes(sizes)
        if not self.sizes:
            raise InvalidParameterError("a KmerBag needs at least one k-mer length in sizes")
        if tokenizer not in ("char", "onehot"):
            raise InvalidParameterError(f"k-mer features need tokenizer 'char' or 'onehot' "
                                        f"(one position per base), got {tokenizer!r}")
        self.tokenizer = tokenizer
        self.n_frequencies = sum(4 ** k for k in self.sizes)
        self.hidden = integer("hidden", hidden)
        self.layers = nn.Sequential(
            nn.BatchNorm1d(self.n_frequencies, affine=False),
            nn.Dropout(fraction("input_dropout", input_dropout)),
            nn.Linear(self.n_frequencies, self.hidden), nn.ReLU(),
            nn.Dropout(fraction("dropout", dropout)))

    def forward(self, inputs: Tensor, mask: Tensor) -> Tensor:
        """``inputs`` and ``mask (B, T)`` → ``(B, hidden)``."""
        codes = base_codes(inputs, mask, self.tokenizer)  # (B, T)
        dtype = self.layers[2].weight.dtype
        return self.layers(kmer_frequencies(codes, self.sizes, dtype))  # (B, hidden)


def checked_kmer_sizes(sizes: Sequence[int] | None) -> tuple[int, ...]:
    """Checked k-mer lengths: distinct integers in 1..8, sorted (``None`` / empty: none)."""
    if sizes is None:
        return ()
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__"):
        raise InvalidParameterError(f"kmer_sizes must be a list of k-mer lengths such as "
                                    f"[1, 2, 3, 4, 5, 6], got {sizes!r}")
    checked = sorted({integer("kmer_sizes item", k, 1, 8) for k in sizes})
    return tuple(checked)

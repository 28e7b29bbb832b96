"""Reverse complement of a padded batch of DNA, for test-time averaging over both strands."""

from __future__ import annotations

from torch import Tensor

from datamodules.dna import make_tokenizer

STRANDED_INPUTS = ("char", "onehot")


def reverse_complement_batch(inputs: Tensor, mask: Tensor, tokenizer: str) -> Tensor:
    """The other strand of every row: complemented, and reversed over its valid positions only
    (padding stays at the end of the row, as the memory requires).

    ``inputs`` are char-tokenizer ids ``(B, T)`` or one-hot ``(B, T, 4)`` in A, C, G, T order;
    k-mer ids have no per-position complement (reverse-complement the strings instead).
    """
    if tokenizer not in STRANDED_INPUTS:
        raise ValueError(f"reverse-complement averaging needs tokenizer 'char' or 'onehot', got "
                         f"{tokenizer!r}; for k-mers use rc_augment on the strings")
    return make_tokenizer(tokenizer).reverse_complement_ids(inputs, mask=mask)

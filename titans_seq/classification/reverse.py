"""Reverse complement of a padded batch of DNA, for test-time averaging over both strands."""

from __future__ import annotations

import torch
from torch import Tensor

from datamodules.dna import CharTokenizer

STRANDED_INPUTS = ("char", "onehot")


def _char_complement_table() -> Tensor:
    """``table[id]`` = the id of the complementary base; specials and padding map to
    themselves."""
    tokenizer = CharTokenizer()
    table = torch.arange(tokenizer.vocab_size)
    bases = torch.as_tensor(tokenizer.encode("ACGTN"))
    table[bases] = torch.as_tensor(tokenizer.encode("TGCAN"))
    return table


def reverse_complement_batch(inputs: Tensor, mask: Tensor, tokenizer: str) -> Tensor:
    """The other strand of every row: complemented, and reversed over its valid positions only
    (padding stays at the end of the row, as the memory requires).

    ``inputs`` are char-tokenizer ids ``(B, T)`` or one-hot ``(B, T, 4)`` in A, C, G, T order;
    k-mer ids have no per-position complement (reverse-complement the strings instead).
    """
    if tokenizer == "char":
        complemented = _char_complement_table().to(inputs.device)[inputs]  # (B, T)
    elif tokenizer == "onehot":
        complemented = inputs.flip(-1)  # A, C, G, T → T, G, C, A: the complement per position
    else:
        raise ValueError(f"reverse-complement averaging needs tokenizer 'char' or 'onehot', got "
                         f"{tokenizer!r}; for k-mers use rc_augment on the strings")
    length = inputs.shape[1]
    valid = mask.sum(1, keepdim=True)  # (B, 1)
    steps = torch.arange(length, device=inputs.device)[None, :]  # (1, T)
    index = torch.where(steps < valid, valid - 1 - steps, steps)  # (B, T)
    if complemented.dim() == 3:
        index = index[:, :, None].expand(-1, -1, complemented.shape[-1])  # (B, T, 4)
    return complemented.gather(1, index)

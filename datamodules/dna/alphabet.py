"""The DNA alphabet: normalising raw sequences and reverse-complementing them.

Every sequence that enters the package goes through :func:`normalize_sequence` once, so the
tokenizers only ever see the five letters ``A C G T N``. The rules:

- lowercase letters (soft-masked repeats in genome FASTA files) are upper-cased;
- ``U`` is read as ``T`` only with ``rna=True``; in DNA it is an error, because a ``U`` in a
  DNA file usually means the wrong file was given;
- the IUPAC ambiguity codes ``R Y S W K M B D H V`` become ``N`` with ``ambiguity="n"``
  (the HyenaDNA / Caduceus / Nucleotide Transformer convention), or are an error with
  ``ambiguity="error"``; ``N`` itself is always kept;
- anything else (digits, gaps ``-``, stop ``*``, spaces, ``X`` …) is an error that names the
  sequence, the 0-based position and the letter.
"""

from __future__ import annotations

import re
from typing import Literal

from ..checks import boolean, choice

__all__ = ["DNA_LETTERS", "IUPAC_AMBIGUOUS", "IUPAC_COMPLEMENT", "normalize_sequence",
           "reverse_complement"]

DNA_LETTERS = "ACGT"
IUPAC_AMBIGUOUS = "RYSWKMBDHV"
# Biopython's ``IUPACData.ambiguous_dna_complement``: R=AG↔Y=CT, K=GT↔M=AC, B=CGT↔V=ACG,
# D=AGT↔H=ACT; S=CG, W=AT and N=ACGT are their own complements.
IUPAC_COMPLEMENT = {"A": "T", "C": "G", "G": "C", "T": "A", "N": "N", "R": "Y", "Y": "R",
                    "S": "S", "W": "W", "K": "M", "M": "K", "B": "V", "V": "B", "D": "H",
                    "H": "D"}

_KNOWN = DNA_LETTERS + "N" + IUPAC_AMBIGUOUS
_LETTER_HELP = ("DNA letters are A, C, G, T, N and IUPAC codes R Y S W K M B D H V "
                "(lowercase is read as uppercase)")
AMBIGUITY = ("n", "error")  # IUPAC codes read as N, or refused

# One compiled pattern per (rna) option: the first character outside the alphabet, searched
# on the ORIGINAL text so the reported position and letter are the caller's own.
_INVALID = {rna: re.compile("[^" + _KNOWN + _KNOWN.lower() + ("Uu" if rna else "") + "]")
            for rna in (False, True)}
_AMBIGUOUS = re.compile("[" + IUPAC_AMBIGUOUS + IUPAC_AMBIGUOUS.lower() + "]")
_TO_N = str.maketrans({code: "N" for code in IUPAC_AMBIGUOUS})
_COMPLEMENT = str.maketrans({**IUPAC_COMPLEMENT,
                             **{k.lower(): v.lower() for k, v in IUPAC_COMPLEMENT.items()}})
_NOT_COMPLEMENTABLE = re.compile("[^" + _KNOWN + _KNOWN.lower() + "]")


def _label(name: str | None) -> str:
    return "the sequence" if name is None else f"sequence {name!r}"


def normalize_sequence(sequence: str, *, ambiguity: Literal["n", "error"] = "n",
                       rna: bool = False, name: str | None = None) -> str:
    """Upper-case a DNA sequence and reduce it to the letters ``A C G T N``.

    Parameters
    ----------
    sequence : str
        Raw sequence text, e.g. ``str(record.seq)``; lowercase (soft-masked) letters allowed.
    ambiguity : {"n", "error"}
        ``"n"`` maps the IUPAC ambiguity codes ``R Y S W K M B D H V`` to ``N``; ``"error"``
        rejects them. ``N`` is kept under both policies.
    rna : bool
        Read ``U`` as ``T`` (RNA input). Without it a ``U`` is an error.
    name : str, optional
        Name of the sequence (record id or index), used in error messages.

    Returns
    -------
    str
        The sequence over ``A C G T N``, as long as the input.

    Raises
    ------
    TypeError
        If ``sequence`` is not a ``str``.
    ValueError
        If the sequence is empty, or has a character outside the alphabet (the message names
        the sequence, the 0-based position and the character).

    Examples
    --------
    >>> normalize_sequence("acgtRYn")
    'ACGTNNN'
    >>> normalize_sequence("ACGU", rna=True)
    'ACGT'
    """
    if not isinstance(sequence, str):
        hint = "decode it first (e.g. data.decode('ascii'))" if isinstance(
            sequence, (bytes, bytearray)) else "convert it with str(...) (e.g. str(record.seq))"
        raise TypeError(f"{_label(name)} must be a str, got {type(sequence).__name__}; {hint}")
    choice("ambiguity", ambiguity, AMBIGUITY)
    boolean("rna", rna)
    if not sequence:
        raise ValueError(f"{_label(name)} is empty; remove empty records from the input")
    bad = _INVALID[rna].search(sequence)
    if bad is not None:
        letter, position = bad.group(), bad.start()
        if letter in "Uu":
            fix = "it looks like RNA; pass rna=True to read U as T"
        elif letter.isspace():
            fix = "remove whitespace inside sequences (line breaks belong between FASTA lines)"
        else:
            fix = "remove or replace it (e.g. with N) before reading"
        raise ValueError(f"{_label(name)} has {letter!r} at position {position}; "
                         f"{_LETTER_HELP}; {fix}")
    if ambiguity == "error":
        code = _AMBIGUOUS.search(sequence)
        if code is not None:
            raise ValueError(f"{_label(name)} has the IUPAC ambiguity code {code.group()!r} at "
                             f"position {code.start()}; use ambiguity='n' to read ambiguity "
                             f"codes as N, or clean the sequence")
    upper = sequence.upper()
    if rna:
        upper = upper.replace("U", "T")
    return upper.translate(_TO_N)


def reverse_complement(sequence: str) -> str:
    """Reverse complement of a DNA sequence with IUPAC codes, preserving case.

    ``A↔T``, ``C↔G``, ``R↔Y``, ``K↔M``, ``B↔V``, ``D↔H``; ``S``, ``W`` and ``N`` map to
    themselves (the same table as ``Bio.Seq.reverse_complement`` for DNA). Unlike the
    hand-written maps of some DNA models, an unknown letter is an error rather than passed
    through unchanged.

    Parameters
    ----------
    sequence : str
        DNA letters ``A C G T N`` and IUPAC codes, either case. May be empty.

    Returns
    -------
    str

    Raises
    ------
    TypeError
        If ``sequence`` is not a ``str``.
    ValueError
        If it contains a character without a DNA complement (e.g. ``U``, ``-``, ``X``).
    """
    if not isinstance(sequence, str):
        raise TypeError(f"reverse_complement needs a str, got {type(sequence).__name__}; "
                        f"convert it with str(...)")
    bad = _NOT_COMPLEMENTABLE.search(sequence)
    if bad is not None:
        raise ValueError(f"cannot complement {bad.group()!r} at position {bad.start()}; "
                         f"{_LETTER_HELP}; run normalize_sequence first (rna=True turns U "
                         f"into T)")
    return sequence.translate(_COMPLEMENT)[::-1]

"""Tokenizers from normalised DNA strings to arrays, and dynamic padding of a batch.

Three encodings (choose with :func:`make_tokenizer`):

- ``"char"`` (:class:`CharTokenizer`): one id per base, the HyenaDNA/Caduceus layout
  ``0 PAD, 1 UNK, 2 CLS, 3 SEP, 4 MASK, 5 A, 6 C, 7 G, 8 T, 9 N``. The default for long
  context models such as Titans.
- ``"onehot"`` (:class:`OneHotTokenizer`): ``(L, 4)`` floats over ``A C G T``; ``N`` is a zero
  vector or ``0.25`` in each channel.
- ``"kmer"`` (:class:`KmerTokenizer`): non-overlapping k-mers, the Nucleotide Transformer rule
  (``N`` never grouped, leftovers as single bases), so the token count differs from the length.

Input strings must already be normalised (:func:`~datamodules.dna.alphabet.normalize_sequence`):
only ``A C G T N`` are accepted. Padding (:func:`pad_batch`) is always at the END of a row and
comes with a boolean mask, True = valid token.
"""

from __future__ import annotations

from itertools import product
from typing import Literal, Sequence

import numpy as np
import torch

from ..checks import crop_options, integer

__all__ = ["CharTokenizer", "DNATokenizer", "KmerTokenizer", "OneHotTokenizer", "make_tokenizer",
           "pad_batch", "pad_rows"]

_BASE_CODE = np.full(256, -1, dtype=np.int64)  # byte → 0..4 for A C G T N, -1 otherwise
for _code, _letter in enumerate("ACGTN"):
    _BASE_CODE[ord(_letter)] = _code


def _base_codes(sequence: str, owner: str) -> np.ndarray:
    """``A C G T N`` → ``0 1 2 3 4`` as int64, checking that the string is normalised."""
    if not isinstance(sequence, str):
        raise TypeError(f"{owner}.encode needs a str, got {type(sequence).__name__}")
    if not sequence:
        raise ValueError(f"{owner}.encode got an empty sequence; empty records must be removed")
    try:
        raw = np.frombuffer(sequence.encode("ascii"), dtype=np.uint8)
    except UnicodeEncodeError:
        raw = None
    codes = None if raw is None else _BASE_CODE[raw]
    if codes is None or (codes < 0).any():
        position = next(i for i, c in enumerate(sequence) if c not in "ACGTN")
        raise ValueError(f"{owner}.encode expects a normalised sequence over A, C, G, T, N, but "
                         f"found {sequence[position]!r} at position {position}; pass it "
                         f"through normalize_sequence first")
    return codes


def _flip_valid(values: np.ndarray | torch.Tensor, mask: np.ndarray | torch.Tensor | None):
    """Reverse each row over its valid (leading) part; trailing padding stays in place."""
    is_torch = isinstance(values, torch.Tensor)
    if mask is None:
        return values.flip(0) if is_torch else values[::-1].copy()
    if values.ndim < 2 or tuple(mask.shape) != tuple(values.shape[:2]):
        raise ValueError(f"mask must have the (B, T) shape of the batch, got "
                         f"{tuple(mask.shape)} for inputs {tuple(values.shape)}")
    steps = values.shape[1]
    if is_torch:
        lengths = torch.as_tensor(mask).long().sum(1, keepdim=True)
        source = lengths - 1 - torch.arange(steps, device=values.device)
        valid = source >= 0
        source = torch.where(valid, source, torch.arange(steps, device=values.device))
        index = source.view(*source.shape, *([1] * (values.ndim - 2))).expand_as(values)
        return torch.gather(values, 1, index)
    lengths = np.asarray(mask).astype(np.int64).sum(1, keepdims=True)
    source = lengths - 1 - np.arange(steps)
    source = np.where(source >= 0, source, np.arange(steps))
    return np.take_along_axis(values, source.reshape(*source.shape, *([1] * (values.ndim - 2))),
                              axis=1)


class DNATokenizer:
    """Base class: a normalised DNA string → a numpy array.

    Attributes
    ----------
    name : str
        ``"char"``, ``"onehot"`` or ``"kmer"``.
    vocab_size : int or None
        Number of token ids (None for one-hot, whose output is features, not ids).
    n_features : int
        Last dimension of the encoded array: 1 for ids, 4 for one-hot.
    pad_id : int
        Padding value: the PAD id (0) for ids, 0.0 for one-hot.
    is_ids : bool
        True when ``encode`` returns int64 ids ``(L',)``, False for float32 ``(L, C)``.
    """

    name: str = ""
    vocab_size: int | None = None
    n_features: int = 1
    pad_id: int = 0
    is_ids: bool = True

    def encode(self, sequence: str) -> np.ndarray:
        """Encode one normalised sequence (letters ``A C G T N`` only)."""
        raise NotImplementedError

    def reverse_complement_ids(self, ids: np.ndarray | torch.Tensor, *,
                               mask: np.ndarray | torch.Tensor | None = None):
        """Reverse complement of an encoded sequence (or a right-padded batch with its mask).

        Only possible when the encoding is per base (``char``, ``onehot``); for k-mers
        reverse-complement the string before encoding (``DNADataset(rc_augment=...)`` does).
        """
        raise NotImplementedError(
            f"the {self.name!r} tokenizer cannot reverse-complement encoded tokens, because "
            f"k-mer grouping is anchored at the left end; reverse-complement the string with "
            f"reverse_complement() before encoding instead")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class CharTokenizer(DNATokenizer):
    """One id per base: ``0 PAD, 1 UNK, 2 CLS, 3 SEP, 4 MASK, 5 A, 6 C, 7 G, 8 T, 9 N``.

    Examples
    --------
    >>> CharTokenizer().encode("ACGTN")
    array([5, 6, 7, 8, 9])
    """

    name = "char"
    vocab_size = 10
    n_features = 1
    pad_id = 0
    is_ids = True
    SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
    # complement per id: specials and N to themselves, A(5)↔T(8), C(6)↔G(7)
    COMPLEMENT_IDS = np.array([0, 1, 2, 3, 4, 8, 7, 6, 5, 9], dtype=np.int64)

    @property
    def vocab(self) -> dict[str, int]:
        """Token → id."""
        return {token: i for i, token in enumerate(self.SPECIALS + tuple("ACGTN"))}

    def encode(self, sequence: str) -> np.ndarray:
        return _base_codes(sequence, "CharTokenizer") + len(self.SPECIALS)

    def reverse_complement_ids(self, ids: np.ndarray | torch.Tensor, *,
                               mask: np.ndarray | torch.Tensor | None = None):
        """Reverse complement of char ids.

        Parameters
        ----------
        ids : ndarray or Tensor
            ``(L,)`` ids of one sequence, or a ``(B, T)`` right-padded batch with ``mask``.
        mask : ndarray or Tensor, optional
            ``(B, T)`` bool, True = valid. Each row is flipped over its valid part only, so
            the padding stays at the end.

        Returns
        -------
        ndarray or Tensor
            Same type and shape as ``ids``.
        """
        if isinstance(ids, torch.Tensor):
            lut = torch.as_tensor(self.COMPLEMENT_IDS, device=ids.device)
            if ids.dtype.is_floating_point or ((ids < 0) | (ids >= self.vocab_size)).any():
                raise ValueError(f"ids must be integers in [0, {self.vocab_size})")
            complemented = lut[ids.long()]
        else:
            ids = np.asarray(ids)
            if not np.issubdtype(ids.dtype, np.integer) or \
                    ((ids < 0) | (ids >= self.vocab_size)).any():
                raise ValueError(f"ids must be integers in [0, {self.vocab_size}), e.g. the "
                                 f"output of CharTokenizer.encode")
            complemented = self.COMPLEMENT_IDS[ids]
        if mask is None and complemented.ndim != 1:
            raise ValueError("a (B, T) batch needs its mask= to know where each row ends")
        return _flip_valid(complemented, mask)


class OneHotTokenizer(DNATokenizer):
    """``(L, 4)`` float32 one-hot over ``A C G T``.

    Parameters
    ----------
    n_value : {"zero", "uniform"}
        ``N`` as a zero vector (HyenaDNA) or ``0.25`` in every channel.
    """

    name = "onehot"
    vocab_size = None
    n_features = 4
    pad_id = 0
    is_ids = False

    def __init__(self, n_value: Literal["zero", "uniform"] = "zero") -> None:
        if n_value not in ("zero", "uniform"):
            raise ValueError(f"n_value must be 'zero' (N is a zero vector) or 'uniform' "
                             f"(0.25 per base), got {n_value!r}")
        self.n_value = n_value
        table = np.zeros((5, 4), dtype=np.float32)
        table[np.arange(4), np.arange(4)] = 1.0
        table[4] = 0.25 if n_value == "uniform" else 0.0
        self._table = table

    def encode(self, sequence: str) -> np.ndarray:
        return self._table[_base_codes(sequence, "OneHotTokenizer")]

    def reverse_complement_ids(self, ids: np.ndarray | torch.Tensor, *,
                               mask: np.ndarray | torch.Tensor | None = None):
        """Reverse complement of one-hot rows: flip time, reverse channels (``ACGT → TGCA``).

        ``ids`` is ``(L, 4)`` or a right-padded ``(B, T, 4)`` batch with its ``(B, T)`` mask.
        """
        if ids.shape[-1] != 4 or ids.ndim not in (2, 3):
            raise ValueError(f"one-hot input must be (L, 4) or (B, T, 4), got {tuple(ids.shape)}")
        if mask is None and ids.ndim == 3:
            raise ValueError("a (B, T, 4) batch needs its mask= to know where each row ends")
        swapped = ids.flip(-1) if isinstance(ids, torch.Tensor) else np.asarray(ids)[..., ::-1]
        return _flip_valid(swapped, mask)

    def __repr__(self) -> str:
        return f"OneHotTokenizer(n_value={self.n_value!r})"


class KmerTokenizer(DNATokenizer):
    """Non-overlapping k-mers from the left, the Nucleotide Transformer rule.

    Ids: ``0 PAD, 1 UNK``, then the single bases ``A C G T N`` (2–6), then all ``4**k``
    k-mers over ``ACGT`` in lexicographic order (``7 + rank``), so ``vocab_size = 7 + 4**k``.

    Grouping rule: reading from the left, a window of ``k`` bases without ``N`` becomes one
    k-mer token. A window that contains an ``N`` is never grouped: its bases up to and
    including the first ``N`` are emitted as single-base tokens, and grouping restarts right
    after that ``N``. A tail shorter than ``k`` is emitted as single bases. Equivalently: split
    the sequence at every ``N``, cut each N-free run into k-mers from its start, and emit the
    run's leftover (< k bases) and each ``N`` as single tokens.

    Parameters
    ----------
    k : int
        k-mer length, 1 to 8 (8 already gives 65 543 ids).

    Examples
    --------
    >>> KmerTokenizer(k=2).encode("ACGNTTA")  # AC, G, N, TT, A
    array([ 8,  4,  6, 22,  2])
    """

    name = "kmer"
    n_features = 1
    pad_id = 0
    is_ids = True
    SINGLE_OFFSET = 2  # ids of the single bases A C G T N
    KMER_OFFSET = 7

    def __init__(self, k: int = 6) -> None:
        self.k = integer("k", k, 1, 8, hint="the Nucleotide Transformer uses k=6")
        self.vocab_size = self.KMER_OFFSET + 4 ** self.k
        self._powers = 4 ** np.arange(self.k - 1, -1, -1, dtype=np.int64)

    @property
    def vocab(self) -> dict[str, int]:
        """Token → id (built on demand: ``4**k`` entries)."""
        tokens = ["[PAD]", "[UNK]", *"ACGTN"]
        tokens += ["".join(kmer) for kmer in product("ACGT", repeat=self.k)]
        return {token: i for i, token in enumerate(tokens)}

    def encode(self, sequence: str) -> np.ndarray:
        codes = _base_codes(sequence, "KmerTokenizer")
        length, k = len(codes), self.k
        positions = np.arange(length)
        is_n = codes == 4
        # Start of the N-free run each position belongs to, and where that run ends (next N).
        run_start = np.maximum.accumulate(np.where(is_n, positions + 1, 0))
        run_end = np.minimum.accumulate(np.where(is_n, positions, length)[::-1])[::-1]
        offset = positions - run_start
        grouped = ~is_n & (offset < (run_end - run_start) // k * k)
        kmer_start = grouped & (offset % k == 0)
        emitted = kmer_start | ~grouped
        ids = codes + self.SINGLE_OFFSET
        starts = np.flatnonzero(kmer_start)
        if starts.size:
            windows = np.lib.stride_tricks.sliding_window_view(codes, k)[starts]
            ids[starts] = self.KMER_OFFSET + windows @ self._powers
        return ids[emitted]

    def __repr__(self) -> str:
        return f"KmerTokenizer(k={self.k})"


TOKENIZERS = ("char", "onehot", "kmer")


def make_tokenizer(name: Literal["char", "onehot", "kmer"] = "char", k: int = 6) -> DNATokenizer:
    """The tokenizer called ``name`` (``k`` is used by ``"kmer"`` only)."""
    if name == "char":
        return CharTokenizer()
    if name == "onehot":
        return OneHotTokenizer()
    if name == "kmer":
        return KmerTokenizer(k)
    raise ValueError(f"unknown tokenizer {name!r}; choose one of {', '.join(TOKENIZERS)}")


def pad_batch(encoded: Sequence[np.ndarray], *, pad_id: int = 0, max_length: int | None = None,
              crop: Literal["right", "left", "center"] = "right",
              padding: Literal["dynamic", "max_length"] = "dynamic"
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack encoded sequences into one right-padded batch with a validity mask.

    Parameters
    ----------
    encoded : sequence of ndarray
        ``(L_i,)`` ids or ``(L_i, C)`` features, one per sequence (all of one kind).
    pad_id : int
        Value written into the padding.
    max_length : int, optional
        Crop longer rows to this many tokens first: ``"right"`` keeps the first
        ``max_length``, ``"left"`` the last, ``"center"`` the middle ones. The batch is then
        ``min(longest row, max_length)`` long: never padded beyond its longest row.
    crop : {"right", "left", "center"}
        Which end(s) of a long row are cut off.
    padding : {"dynamic", "max_length"}
        Pad to the batch's longest (cropped) row, or every batch to exactly ``max_length``
        (fixed shapes, e.g. for compiled models; needs ``max_length``).

    Returns
    -------
    inputs : Tensor
        int64 ``(B, T)`` for 1-D rows, float32 ``(B, T, C)`` for 2-D rows.
    mask : Tensor
        bool ``(B, T)``, True = valid. Padding is only at the END of each row, so the last
        valid position of row ``b`` is ``mask[b].sum() - 1``.
    """
    if isinstance(encoded, (np.ndarray, torch.Tensor)) or not isinstance(encoded, Sequence):
        raise TypeError("encoded must be a list of per-sequence arrays, got "
                        f"{type(encoded).__name__}; wrap a single array as [array]")
    if len(encoded) == 0:
        raise ValueError("pad_batch got no sequences; pass at least one encoded array")
    max_length, crop, padding = crop_options(max_length, crop, padding)
    return pad_rows(encoded, pad_id, max_length, crop, padding)


def pad_rows(encoded: Sequence[np.ndarray], pad_id: int, max_length: int | None, crop: str,
             padding: str) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`pad_batch` with options already checked (by :func:`~datamodules.checks.
    crop_options`): the per-batch work of a DataLoader's collate function."""
    rows = [np.asarray(row) for row in encoded]
    ndim = rows[0].ndim
    for i, row in enumerate(rows):
        if row.ndim != ndim or ndim not in (1, 2) or (ndim == 2 and
                                                      row.shape[1] != rows[0].shape[1]):
            raise ValueError(f"row {i} has shape {row.shape}, row 0 {rows[0].shape}; all rows "
                             f"must be (L,) ids or (L, C) features with the same C")
        if len(row) == 0:
            raise ValueError(f"row {i} is empty; every sequence needs at least one token")
    if max_length is not None:
        cropped = []
        for row in rows:
            excess = len(row) - max_length
            if excess > 0:
                start = {"right": 0, "left": excess, "center": excess // 2}[crop]
                row = row[start:start + max_length]
            cropped.append(row)
        rows = cropped
    steps = max_length if padding == "max_length" else max(len(row) for row in rows)
    if ndim == 1:
        if not np.issubdtype(rows[0].dtype, np.integer):
            raise TypeError(f"1-D rows must hold integer ids, got {rows[0].dtype}")
        inputs = np.full((len(rows), steps), pad_id, dtype=np.int64)
    else:
        inputs = np.full((len(rows), steps, rows[0].shape[1]), pad_id, dtype=np.float32)
    mask = np.zeros((len(rows), steps), dtype=bool)
    for b, row in enumerate(rows):
        inputs[b, :len(row)] = row
        mask[b, :len(row)] = True
    return torch.from_numpy(inputs), torch.from_numpy(mask)

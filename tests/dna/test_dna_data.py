"""DNA alphabet, tokenizers and dynamic padding (`datamodules.dna`)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from Bio.Seq import reverse_complement as bio_reverse_complement

from datamodules.dna import (DNA_LETTERS, IUPAC_AMBIGUOUS, CharTokenizer, KmerTokenizer,
                             OneHotTokenizer, make_tokenizer, normalize_sequence, pad_batch,
                             reverse_complement)


# -- normalisation ----------------------------------------------------------------------------
def test_soft_mask_and_iupac_become_upper_case_and_n():
    assert normalize_sequence("acgtNnACGT") == "ACGTNNACGT"
    assert normalize_sequence("A" + IUPAC_AMBIGUOUS + IUPAC_AMBIGUOUS.lower()) == "A" + "N" * 20
    assert DNA_LETTERS == "ACGT" and IUPAC_AMBIGUOUS == "RYSWKMBDHV"


def test_error_policy_names_sequence_position_and_code():
    assert normalize_sequence("ACGTN", ambiguity="error") == "ACGTN"  # N is always allowed
    with pytest.raises(ValueError, match=r"sequence 'chr1:5-9' .* 'r' at position 3.*"
                                         r"ambiguity='n'"):
        normalize_sequence("ACGrT", ambiguity="error", name="chr1:5-9")
    with pytest.raises(ValueError, match="ambiguity must be"):
        normalize_sequence("ACGT", ambiguity="unk")


def test_u_is_read_as_t_only_for_rna():
    assert normalize_sequence("ACGUu", rna=True) == "ACGTT"
    with pytest.raises(ValueError, match=r"'U' at position 3.*rna=True"):
        normalize_sequence("ACGU", name="r1")


@pytest.mark.parametrize("text, letter, position", [
    ("ACGTX", "X", 4), ("AC-GT", "-", 2), ("ACG*", "*", 3), ("AC GT", " ", 2),
    ("A1CG", "1", 1), ("ACGTé", "é", 4)])
def test_junk_letters_are_errors_with_position(text, letter, position):
    expected = f"sequence 'seq3' has {letter!r} at position {position}; DNA letters are A, C"
    with pytest.raises(ValueError, match=re.escape(expected)):
        normalize_sequence(text, name="seq3")


def test_empty_and_non_str():
    with pytest.raises(ValueError, match="'s' is empty"):
        normalize_sequence("", name="s")
    with pytest.raises(TypeError, match="decode it first"):
        normalize_sequence(b"ACGT")
    with pytest.raises(TypeError, match="must be a str"):
        normalize_sequence(None)


def test_reverse_complement_matches_biopython_on_random_iupac():
    rng = np.random.default_rng(0)
    letters = np.array(list("ACGTN" + IUPAC_AMBIGUOUS + "acgtn" + IUPAC_AMBIGUOUS.lower()))
    for length in (1, 2, 17, 300):
        for _ in range(20):
            text = "".join(rng.choice(letters, length))
            assert reverse_complement(text) == bio_reverse_complement(text)
    assert reverse_complement("AACGTn") == "nACGTT"
    assert reverse_complement("") == ""
    with pytest.raises(ValueError, match="'U' at position 2"):
        reverse_complement("ACU")
    with pytest.raises(TypeError):
        reverse_complement(["ACGT"])


# -- tokenizers -------------------------------------------------------------------------------
def test_char_tokenizer_ids_and_rc():
    tokenizer = CharTokenizer()
    assert (tokenizer.name, tokenizer.vocab_size, tokenizer.n_features, tokenizer.pad_id,
            tokenizer.is_ids) == ("char", 10, 1, 0, True)
    ids = tokenizer.encode("ACGTNA")
    assert ids.dtype == np.int64 and ids.tolist() == [5, 6, 7, 8, 9, 5]
    assert tokenizer.vocab["[MASK]"] == 4 and tokenizer.vocab["N"] == 9
    # RC on ids equals encoding the RC string, also on a right-padded batch
    text = "AACGTNGG"
    assert tokenizer.reverse_complement_ids(tokenizer.encode(text)).tolist() == \
        tokenizer.encode(reverse_complement(text)).tolist()
    inputs, mask = pad_batch([tokenizer.encode(text), tokenizer.encode("ACC")])
    flipped = tokenizer.reverse_complement_ids(inputs, mask=mask)
    expected, _ = pad_batch([tokenizer.encode(reverse_complement(text)),
                             tokenizer.encode("GGT")])
    assert torch.equal(flipped, expected)
    with pytest.raises(ValueError, match="normalize_sequence"):
        tokenizer.encode("ACgT")
    with pytest.raises(ValueError, match="empty"):
        tokenizer.encode("")


@pytest.mark.parametrize("n_value, n_row", [("zero", [0, 0, 0, 0]),
                                             ("uniform", [0.25, 0.25, 0.25, 0.25])])
def test_onehot_encodes_n_as_zero_or_uniform(n_value, n_row):
    tokenizer = OneHotTokenizer(n_value)
    assert (tokenizer.vocab_size, tokenizer.n_features, tokenizer.is_ids) == (None, 4, False)
    out = tokenizer.encode("ACGTN")
    assert out.dtype == np.float32 and out.shape == (5, 4)
    np.testing.assert_array_equal(out[:4], np.eye(4))
    np.testing.assert_array_equal(out[4], n_row)
    np.testing.assert_array_equal(tokenizer.reverse_complement_ids(tokenizer.encode("AACN")),
                                  tokenizer.encode("NGTT"))
    with pytest.raises(ValueError, match="n_value"):
        OneHotTokenizer("half")


def _kmer_id(kmer: str, k: int) -> int:
    return 7 + int("".join(str("ACGT".index(c)) for c in kmer), 4) if k > 1 else \
        7 + "ACGT".index(kmer)


def test_kmer_grouping_with_n_and_leftovers():
    tokenizer = KmerTokenizer(k=3)
    assert tokenizer.vocab_size == 7 + 4 ** 3 and KmerTokenizer().vocab_size == 7 + 4 ** 6
    single = {b: 2 + i for i, b in enumerate("ACGTN")}
    # ACG TTA | C G N (window 'CGN' holds N → singles up to and including N) | GGA | T C (tail)
    ids = tokenizer.encode("ACGTTACGNGGATC")
    assert ids.dtype == np.int64
    assert ids.tolist() == [_kmer_id("ACG", 3), _kmer_id("TTA", 3), single["C"], single["G"],
                            single["N"], _kmer_id("GGA", 3), single["T"], single["C"]]
    assert tokenizer.encode("NNA").tolist() == [6, 6, 2]
    assert tokenizer.encode("AAAA").tolist() == [7, 2]
    # the vocabulary's order agrees with the ids
    vocab = tokenizer.vocab
    assert len(vocab) == tokenizer.vocab_size and vocab["TTA"] == _kmer_id("TTA", 3)
    with pytest.raises(NotImplementedError, match="before encoding"):
        tokenizer.reverse_complement_ids(ids)


def test_kmer_matches_split_on_n_reference():
    """Random sequences against the 'split at N, group each run from its start' rule."""
    rng = np.random.default_rng(1)
    for k in (1, 2, 6):
        tokenizer = KmerTokenizer(k)
        for _ in range(30):
            text = "".join(rng.choice(list("ACGTN"), p=[.22, .22, .22, .22, .12],
                                      size=int(rng.integers(1, 40))))
            expected = []
            for i, run in enumerate(text.split("N")):
                if i:
                    expected.append(6)
                full = len(run) // k * k
                expected += [_kmer_id(run[j:j + k], k) for j in range(0, full, k)]
                expected += [2 + "ACGT".index(c) for c in run[full:]]
            assert tokenizer.encode(text).tolist() == expected, text


def test_make_tokenizer_and_k_validation():
    assert make_tokenizer().name == "char"
    assert make_tokenizer("onehot").name == "onehot"
    assert make_tokenizer("kmer", k=4).vocab_size == 7 + 256
    with pytest.raises(ValueError, match="char, onehot, kmer"):
        make_tokenizer("bpe")
    for k in (0, 9, 2.0, True):
        with pytest.raises(ValueError, match="k must be an int from 1 to 8"):
            KmerTokenizer(k)


# -- padding ----------------------------------------------------------------------------------
def test_pad_batch_is_dynamic_with_trailing_padding():
    rows = [np.arange(1, 6), np.arange(1, 3), np.arange(1, 4)]
    inputs, mask = pad_batch(rows, pad_id=0)
    assert inputs.dtype == torch.int64 and mask.dtype == torch.bool
    assert inputs.tolist() == [[1, 2, 3, 4, 5], [1, 2, 0, 0, 0], [1, 2, 3, 0, 0]]
    assert mask.sum(1).tolist() == [5, 2, 3]
    # valid positions are a prefix of each row: padding only at the end
    assert torch.equal(mask, torch.arange(5) < mask.sum(1, keepdim=True))
    # max_length larger than the longest row: not padded beyond it
    assert pad_batch(rows, max_length=100)[0].shape == (3, 5)


@pytest.mark.parametrize("crop, first_row", [("right", [0, 1, 2, 3]), ("left", [5, 6, 7, 8]),
                                             ("center", [2, 3, 4, 5])])
def test_pad_batch_crops(crop, first_row):
    # 9 tokens cropped to 4: an odd excess of 5, so "center" drops 2 on the left, 3 on the right
    inputs, mask = pad_batch([np.arange(9), np.arange(2)], pad_id=-1, max_length=4, crop=crop)
    assert inputs.tolist() == [first_row, [0, 1, -1, -1]]
    assert mask.tolist() == [[True] * 4, [True, True, False, False]]


def test_pad_batch_features_and_errors():
    onehot = OneHotTokenizer()
    inputs, mask = pad_batch([onehot.encode("ACG"), onehot.encode("T")])
    assert inputs.dtype == torch.float32 and inputs.shape == (2, 3, 4)
    assert inputs[1, 1:].abs().sum() == 0 and mask.tolist() == [[True] * 3, [True, False, False]]
    with pytest.raises(ValueError, match="no sequences"):
        pad_batch([])
    with pytest.raises(ValueError, match="row 1 has shape"):
        pad_batch([np.arange(3), np.zeros((3, 4))])
    with pytest.raises(ValueError, match="row 0 is empty"):
        pad_batch([np.arange(0)])
    with pytest.raises(ValueError, match="crop must be"):
        pad_batch([np.arange(3)], crop="middle")
    with pytest.raises(ValueError, match="max_length"):
        pad_batch([np.arange(3)], max_length=0)
    with pytest.raises(TypeError, match="list of per-sequence arrays"):
        pad_batch(np.arange(3))


def test_fixed_length_padding():
    rows = [np.array([5, 6, 7]), np.array([5, 6, 7, 8, 9, 5, 6])]
    inputs, mask = pad_batch(rows, max_length=5, padding="max_length")
    assert inputs.shape == (2, 5) and mask.sum(1).tolist() == [3, 5]
    assert inputs[0].tolist() == [5, 6, 7, 0, 0]
    short, _ = pad_batch(rows[:1], max_length=5, padding="max_length")
    assert short.shape == (1, 5)  # fixed even when every row is shorter
    with pytest.raises(ValueError, match="set max_length"):
        pad_batch(rows, padding="max_length")
    with pytest.raises(ValueError, match="padding must be"):
        pad_batch(rows, padding="longest")

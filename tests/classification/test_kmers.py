"""The k-mer branch: frequencies counted in the network equal a plain count, and the branch
keeps the classifier's padding contract."""

from collections import Counter
from itertools import product

import numpy as np
import pytest
import torch

from datamodules.checks import InvalidParameterError
from datamodules.dna import CharTokenizer, OneHotTokenizer, pad_batch
from titans_seq.classification import KmerBag, TitansClassifierNet
from titans_seq.classification.kmers import base_codes, kmer_frequencies

SIZES = (1, 2, 3)


def random_dna(rng, n, low, high):
    return ["".join(rng.choice(list("ACGTN"), size=rng.integers(low, high),
                               p=[0.23, 0.23, 0.23, 0.23, 0.08])) for _ in range(n)]


def counted(sequence: str, k: int) -> np.ndarray:
    """Overlapping k-mers without N, as frequencies in lexicographic ACGT order."""
    words = Counter(sequence[i:i + k] for i in range(len(sequence) - k + 1)
                    if "N" not in sequence[i:i + k])
    vocabulary = ["".join(word) for word in product("ACGT", repeat=k)]
    total = sum(words.values())
    return np.array([words[w] / total if total else 0.0 for w in vocabulary])


@pytest.mark.parametrize("tokenizer", [CharTokenizer(), OneHotTokenizer()])
def test_frequencies_equal_a_plain_count(tokenizer):
    sequences = random_dna(np.random.default_rng(0), 8, 1, 40) + ["N", "NNACG"]
    inputs, mask = pad_batch([tokenizer.encode(s) for s in sequences])
    frequencies = kmer_frequencies(base_codes(inputs, mask, tokenizer.name), SIZES)
    for row, sequence in enumerate(sequences):
        expected = np.concatenate([counted(sequence, k) for k in SIZES])
        np.testing.assert_allclose(frequencies[row].numpy(), expected, atol=1e-6)


def test_branch_keeps_the_padding_contract():
    torch.manual_seed(0)
    net = TitansClassifierNet(2, vocab_size=10, dim=16, depth=1, memory_heads=2, chunk_size=4,
                              stem_kernel=4, stem_stride=2, kmer_sizes=SIZES, kmer_hidden=8,
                              tokenizer="char")
    # Running statistics that are not the identity, so the test reads them.
    net.train()
    sequences = random_dna(np.random.default_rng(1), 6, 3, 25)
    tokenizer = CharTokenizer()
    inputs, mask = pad_batch([tokenizer.encode(s) for s in sequences])
    net(inputs, mask)
    net.eval()
    batched = net(inputs, mask)
    for row, sequence in enumerate(sequences):
        alone = net(torch.as_tensor(tokenizer.encode(sequence))[None])
        torch.testing.assert_close(batched[row], alone[0], atol=1e-5, rtol=1e-5)
    assert net.kmer_head.in_features == 8


def test_bad_options_are_refused():
    with pytest.raises(InvalidParameterError, match="kmer_sizes item"):
        KmerBag((0, 3))
    with pytest.raises(InvalidParameterError, match="list of k-mer lengths"):
        KmerBag("123")
    with pytest.raises(InvalidParameterError, match="tokenizer 'char' or 'onehot'"):
        KmerBag((3,), tokenizer="kmer")
    with pytest.raises(InvalidParameterError, match="at least one"):
        KmerBag(())


def test_staged_training_freezes_one_branch_and_starts_the_encoder_at_zero():
    torch.manual_seed(0)
    net = TitansClassifierNet(2, vocab_size=10, dim=16, depth=1, memory_heads=2, chunk_size=4,
                              kmer_sizes=SIZES, kmer_hidden=8, tokenizer="char")
    inputs, mask = pad_batch([CharTokenizer().encode(s) for s in
                              random_dna(np.random.default_rng(2), 5, 4, 20)])
    net.train_only("kmers")
    assert not any(p.requires_grad for p in net.trunk.parameters())
    assert all(p.requires_grad for p in net.kmers.parameters())
    # The encoder does not run: its weights change nothing.
    net.eval()
    before = net(inputs, mask)
    with torch.no_grad():
        net.trunk.embed.weight.add_(1.0)
    torch.testing.assert_close(net(inputs, mask), before)
    net.train_only("encoder")
    torch.testing.assert_close(net(inputs, mask), before)  # the encoder's head starts at 0
    assert all(p.requires_grad for p in net.trunk.parameters())
    assert not any(p.requires_grad for p in net.kmers.parameters())
    net.train()
    assert net.trunk.training and not net.kmers.training  # frozen statistics stay
    with pytest.raises(ValueError, match="needs the k-mer branch"):
        TitansClassifierNet(2, vocab_size=10, dim=16, depth=1, memory_heads=2,
                            chunk_size=4).train_only("kmers")

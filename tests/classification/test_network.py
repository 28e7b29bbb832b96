"""`TitansClassifierNet` readouts and padding, and reverse-complement batches."""

import numpy as np
import pytest
import torch
from Bio.Seq import reverse_complement

from datamodules.dna import CharTokenizer, OneHotTokenizer, pad_batch
from titans_seq.classification import ClassificationModule, TitansClassifierNet
from titans_seq.classification.reverse import reverse_complement_batch


def random_dna(rng, n, low, high):
    return ["".join(rng.choice(list("ACGTN"), size=rng.integers(low, high),
                               p=[0.24, 0.24, 0.24, 0.24, 0.04])) for _ in range(n)]


@pytest.mark.parametrize("readout", ["last", "mean"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("stem_kernel", [0, 5])
def test_padding_changes_nothing(readout, bidirectional, stem_kernel):
    torch.manual_seed(0)
    net = TitansClassifierNet(3, vocab_size=10, readout=readout, dim=16, depth=1,
                              memory_heads=2, chunk_size=4, dropout=0.0,
                              bidirectional=bidirectional, stem_kernel=stem_kernel).eval()
    sequences = random_dna(np.random.default_rng(0), 4, 5, 23)
    tokenizer = CharTokenizer()
    inputs, mask = pad_batch([tokenizer.encode(s) for s in sequences])
    batched = net(inputs, mask)
    for row, sequence in enumerate(sequences):
        alone = net(torch.as_tensor(tokenizer.encode(sequence))[None])
        torch.testing.assert_close(batched[row], alone[0], atol=1e-5, rtol=1e-5)


def test_last_readout_reads_the_last_valid_position():
    torch.manual_seed(0)
    net = TitansClassifierNet(2, vocab_size=10, readout="last", dim=16, depth=1,
                              memory_heads=2, chunk_size=4, dropout=0.0).eval()
    inputs = torch.randint(5, 10, (2, 12))
    mask = torch.arange(12)[None, :] < torch.tensor([[12], [7]])
    # Changing what follows the last valid position (padding) changes nothing, changing the
    # last valid token does.
    changed = inputs.clone()
    changed[1, 7:] = 0
    torch.testing.assert_close(net(inputs, mask), net(changed, mask))
    changed[1, 6] = 5 if int(inputs[1, 6]) != 5 else 6
    assert not torch.allclose(net(inputs, mask)[1], net(changed, mask)[1])


@pytest.mark.parametrize("tokenizer", [CharTokenizer(), OneHotTokenizer()])
def test_reverse_complement_batch_matches_biopython(tokenizer):
    sequences = random_dna(np.random.default_rng(1), 6, 1, 30)
    inputs, mask = pad_batch([tokenizer.encode(s) for s in sequences])
    expected, expected_mask = pad_batch([tokenizer.encode(reverse_complement(s))
                                         for s in sequences])
    torch.testing.assert_close(reverse_complement_batch(inputs, mask, tokenizer.name), expected)
    assert torch.equal(mask, expected_mask)


def test_rc_average_gives_both_strands_the_same_probabilities():
    torch.manual_seed(0)
    module = ClassificationModule(n_classes=2, vocab_size=10, dim=16, depth=1,
                                  memory_heads=2, chunk_size=4, tokenizer="char",
                                  rc_average=True).eval()
    sequences = random_dna(np.random.default_rng(2), 5, 8, 40)
    tokenizer = CharTokenizer()
    forward = pad_batch([tokenizer.encode(s) for s in sequences])
    backward = pad_batch([tokenizer.encode(reverse_complement(s)) for s in sequences])
    torch.testing.assert_close(module.predict_proba(*forward), module.predict_proba(*backward))
    plain = ClassificationModule(n_classes=2, vocab_size=10, dim=16, depth=1, memory_heads=2,
                                 chunk_size=4).eval()
    plain.load_state_dict(module.state_dict())
    assert not torch.allclose(plain.predict_proba(*forward), plain.predict_proba(*backward))


def test_bad_inputs_are_refused():
    net = TitansClassifierNet(2, vocab_size=10, dim=16, depth=1, memory_heads=2)
    with pytest.raises(ValueError, match="token ids must lie in"):
        net(torch.tensor([[3, 10]]))
    with pytest.raises(ValueError, match="integer ids"):
        net(torch.rand(1, 5))
    with pytest.raises(ValueError, match="at least one valid position"):
        net(torch.tensor([[5, 6]]), torch.tensor([[False, False]]))
    numeric = TitansClassifierNet(2, n_features=3, dim=16, depth=1, memory_heads=2)
    with pytest.raises(ValueError, match=r"float \(B, T, 3\)"):
        numeric(torch.rand(1, 5, 2))
    with pytest.raises(ValueError, match="rc_average needs tokenizer"):
        ClassificationModule(n_classes=2, vocab_size=71, tokenizer="kmer", rc_average=True)
    with pytest.raises(ValueError, match="tokenizer='onehot' gives vocab_size=None"):
        ClassificationModule(n_classes=2, vocab_size=10, tokenizer="onehot", rc_average=True)
    with pytest.raises(ValueError, match="n_classes"):
        TitansClassifierNet(1, vocab_size=10)
    with pytest.raises(ValueError, match="stem_kernel"):
        TitansClassifierNet(2, vocab_size=10, stem_kernel=-1)

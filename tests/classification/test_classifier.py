"""`TitansClassifier` on DNA strings and numeric sequences: learning, labels, padding, pickling,
refitting and input checks."""

import copy
import pickle

import numpy as np
import pytest
import torch
from Bio.Seq import reverse_complement
from sklearn.base import clone

from titans_seq import TitansClassifier

SMALL = dict(dim=32, depth=1, heads=2, memory_depth=1, chunk_size=4, batch_size=32,
             lr=3e-3, accelerator="cpu")


def motif_task(seed: int, n: int):
    """Random DNA of 30-60 nt; the 'promoter' class holds GATTACA somewhere, the other never."""
    rng = np.random.default_rng(seed)
    sequences, labels = [], []
    for i in range(n):
        length = int(rng.integers(30, 60))
        sequence = "".join(rng.choice(list("ACGT"), size=length)).replace("GATTACA", "GATCACA")
        if i % 2:
            at = int(rng.integers(0, length - 7))
            sequence = sequence[:at] + "GATTACA" + sequence[at + 7:]
        sequences.append(sequence)
        labels.append("promoter" if i % 2 else "background")
    return sequences, np.array(labels)


@pytest.fixture(scope="module")
def fitted():
    X, y = motif_task(0, 400)
    return TitansClassifier(max_epochs=15, random_state=0, **SMALL).fit(X, y)


def test_learns_a_motif_at_any_position(fitted):
    X, y = motif_task(1, 200)
    assert fitted.score(X, y) > 0.8  # chance is 0.5
    assert list(fitted.classes_) == ["background", "promoter"]
    assert set(fitted.predict(X)) <= {"background", "promoter"}
    probabilities = fitted.predict_proba(X)
    assert probabilities.shape == (200, 2)
    np.testing.assert_allclose(probabilities.sum(1), 1, rtol=1e-6)


def test_batch_padding_and_order_do_not_change_a_prediction(fitted):
    X, _ = motif_task(2, 20)  # lengths 30-59: every batch is padded
    together = fitted.predict_proba(X)
    alone = np.concatenate([fitted.predict_proba([s]) for s in X])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    # Lower case (soft-masked), IUPAC codes read as N, and numpy/pandas inputs are the same DNA.
    np.testing.assert_allclose(fitted.predict_proba([s.lower() for s in X]), together)
    np.testing.assert_allclose(fitted.predict_proba(np.array(X)), together)
    fixed = copy.copy(fitted)  # the same network, batches padded to a fixed length
    fixed.reading_ = {**fitted.reading_, "padding": "max_length", "max_length": 64}
    np.testing.assert_allclose(fixed.predict_proba(X), together, atol=1e-5)


def test_pickle_round_trip_is_exact(fitted):
    X, _ = motif_task(3, 30)
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.predict_proba(X), fitted.predict_proba(X))
    assert all(p.device.type == "cpu" for p in restored.module_.parameters())


def test_refit_starts_fresh_and_is_reproducible():
    X, y = motif_task(4, 120)
    first = TitansClassifier(max_epochs=2, random_state=0, **SMALL).fit(X, y)
    second = clone(first).fit(X, y)
    np.testing.assert_array_equal(first.predict_proba(X), second.predict_proba(X))
    # Refitting on other classes forgets the old ones; numeric data replaces DNA.
    first.fit(X, np.where(y == "promoter", 1, 2))
    assert list(first.classes_) == [1, 2]
    rng = np.random.default_rng(0)
    first.fit(rng.normal(size=(40, 12)), np.arange(40) % 3)
    assert first.input_kind_ == "numeric" and list(first.classes_) == [0, 1, 2]
    with pytest.raises(ValueError, match="fitted on numeric"):
        first.predict(X)
    torch_state = torch.random.get_rng_state()
    second.fit(X, y)
    assert torch.equal(torch.random.get_rng_state(), torch_state)  # caller's RNG untouched


def test_reverse_complement_options():
    X, y = motif_task(5, 100)
    classifier = TitansClassifier(max_epochs=1, random_state=0, rc_augment=0.5,
                                  rc_average=True, **SMALL).fit(X, y)
    np.testing.assert_allclose(classifier.predict_proba(X),
                               classifier.predict_proba([reverse_complement(s) for s in X]),
                               atol=1e-6)
    with pytest.raises(ValueError, match="rc_average needs tokenizer"):
        TitansClassifier(tokenizer="kmer", k=3, rc_average=True, max_epochs=1,
                         **SMALL).fit(X, y)


@pytest.mark.parametrize("tokenizer", ["onehot", "kmer"])
def test_other_tokenizers_train(tokenizer):
    X, y = motif_task(6, 80)
    classifier = TitansClassifier(tokenizer=tokenizer, k=3, max_epochs=1, max_length=40,
                                  random_state=0, **SMALL).fit(X, y)
    assert classifier.predict_proba(X).shape == (80, 2)


def test_multivariate_time_series_classification():
    """(n, L, C) arrays: sine against square waves of random phase in 2 noisy channels."""
    rng = np.random.default_rng(0)
    n, length = 160, 32
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1))
    steps = np.arange(length)[None, :] * 2 * np.pi / 16 + phase
    labels = np.arange(n) % 2
    wave = np.where(labels[:, None] == 1, np.sign(np.sin(steps)), np.sin(steps))
    X = np.stack([wave, -wave], axis=2) + rng.normal(scale=0.3, size=(n, length, 2))
    classifier = TitansClassifier(max_epochs=10, random_state=0, **SMALL).fit(X[:120],
                                                                            labels[:120])
    assert classifier.n_features_in_ == length and classifier.n_channels_ == 2
    assert classifier.score(X[120:], labels[120:]) > 0.85
    with pytest.raises(ValueError, match="3 channels"):
        classifier.predict(np.concatenate([X, X[:, :, :1]], axis=2))


def test_bad_input_is_refused_with_the_fix():
    X, y = motif_task(7, 20)
    classifier = TitansClassifier(max_epochs=1, **SMALL)
    with pytest.raises(ValueError, match=r"'X\[3\]'.*'Z' at position 5"):
        classifier.fit(X[:3] + ["ACGTAZ"] + X[4:], y)
    with pytest.raises(ValueError, match="one label per sequence"):
        classifier.fit(X, y[:-1])
    with pytest.raises(ValueError, match="only one class"):
        classifier.fit(X, ["a"] * len(X))
    with pytest.raises(TypeError, match="single string"):
        classifier.fit("ACGT", ["a"])
    with pytest.raises(ValueError, match="requires y"):
        classifier.fit(X, None)
    with pytest.raises(ValueError, match="empty|0 sample"):
        classifier.fit([], [])
    with pytest.raises(ValueError, match="position"):
        TitansClassifier(ambiguity="error", max_epochs=1, **SMALL).fit(X[:1] + ["ACRT"],
                                                                        y[:2])
    with pytest.raises(ValueError, match="max_epochs"):
        TitansClassifier(max_epochs=0).fit(X, y)
    with pytest.raises(ValueError, match="val_fraction"):
        TitansClassifier(val_fraction=1.5).fit(X, y)
    with pytest.raises(TypeError, match=r"X\[2\] is NoneType"):
        classifier.fit(X[:2] + [None] + X[3:], y)
    with pytest.raises(ValueError, match="rc_average applies to DNA"):
        TitansClassifier(rc_average=True, **SMALL).fit(np.zeros((10, 4)), np.arange(10) % 2)
    for name, value in (("rc_augment", "0.5"), ("lr", -1.0), ("dropout", 1.5),
                        ("crop", "middle"), ("readout", "max"), ("random_state", "seed")):
        with pytest.raises(ValueError, match=name):
            TitansClassifier(**{**SMALL, name: value}).fit(X, y)
    fitted = TitansClassifier(max_epochs=1, **SMALL).fit(X, y)
    with pytest.raises(ValueError, match="fitted on DNA"):
        fitted.predict(np.zeros((2, 5)))

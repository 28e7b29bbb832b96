"""Property-based tests of the DNA input contract: generated sequence lists (odd letters,
bytes, empty strings, mixed types), files of random bytes and hyperparameters either work or
are refused by a ValueError/TypeError of our own naming the item, letter, file or argument;
a failed fit leaves the classifier as it was."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score

from datamodules import DNADataModule, read_dna
from tests.contracts import outcome
from titans_seq import TitansClassifier

TINY = dict(dim=8, depth=1, heads=2, memory_depth=1, chunk_size=4, max_epochs=1,
            batch_size=16, random_state=0, accelerator="cpu")
LETTERS = "ACGTNacgtnRYUuXZ-* 1"


def dna_task(n=40, length=24, seed=0):
    rng = np.random.default_rng(seed)
    sequences = ["".join(rng.choice(list("ACGT"), length)) for _ in range(n)]
    labels = np.arange(n) % 2
    return [s[:10] + ("GGGG" if y else "TTTT") + s[14:] for s, y in zip(sequences, labels)], labels


@pytest.fixture(scope="module")
def fitted():
    X, y = dna_task()
    return TitansClassifier(**TINY).fit(X, y)


ITEMS = st.one_of(st.text(LETTERS, min_size=0, max_size=30),
                  st.text(LETTERS, max_size=10).map(str.encode), st.none(), st.integers(),
                  st.floats(allow_nan=True))


@given(st.lists(st.one_of(st.text("ACGTNacgt", min_size=1, max_size=30), ITEMS), min_size=0,
                max_size=8))
@settings(max_examples=60)
def test_predict_reads_or_refuses_naming_the_item(fitted, items):
    probabilities, error = outcome(lambda: fitted.predict_proba(items))
    if error is None:
        assert probabilities.shape == (len(items), 2)
        np.testing.assert_allclose(probabilities.sum(1), 1, rtol=1e-5)
        return
    message = str(error)
    assert "X" in message or "sequence" in message, message


@given(st.binary(min_size=0, max_size=200), st.sampled_from([".fa", ".fq", ".csv", ".fa.gz"]))
@settings(max_examples=40)
def test_files_of_any_bytes_are_read_or_refused_naming_the_file(tmp_path_factory, content,
                                                                 suffix):
    path = tmp_path_factory.mktemp("dna") / f"input{suffix}"
    path.write_bytes(content)
    records, error = outcome(lambda: read_dna(path))
    if error is not None:
        assert "input" in str(error), error


@given(st.sampled_from(["dim", "depth", "max_epochs", "batch_size", "k", "lr", "dropout",
                        "rc_augment", "max_length", "patience", "random_state", "stem_kernel",
                        "val_fraction", "max_surprise_norm", "trainer_kwargs"]),
       st.sampled_from([np.int64(2), 2, True, -1, 0, 1.5, "2", None, np.nan, np.float32(0.5),
                        {"bogus": 1}, np.random.RandomState(0)]))
@settings(max_examples=40)
def test_parameters_accept_any_integral_number_and_refuse_the_rest(name, value):
    X, y = dna_task(20)
    classifier = TitansClassifier(**{**TINY, name: value})
    _, error = outcome(lambda: classifier.fit(X, y))
    if error is not None:
        assert name in str(error), error
        with pytest.raises(NotFittedError):
            classifier.predict(X)


def test_numpy_integers_and_grids():
    X, y = dna_task(30)
    assert TitansClassifier(**{**TINY, "max_epochs": np.int64(1)}).fit(X, y).predict(X).shape \
        == (30,)
    numeric = np.random.default_rng(0).normal(size=(30, 12))
    search = GridSearchCV(TitansClassifier(**TINY), {"max_epochs": np.arange(1, 3)}, cv=2)
    assert search.fit(numeric, y).best_params_["max_epochs"] in (1, 2)
    assert np.isfinite(cross_val_score(TitansClassifier(**TINY), numeric, y, cv=2)).all()


def test_misleading_inputs_get_the_fix():
    X, y = dna_task(10)
    classifier = TitansClassifier(**TINY)
    with pytest.raises(TypeError, match=r"X\[0\] is bytes; decode"):
        classifier.fit([s.encode() for s in X], y)
    with pytest.raises(TypeError, match=r"X\['sequence'\]"):
        classifier.fit(pd.DataFrame({"sequence": X}), y)
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        TitansClassifier(**{**TINY, "lr": -1}).fit(X, y)


def test_binary_file_as_fasta_names_the_file(tmp_path):
    path = tmp_path / "reads.fa"
    path.write_bytes(b">r1\nAC\xff\xfe\x00GT\n")
    with pytest.raises(ValueError, match="reads.fa: not a text FASTA file"):
        read_dna(path)


def test_a_failed_fit_leaves_the_classifier_as_it_was():
    numeric, y = np.random.default_rng(0).normal(size=(30, 12)), np.arange(30) % 2
    fresh = TitansClassifier(**TINY)
    with pytest.raises(ValueError, match="only one class"):
        fresh.fit(numeric, np.zeros(30))
    assert not hasattr(fresh, "n_features_in_") and not hasattr(fresh, "channel_mean_")
    with pytest.raises(NotFittedError):
        fresh.predict(numeric)
    fitted = TitansClassifier(**TINY).fit(numeric, y)
    before, state = fitted.predict_proba(numeric), dict(vars(fitted))
    with pytest.raises(ValueError, match="only one class"):
        fitted.fit(np.ones((30, 5, 2)), np.zeros(30))  # other shape, then refused
    assert vars(fitted).keys() == state.keys()
    assert all(vars(fitted)[key] is state[key] for key in state)
    np.testing.assert_array_equal(fitted.predict_proba(numeric), before)


def test_datamodule_and_classifier_hold_out_the_same_rows():
    X, y = dna_task(40)
    data = DNADataModule(X, labels=list(y), val_fraction=0.25, seed=3)
    data.setup("fit")
    held = sorted(data.datasets["val"].sequences)
    from datamodules.dna import stratified_split
    rows = np.arange(40)
    _, val = stratified_split(rows, y, 0.25, 3, "val", [0, 1])
    assert held == sorted(X[i] for i in val)


MOSTLY_DNA = st.one_of(st.text("ACGTNacgt", min_size=1, max_size=30), ITEMS)


@given(st.lists(st.tuples(MOSTLY_DNA, st.sampled_from(["a", "b", "b", 1, None, np.nan])),
                min_size=0, max_size=12),
       st.sampled_from([0.0, 0.2, 0.5]))
@settings(max_examples=40)
def test_datamodule_reads_or_refuses_naming_the_item(pairs, val_fraction):
    sequences, labels = [s for s, _ in pairs], [label for _, label in pairs]
    data = DNADataModule(sequences, labels=labels, val_fraction=val_fraction, batch_size=4)
    _, error = outcome(lambda: data.setup("fit"))
    if error is None:
        assert sum(len(data.datasets[role]) for role in data.datasets) == len(pairs)
        batch = next(iter(data.train_dataloader()))
        assert batch["mask"].dtype == torch.bool and batch["mask"][:, 0].all()

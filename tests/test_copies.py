"""Copies are independent: a shallow copy, a deep copy and a clone of each fitted estimator go
on (update, read a stream, fit again) without changing what the original answers."""

import copy

import numpy as np
import pytest
from sklearn.base import clone

from titans_seq import TitansAnomalyDetector, TitansClassifier, TitansForecaster

COPIES = {"shallow": copy.copy, "deep": copy.deepcopy}


def stream(rows, seed=0):
    rng = np.random.default_rng(seed)
    return np.sin(np.arange(rows) / 5)[:, None] + 0.1 * rng.normal(size=(rows, 1))


@pytest.fixture(scope="module")
def forecaster():
    return TitansForecaster(horizon=4, lookback=8, linear_lookback=8, patch_len=4, dim=8,
                            max_epochs=1, calibration_window=20,
                            random_state=0).fit(stream(200))


@pytest.fixture(scope="module")
def detector():
    return TitansAnomalyDetector(max_epochs=2, random_state=0).fit(stream(300))


@pytest.fixture(scope="module")
def classifier():
    rng = np.random.default_rng(0)
    X = ["".join(rng.choice(list("ACGT"), 40)) for _ in range(60)]
    return TitansClassifier(dim=16, depth=1, heads=2, memory_depth=1, chunk_size=4,
                            max_epochs=1, random_state=0).fit(X, [i % 2 for i in range(60)])


def forecaster_answers(model):
    return [model.predict(), model.predict_interval(), np.asarray(model.series_.lengths)]


@pytest.mark.parametrize("kind", sorted(COPIES))
def test_forecaster_copies_update_alone(forecaster, kind):
    before = forecaster_answers(forecaster)
    duplicate = COPIES[kind](forecaster)
    duplicate.update(stream(240)[200:])
    duplicate.update(stream(260)[240:], learn=False)
    assert not np.array_equal(duplicate.predict(), before[0])
    for mine, theirs in zip(forecaster_answers(forecaster), before):
        np.testing.assert_array_equal(mine, theirs)


@pytest.mark.parametrize("kind", sorted(COPIES))
def test_detector_copies_read_alone(detector, kind):
    new = stream(400, seed=1)[300:]
    expected = copy.deepcopy(detector).anomaly_score(new)
    other = stream(500, seed=2)[300:]
    duplicate = COPIES[kind](detector)
    duplicate.anomaly_score(other)  # the copy reads another stream, and goes on from it
    reference = copy.deepcopy(detector)
    np.testing.assert_allclose(duplicate.anomaly_score(new),  # pieces as one call, to rounding
                               reference.anomaly_score(np.concatenate([other, new]))[-100:],
                               atol=1e-6)
    np.testing.assert_array_equal(copy.deepcopy(detector).anomaly_score(new), expected)
    np.testing.assert_array_equal(detector.anomaly_score(new), expected)


def test_clones_and_refits_leave_the_originals(forecaster, detector, classifier):
    X = ["ACGT" * 10, "TTTT" * 10]
    before = (forecaster.predict(), classifier.predict_proba(X))
    for model, data in ((forecaster, (stream(150, seed=3),)),
                        (classifier, (["GGCC" * 10] * 20 + ["ATAT" * 10] * 20,
                                      [0] * 20 + [1] * 20))):
        for duplicate in (clone(model).set_params(max_epochs=1), copy.copy(model)):
            duplicate.fit(*data)
    np.testing.assert_array_equal(forecaster.predict(), before[0])
    np.testing.assert_array_equal(classifier.predict_proba(X), before[1])
    scores = copy.deepcopy(detector).anomaly_score(stream(320)[300:])
    copy.copy(detector).fit(stream(300, seed=4))
    np.testing.assert_array_equal(copy.deepcopy(detector).anomaly_score(stream(320)[300:]),
                                  scores)

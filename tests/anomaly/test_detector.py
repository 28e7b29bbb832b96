"""`TitansAnomalyDetector`: streaming equals one pass, causality, the scikit-learn contract, and
injected anomalies ranked above the rest of a synthetic stream."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score

from tests.contracts import outcome, tables
from titans_seq import TitansAnomalyDetector

FAST = dict(max_epochs=15, random_state=0)


def synthetic(n=3000, seed=0):
    """A daily-like cycle with noise; spikes, a persisting level shift and a variance burst,
    and the rows they touch."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    values = np.sin(2 * np.pi * t / 96) + 0.1 * rng.normal(size=n)
    injected = np.zeros(n, dtype=bool)
    for row in (1100, 1500, 2300)[:n // 1000]:
        values[row] += 2.5
        injected[row] = True
    if n > 2640:
        values[1800:] += 1.5  # a level shift that persists
        injected[1800] = True
        values[2600:2640] += 0.8 * rng.normal(size=40)  # a burst of variance
        injected[2600:2640] = True
    return values, injected


@pytest.fixture(scope="module")
def fitted():
    values, _ = synthetic()
    return TitansAnomalyDetector(**FAST).fit(values[:600])


def test_a_stream_in_pieces_scores_as_one_call(fitted):
    values, _ = synthetic()
    whole = clone_fitted(fitted).anomaly_score(values[600:])
    pieces = clone_fitted(fitted)
    parts = [pieces.anomaly_score(values[600 + a:600 + b])
             for a, b in ((0, 1), (1, 500), (500, 507), (507, 2400))]
    np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-5)


def clone_fitted(detector):
    return pickle.loads(pickle.dumps(detector))


def test_scores_are_causal(fitted):
    values, _ = synthetic()
    changed = values.copy()
    changed[2000:] = -changed[2000:] + 5.0
    before = clone_fitted(fitted).anomaly_score(values[600:])
    after = clone_fitted(fitted).anomaly_score(changed[600:])
    np.testing.assert_array_equal(before[:1400], after[:1400])
    assert not np.allclose(before[1400:], after[1400:])


def test_injected_anomalies_rank_high_and_a_persisting_shift_is_learnt():
    values, injected = synthetic()
    near = injected.copy()  # each injected row and the few after it (the recent window)
    for row in np.flatnonzero(injected):
        near[row:row + 3] = True
    # every row's calibrated surprise (no refractory rule): the injected rows rank high
    scores = TitansAnomalyDetector(refractory=0, **FAST).fit(values[:600]) \
        .anomaly_score(values[600:])
    assert scores.min() >= 0 and scores.max() <= 1
    auroc = roc_auc_score(near[600:], scores)
    assert auroc > 0.85, auroc
    ordinary = np.quantile(scores[~near[600:]], 0.99)
    shift = 1800 - 600
    assert scores[shift:shift + 3].max() > ordinary  # the shift is news when it happens …
    assert scores[shift + 300:shift + 450].max() < ordinary  # … and ordinary once learnt
    # the default reports each event once: every onset scores, nearly nothing else does
    events = TitansAnomalyDetector(**FAST).fit(values[:600]).anomaly_score(values[600:])
    for start, stop in ((1100, 1103), (1500, 1503), (1800, 1803), (2300, 2303), (2600, 2640)):
        assert events[start - 600:stop - 600].max() > ordinary, start
    assert (events[~near[600:]] > ordinary).mean() < 0.01


def test_sklearn_conventions(fitted):
    values, _ = synthetic()
    assert clone(fitted).get_params() == fitted.get_params()
    with pytest.raises(NotFittedError):
        TitansAnomalyDetector().anomaly_score(values)
    before = clone_fitted(fitted)
    samples = fitted.score_samples(values[600:900])
    np.testing.assert_array_equal(samples, -clone_fitted(before).anomaly_score(values[600:900]))
    # it kept nothing: the fitted detector continues as the copy made before
    np.testing.assert_array_equal(clone_fitted(fitted).anomaly_score(values[600:700]),
                                  before.anomaly_score(values[600:700]))
    labels = fitted.predict(values[600:900])
    assert set(np.unique(labels)) <= {-1, 1}
    np.testing.assert_array_equal(labels == -1, fitted.decision_function(values[600:900]) < 0)
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.anomaly_score(values[600:700]),
                                  clone_fitted(fitted).anomaly_score(values[600:700]))


def test_contamination_sets_the_share_of_outliers_in_the_first_stretch():
    values, _ = synthetic()
    detector = TitansAnomalyDetector(contamination=0.05, **FAST).fit(values[:600])
    share = (detector.decision_function(values[:600]) < 0).mean()
    assert 0.0 < share < 0.2


def test_tables_with_irregular_times_work_and_bad_input_is_refused():
    values, _ = synthetic(900)
    times = pd.date_range("2024-01-01", periods=900, freq="5min").to_numpy().copy()
    times[300:312] = times[300]  # repeated timestamps, as real streams have
    frame = pd.DataFrame({"timestamp": times, "value": values})
    detector = TitansAnomalyDetector(**FAST).fit(frame.iloc[:600])
    assert detector.anomaly_score(frame.iloc[600:]).shape == (300,)
    with pytest.raises(ValueError, match="time column"):
        detector.anomaly_score(values[600:])
    for bad, words in ((np.r_[values[:100], np.nan], "NaN or infinite value at row 100"),
                       (np.zeros((0, 1)), "empty"), (np.ones((4, 2, 2)), r"\(T,\) or \(T, C\)"),
                       (pd.DataFrame({"v": ["a"] * 50}), "'v' must hold real numbers"),
                       (values[:10], "context \\+ 2")):
        with pytest.raises((ValueError, TypeError), match=words):
            TitansAnomalyDetector(**FAST).fit(bad)
    with pytest.raises(ValueError, match="threshold"):
        TitansAnomalyDetector(threshold=2.0).fit(values)


@given(tables(min_rows=0, max_rows=60))
@settings(max_examples=20)
def test_any_table_is_read_or_refused_by_name(frame):
    detector = TitansAnomalyDetector(max_epochs=1, context=4, random_state=0)
    _, error = outcome(lambda: detector.fit(frame))
    if error is None:
        assert detector.n_features_in_ == len([c for c in frame.columns
                                                if c != detector_time(frame)])
        assert detector.anomaly_score(frame).shape == (len(frame),)
    else:
        assert not hasattr(detector, "module_")


def detector_time(frame):
    from datamodules.timeseries.frames import _datetime_column, _time_column
    return _time_column(frame, None, "y") or _datetime_column(frame, "y")

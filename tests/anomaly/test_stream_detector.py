"""`StreamAnomalyDetector`: streaming in pieces equals one call, failed calls and bounded state,
scale invariance, persistence, parameter refusals, and planted anomalies of the hard kinds on
synthetic 5-minute streams with a daily pattern."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from titans_seq import StreamAnomalyDetector

PER_DAY = 288  # 5-minute rows
FIT = 750  # the first stretch (NAB's longest probation)
SPIKE = slice(108, 114)  # a half-hour spike every morning at 9:00


def daily(days: int = 10, seed: int = 0) -> tuple[np.ndarray, pd.DatetimeIndex]:
    """A 5-minute stream: a daily cycle, a short spike every morning, noise."""
    rng = np.random.default_rng(seed)
    rows = np.arange(days * PER_DAY)
    values = 10 + 3 * np.sin(2 * np.pi * (rows % PER_DAY) / PER_DAY) \
        + 0.3 * rng.normal(size=len(rows))
    spike = (rows % PER_DAY >= SPIKE.start) & (rows % PER_DAY < SPIKE.stop)
    values[spike] += 4
    return values, pd.date_range("2024-01-01", periods=len(rows), freq="5min")


def table(values: np.ndarray, times: pd.DatetimeIndex) -> pd.DataFrame:
    return pd.DataFrame({"timestamp": times, "value": values})


def scores_of(values: np.ndarray, times: pd.DatetimeIndex, **params) -> np.ndarray:
    """Every row's score (0 on the first stretch), the rest read as one stream."""
    frame = table(values, times)
    detector = StreamAnomalyDetector(**params).fit(frame.iloc[:FIT])
    return np.r_[np.zeros(FIT), detector.anomaly_score(frame.iloc[FIT:])]


@pytest.fixture(scope="module")
def stream():
    return daily()


@pytest.fixture(scope="module")
def fitted(stream):
    return StreamAnomalyDetector().fit(table(*stream).iloc[:FIT])


def test_a_stream_in_pieces_scores_as_one_call(fitted, stream):
    rest = table(*stream).iloc[FIT:]
    whole = copy.deepcopy(fitted).anomaly_score(rest)
    pieces = copy.deepcopy(fitted)
    parts = [pieces.anomaly_score(rest.iloc[a:b])
             for a, b in ((0, 1), (1, 8), (8, 700), (700, 701), (701, len(rest)))]
    np.testing.assert_allclose(np.concatenate(parts), whole, rtol=0, atol=1e-12)
    assert whole.max() > 0  # the stream is scored, not all zeros


def test_pieces_equal_one_call_without_timestamps_and_with_channels():
    rng = np.random.default_rng(1)
    rows = np.arange(1500)
    values = np.stack([np.sin(2 * np.pi * rows / 48), np.cos(2 * np.pi * rows / 48)], 1) \
        + 0.1 * rng.normal(size=(1500, 2))
    detector = StreamAnomalyDetector(season=48, long_window=400).fit(values[:300])
    whole = copy.deepcopy(detector).anomaly_score(values[300:])
    cuts = (0, 1, 2, 50, 51, 900, 1200)
    parts = [detector.anomaly_score(values[300 + a:300 + b]) for a, b in zip(cuts, cuts[1:])]
    np.testing.assert_allclose(np.concatenate(parts), whole, rtol=0, atol=1e-12)
    assert detector.clock_ == "rows" and len(detector.state_.channels) == 2


def test_a_failed_call_changes_nothing(fitted, stream):
    frame = table(*stream)
    detector, before = copy.deepcopy(fitted), copy.deepcopy(fitted)
    broken = frame.iloc[FIT:FIT + 50].copy()
    broken.iloc[20, 1] = np.nan
    for bad, words in ((broken, "NaN or infinite"), (stream[0][FIT:FIT + 50], "time column"),
                       (np.ones((10, 2)), "2 columns")):
        with pytest.raises(ValueError, match=words):
            detector.anomaly_score(bad)
    np.testing.assert_array_equal(detector.anomaly_score(frame.iloc[FIT:]),
                                  before.anomaly_score(frame.iloc[FIT:]))


def state_bytes(value) -> int:
    if isinstance(value, np.ndarray):
        return value.nbytes
    if dataclasses.is_dataclass(value):
        return sum(state_bytes(getattr(value, f.name)) for f in dataclasses.fields(value))
    if isinstance(value, list):
        return sum(map(state_bytes, value))
    return 0


def test_the_state_stops_growing():
    values, times = daily(days=19)
    frame = table(values, times)
    detector = StreamAnomalyDetector(long_window=500).fit(frame.iloc[:FIT])
    sizes = []
    for day in (9, 14, 19):  # past a week and past long_window: everything is full
        detector.anomaly_score(frame.iloc[FIT if day == 9 else (day - 5) * PER_DAY:
                                          day * PER_DAY])
        sizes.append(state_bytes(detector.state_))
    assert sizes[0] == sizes[1] == sizes[2], sizes
    assert sizes[0] < 200_000  # a week of rows and the calibration windows, not the stream


def test_scores_do_not_change_under_a_positive_affine_map(stream):
    values, times = stream
    values = values.copy()
    values[2000:2012] = 10.0  # something to score
    scores = scores_of(values, times)
    np.testing.assert_allclose(scores_of(3.7 * values - 120.0, times), scores, atol=1e-9)
    assert scores[2000:2024].max() > 0.1


# -- planted anomalies -------------------------------------------------------------------------
def flattened_day(values):
    day = slice(6 * PER_DAY, 7 * PER_DAY)
    values[day] = 10 + 0.3 * np.random.default_rng(5).normal(size=PER_DAY)  # the mean level
    return day


def missing_spike(values):
    spike = slice(8 * PER_DAY + SPIKE.start, 8 * PER_DAY + SPIKE.stop)  # a week in
    values[spike] -= 4
    return slice(spike.start, spike.stop + 12)


def slow_drift(values):
    start, length = 6 * PER_DAY, 2 * PER_DAY
    values[start:start + length] += np.linspace(0, 5, length)  # +5 over two days …
    values[start + length:] += 5  # … and it stays
    return slice(start, start + length)


def soon_after_the_fit(values):
    rows = slice(FIT + 10, FIT + 22)  # an hour at a level normal at noon, at 3 a.m.
    values[rows] = 12.5 + 0.3 * np.random.default_rng(6).normal(size=12)
    return slice(rows.start, rows.stop + 12)


@pytest.mark.parametrize("plant, above_all", [
    (flattened_day, True), (missing_spike, False), (slow_drift, True),
    (soon_after_the_fit, True)])
def test_planted_anomalies_score_above_the_normal_rows(stream, plant, above_all):
    values, times = stream[0].copy(), stream[1]
    window = plant(values)
    scores = scores_of(values, times)
    normal = np.ones(len(values), bool)
    normal[:FIT] = False
    normal[window.start:window.stop + PER_DAY] = False  # the event and the day after it
    assert scores[window].max() > np.quantile(scores[normal], 0.99)
    if above_all:  # a missing spike is the subtle one: it ties with the rarest normal rows
        assert scores[window].max() > scores[normal].max()


def test_a_lasting_level_shift_stops_scoring_high_within_a_day():
    values, times = daily(days=12)
    shift = 6 * PER_DAY + 150
    values[shift:] += 3
    scores = scores_of(values, times)
    assert scores[shift:shift + 12].max() > 0.5  # news when it happens …
    assert scores[shift + PER_DAY:].max() < 0.5  # … and, within a day, the new normal


def test_freezing_the_memories_stops_the_learning():
    values, times = daily(days=12)
    values[6 * PER_DAY + 150:] += 3
    learning, frozen = scores_of(values, times), scores_of(values, times, freeze=True)
    shift = 6 * PER_DAY + 150
    # frozen memories never learn the new level: it stays surprising for longer
    assert (frozen[shift:] > 0.5).sum() > (learning[shift:] > 0.5).sum()


def test_save_and_load_continue_identically(fitted, stream, tmp_path):
    frame = table(*stream)
    detector = copy.deepcopy(fitted)
    detector.anomaly_score(frame.iloc[FIT:1500])  # part-read: the state travels too
    loaded = StreamAnomalyDetector.load(detector.save(tmp_path / "detector"))
    assert loaded.get_params() == detector.get_params()
    np.testing.assert_array_equal(loaded.anomaly_score(frame.iloc[1500:]),
                                  detector.anomaly_score(frame.iloc[1500:]))


def test_sklearn_conventions(fitted, stream):
    frame = table(*stream)
    assert clone(fitted).get_params() == fitted.get_params()
    with pytest.raises(NotFittedError):
        StreamAnomalyDetector().anomaly_score(frame)
    before = copy.deepcopy(fitted)
    samples = fitted.score_samples(frame.iloc[FIT:1200])
    np.testing.assert_array_equal(samples, -copy.deepcopy(before).anomaly_score(
        frame.iloc[FIT:1200]))
    labels = fitted.predict(frame.iloc[FIT:1200])  # keeps nothing either
    np.testing.assert_array_equal(labels == -1, samples < -0.5)
    np.testing.assert_array_equal(fitted.anomaly_score(frame.iloc[FIT:1200]), -samples)
    # fitted methods read what fit committed: new parameters wait for the next fit
    changed = copy.deepcopy(before).set_params(freeze=True, rules=False, threshold=0.9,
                                               refractory=3, predictor="ridge")
    np.testing.assert_array_equal(changed.anomaly_score(frame.iloc[FIT:1200]), -samples)


def test_a_stream_without_a_clock_reads_its_values_only():
    values, _ = daily(days=4)
    values[900] += 10
    detector = StreamAnomalyDetector(contamination=0.05).fit(values[:FIT])
    assert detector.clock_ == "none"
    scores = detector.anomaly_score(values[FIT:])
    assert scores.argmax() == 900 - FIT
    assert 0 < (detector.decision_function(values[:FIT]) < 0).mean() < 0.2


@pytest.mark.parametrize("params, words", [
    (dict(season=1), "season"), (dict(season=2.5), "season"), (dict(forgetting=0.0), "forgetting"),
    (dict(forgetting=1.5), "forgetting"), (dict(value_forgetting=-1), "value_forgetting"),
    (dict(prior=0), "prior"), (dict(value_width=0), "value_width"), (dict(harmonics=-1),
                                                                     "harmonics"),
    (dict(short_window=0), "short_window"), (dict(long_window=5), "long_window"),
    (dict(min_history=0), "min_history"), (dict(tolerance=-0.1), "tolerance"),
    (dict(refractory=-1), "refractory"), (dict(rules="yes"), "rules"), (dict(freeze=1), "freeze"),
    (dict(hour_memory=None), "hour_memory"), (dict(predictor="lasso"), "predictor"),
    (dict(contamination=0.7), "contamination"), (dict(threshold=2.0), "threshold")])
def test_bad_parameters_are_refused_by_name(params, words):
    with pytest.raises((ValueError, TypeError), match=words):
        StreamAnomalyDetector(**params).fit(np.arange(50.0))


def test_bad_first_stretches_are_refused():
    with pytest.raises(ValueError, match="at least 2"):
        StreamAnomalyDetector().fit(np.ones(1))
    with pytest.raises(ValueError, match="NaN"):
        StreamAnomalyDetector().fit(np.r_[np.ones(5), np.nan])

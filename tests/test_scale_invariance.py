"""Scale invariance: forecasts of ``c · y + b`` are ``c ·`` (forecasts of ``y``) ``+ b`` for
tiny and huge ``c``; the detector's scores do not change under ``a · x + b`` (``a > 0``); a classifier of
numeric series scaled by 1e300 predicts as on the original."""

import numpy as np
import pytest

from titans_seq import TitansAnomalyDetector, TitansClassifier, TitansForecaster

TINY = dict(horizon=4, lookback=8, linear_lookback=8, patch_len=4, dim=8, max_epochs=1,
            random_state=0)
RNG = np.random.default_rng(0)
SERIES = np.sin(np.arange(160) / 5)[:, None] + 0.1 * RNG.normal(size=(160, 1))
STREAM = np.sin(np.arange(600) / 7)[:, None] + 0.05 * RNG.normal(size=(600, 1))
STREAM[450] += 3  # an anomaly


@pytest.fixture(scope="module")
def forecast():
    return TitansForecaster(**TINY).fit(SERIES).predict()


@pytest.mark.parametrize("c,b", [(1e-14, 0.0), (1e-200, 0.0), (1e12, 0.0), (1e250, 0.0),
                                 (1.0, 1e6), (3.0, -1e9)])
def test_forecasts_follow_the_scale_and_offset(forecast, c, b):
    scaled = TitansForecaster(**TINY).fit(c * SERIES + b).predict()
    np.testing.assert_allclose((scaled - b) / c, forecast, atol=1e-6 * SERIES.std())


@pytest.fixture(scope="module")
def scores():
    return TitansAnomalyDetector(max_epochs=3, random_state=0).fit(
        STREAM[:300]).anomaly_score(STREAM[300:])


@pytest.mark.parametrize("a,b", [(1e-10, 0.0), (5.0, 1e9), (1e200, 0.0), (2.0, -7.0)])
def test_detector_scores_do_not_change_under_an_affine_map(scores, a, b):
    detector = TitansAnomalyDetector(max_epochs=3, random_state=0).fit(a * STREAM[:300] + b)
    np.testing.assert_allclose(detector.anomaly_score(a * STREAM[300:] + b), scores,
                               atol=1e-6)
    assert scores.max() == scores[150:152].max()  # the anomaly scores highest either way


def test_a_classifier_of_numeric_series_at_1e300_predicts_as_on_the_original():
    X = RNG.normal(size=(40, 20, 1))
    labels = (X.mean((1, 2)) > 0).astype(int)
    options = dict(dim=16, depth=1, heads=2, memory_depth=1, chunk_size=4, max_epochs=1,
                   random_state=0)
    original = TitansClassifier(**options).fit(X, labels).predict_proba(X)
    scaled = TitansClassifier(**options).fit(X * 1e300, labels)
    assert np.isfinite(scaled.channel_std_).all()
    np.testing.assert_allclose(scaled.predict_proba(X * 1e300), original, atol=1e-6)

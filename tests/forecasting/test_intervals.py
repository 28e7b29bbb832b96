"""`TitansForecaster.predict_interval`: split-conformal intervals from the validation part's
errors — their layout, their order, and a coverage near the nominal one on fresh data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.series import TINY_STREAM, daily_cycle
from titans_seq import TitansForecaster

TINY = {**TINY_STREAM, "val_fraction": 0.3}


def noisy_cycle(n=1600):
    return daily_cycle(n, 0.3)


@pytest.fixture(scope="module")
def fitted():
    return TitansForecaster(**TINY).fit(noisy_cycle().iloc[:1000])


def test_layout_order_and_width(fitted):
    interval = fitted.predict_interval(coverage=0.8)
    assert list(interval.columns) == ["ds", "load-lo-80", "load", "load-hi-80"]
    pd.testing.assert_series_equal(interval["load"], fitted.predict()["load"])
    assert (interval["load-lo-80"] < interval["load"]).all()
    assert (interval["load"] < interval["load-hi-80"]).all()
    wide = fitted.predict_interval(coverage=0.95)
    assert ((wide["load-hi-95"] - wide["load-lo-95"])
            > (interval["load-hi-80"] - interval["load-lo-80"])).all()
    assert fitted.calibration_errors_.shape[1:] == (6, 1)


def test_coverage_on_fresh_rows_is_near_nominal(fitted):
    data = noisy_cycle()
    hits = []
    for origin in range(1000, 1590, 7):  # new rows the forecaster never saw
        band = fitted.predict_interval(data.iloc[:origin], coverage=0.9)
        actual = data["load"].to_numpy()[origin:origin + 6]
        hits.append((band["load-lo-90"].to_numpy() <= actual)
                    & (actual <= band["load-hi-90"].to_numpy()))
    coverage = np.mean(hits)
    assert 0.82 <= coverage <= 0.97, coverage


def test_arrays_quantile_models_and_refusals():
    values = noisy_cycle()["load"].to_numpy()
    model = TitansForecaster(**{**TINY, "loss": "quantile"}).fit(values[:1000])
    band = model.predict_interval(coverage=0.9)
    assert band.shape == (6, 3) and (band[:, 0] < band[:, 2]).all()
    np.testing.assert_allclose(band[:, 1], model.predict())
    with pytest.raises(ValueError, match="coverage must be"):
        model.predict_interval(coverage=1.5)
    without = TitansForecaster(**{**TINY, "val_fraction": 0.0}).fit(values[:1000])
    with pytest.raises(ValueError, match="val_fraction > 0"):
        without.predict_interval()


def test_update_adds_the_errors_it_completes_and_the_window_keeps_the_last():
    data = noisy_cycle()
    model = TitansForecaster(**{**TINY, "calibration_window": 150}).fit(data.iloc[:1000])
    assert len(model.calibration_errors_) == 150
    before = model.calibration_errors_.copy()
    model.update(data.iloc[1000:1010])  # completes the forecasts from origins 995 … 1004
    assert len(model.calibration_errors_) == 150
    np.testing.assert_array_equal(model.calibration_errors_[:140], before[10:])
    # the new errors are those of forecasts made before the rows were seen
    values = data["load"].to_numpy()
    fresh = TitansForecaster(**TINY).fit(data.iloc[:1000])
    split = len(fresh.calibration_errors_)
    fresh.update(data.iloc[1000:1010])  # split conformal: the validation errors only
    assert len(fresh.calibration_errors_) == split
    point = fresh.predict(data.iloc[:1004])["load"].to_numpy()
    scale = fresh.scaler_.std[0, 0]
    np.testing.assert_allclose(model.calibration_errors_[-1, :, 0],
                               np.abs(point - values[1004:1010]) / scale, rtol=1e-4, atol=1e-5)

"""The baselines: naive, seasonal naive and the ridge start, under the forecaster's API."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from tests.series import daily_cycle
from titans_seq.baselines import NaiveForecaster, RidgeForecaster, SeasonalNaiveForecaster
from titans_seq.forecasting.long_memory import LongMemoryForecastNet
from titans_seq.forecasting.ridge import ridge_fit


def test_naive_and_seasonal_naive_repeat_what_they_should():
    values = np.arange(50.0) ** 1.5  # every row distinct
    naive = NaiveForecaster(horizon=5).fit(values)
    np.testing.assert_allclose(naive.predict(), np.full(5, values[-1]), rtol=1e-12)
    seasonal = SeasonalNaiveForecaster(horizon=5, season_length=3).fit(values)
    # rows 47, 48, 49, then the season again
    np.testing.assert_allclose(seasonal.predict(), values[[47, 48, 49, 47, 48]], rtol=1e-12)
    # a series given to predict, not the fitted one
    np.testing.assert_allclose(seasonal.predict(values[:20]), values[[17, 18, 19, 17, 18]],
                               rtol=1e-12)


def test_missing_values_carry_the_last_observed_one():
    values = np.arange(40.0)
    values[-3:] = np.nan
    model = NaiveForecaster(horizon=2, missing="mask").fit(values)
    np.testing.assert_allclose(model.predict(), [36.0, 36.0], rtol=1e-12)
    with pytest.raises(ValueError, match="NaN|missing"):
        NaiveForecaster(horizon=2).fit(values)


def test_the_ridge_recovers_a_linear_process_and_shares_the_networks_solver():
    rows = 600
    data = daily_cycle(rows, 0.0, columns=("a", "b"))  # two noiseless 24-hour cycles
    model = RidgeForecaster(horizon=12, lookback=48).fit(data)
    assert model.weights_.shape == (48, 12) and model.penalty_ > 0
    result = model.backtest(n_windows=5)
    assert result.metrics["mse"] < 1e-3 * result.metrics["naive_mse"]
    # the network's linear path fitted on the same examples gets the same map
    net = LongMemoryForecastNet(12, lookback=48, linear_lookback=48, patch_len=4, dim=8,
                                memory_depth=1)
    x = torch.randn(300, 48, dtype=torch.float64).cumsum(1)
    y = x[:, -1:] + torch.randn(300, 12, dtype=torch.float64)
    penalty = net.fit_linear(x, y)
    weights, chosen = ridge_fit(x, y)
    assert penalty == chosen
    torch.testing.assert_close(net.linear.weight.double(), weights.T, rtol=1e-5, atol=1e-6)


def test_the_automatic_lookback_is_the_titans_forecasters():
    from titans_seq import TitansForecaster
    data = daily_cycle(500, 0.1)
    model = RidgeForecaster(horizon=24).fit(data)
    train_rows = int(500 * 0.9)
    expected = TitansForecaster(horizon=24).config(train_rows).layout.linear_lookback
    assert model.context_ == expected == (train_rows - 24) // 2


def test_intervals_cover_about_what_they_promise():
    data = daily_cycle(3000, 0.3, seed=1)
    model = SeasonalNaiveForecaster(horizon=6, season_length=24, val_fraction=0.3).fit(
        data.iloc[:2000])
    result = model.backtest(data, n_windows=150, step=6, coverage=0.9)
    frame = result.frame
    inside = (frame["y"] >= frame["SeasonalNaiveForecaster-lo-90"]) & \
        (frame["y"] <= frame["SeasonalNaiveForecaster-hi-90"])
    assert 0.85 <= inside.mean() <= 0.95
    band = model.predict_interval(coverage=0.9)
    assert list(band.columns) == ["ds", "load-lo-90", "load", "load-hi-90"]


def test_update_continues_and_save_load_round_trips(tmp_path):
    data = daily_cycle(400, 0.2, seed=2)
    model = RidgeForecaster(horizon=6, lookback=24).fit(data.iloc[:300])
    model.update(data.iloc[300:350]).update(data.iloc[350:])
    pd.testing.assert_frame_equal(model.predict(), model.predict(data))
    assert model.predict()["ds"].iloc[0] == data["ds"].iloc[-1] + pd.Timedelta("1h")
    again = RidgeForecaster.load(model.save(tmp_path / "ridge"))
    pd.testing.assert_frame_equal(again.predict_interval(), model.predict_interval())
    with pytest.raises(ValueError, match="timestamps|follow"):
        model.update(data.iloc[100:110])


def test_score_is_minus_the_mse_of_forecasts_of_the_new_rows():
    data = daily_cycle(200, 0.2, seed=3)
    model = NaiveForecaster(horizon=4).fit(data.iloc[:180])
    new = data.iloc[180:]
    expected = [((data["load"].iloc[o:o + 4] - data["load"].iloc[o - 1]) ** 2).to_numpy()
                for o in range(180, 200, 4)]
    assert model.score(new) == pytest.approx(-np.mean(expected))
    assert len(model.series_.values[0]) == 180  # unchanged


def test_bad_input_is_refused_and_leaves_the_model_as_it_was():
    data = daily_cycle(100, 0.1)
    model = SeasonalNaiveForecaster(horizon=4, season_length=24).fit(data)
    before = model.predict()
    with pytest.raises(ValueError, match="uses no covariates"):
        model.fit(data, X=np.zeros((100, 1)))
    with pytest.raises(ValueError, match="season_length"):
        SeasonalNaiveForecaster(season_length=0).fit(data)
    with pytest.raises(ValueError, match="too short"):
        SeasonalNaiveForecaster(horizon=4, season_length=24).fit(data.iloc[:20])
    with pytest.raises(ValueError, match="horizon"):
        NaiveForecaster(horizon=0).fit(data)
    with pytest.raises(TypeError, match="lookback"):
        RidgeForecaster(lookback="long").fit(data)
    with pytest.raises(ValueError, match="coverage"):
        model.predict_interval(coverage=2.0)
    pd.testing.assert_frame_equal(model.predict(), before)

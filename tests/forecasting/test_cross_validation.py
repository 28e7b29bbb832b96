"""``cross_validation`` in neuralforecast's layout: each window's forecast is what a model
fitted before it (once, every window, or every k-th) forecasts from the rows before it, and
several models share one frame."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest

from tests.series import TINY_STREAM, daily_cycle
from titans_seq import TitansForecaster
from titans_seq.baselines import NaiveForecaster, RidgeForecaster, SeasonalNaiveForecaster
from titans_seq.metrics import evaluate
from titans_seq.model_selection import cross_validation

H = 6


def _cut(frame: pd.DataFrame, rows: int) -> pd.DataFrame:
    return frame.iloc[:rows].reset_index(drop=True)


def test_the_frame_has_neuralforecasts_layout_and_the_actual_values():
    data = daily_cycle(300, 0.1, columns=("load", "temp"))
    cv = NaiveForecaster(horizon=H).cross_validation(data, n_windows=3, step=4)
    assert list(cv.columns) == ["unique_id", "ds", "cutoff", "y", "NaiveForecaster"]
    assert len(cv) == 2 * 3 * H and set(cv["unique_id"]) == {"load", "temp"}
    load = cv[cv["unique_id"] == "load"]
    # the last window ends at the last row; cutoffs step by 4 rows; ds follow their cutoff
    assert load["ds"].iloc[-1] == data["ds"].iloc[-1]
    cutoffs = sorted(load["cutoff"].unique())
    assert [c for c in cutoffs] == list(data["ds"].iloc[[300 - H - 9, 300 - H - 5, 300 - H - 1]])
    for cutoff, window in load.groupby("cutoff"):
        rows = data.index[data["ds"] > cutoff][:H]
        np.testing.assert_array_equal(window["ds"], data["ds"].iloc[rows])
        np.testing.assert_array_equal(window["y"], data["load"].iloc[rows])
        last = data.loc[data["ds"] == cutoff, "load"].item()
        np.testing.assert_allclose(window["NaiveForecaster"], np.full(H, last), rtol=1e-12)


@pytest.mark.parametrize("refit", [False, True, 2])
def test_each_window_is_the_forecast_of_a_model_fitted_where_refit_says(refit):
    data = daily_cycle(400, 0.2, seed=1)
    model = RidgeForecaster(horizon=H, lookback=24)
    cv = model.cross_validation(data, n_windows=4, step=H, refit=refit)
    origins = [400 - H * (4 - w) for w in range(4)]
    every = {False: 4, True: 1, 2: 2}[refit]
    for w, origin in enumerate(origins):
        fitted_at = origins[w - w % every]
        expected = RidgeForecaster(horizon=H, lookback=24).fit(_cut(data, fitted_at)) \
            .predict(_cut(data, origin))
        window = cv[cv["cutoff"] == data["ds"].iloc[origin - 1]]
        np.testing.assert_allclose(window["RidgeForecaster"], expected["load"], rtol=1e-10)
    assert not hasattr(model, "weights_")  # the model given is not fitted


def test_refit_false_streams_a_titans_forecaster_without_looking_ahead():
    """Fitted once before the first window, each window's forecast equals ``predict`` on the
    series cut at its origin: the memory reads the later rows as they come, never a row of
    the window it forecasts."""
    data = daily_cycle(360, 0.2, seed=2)
    params = {**TINY_STREAM, "learn_errors": False}
    cv = TitansForecaster(**params).cross_validation(data, n_windows=3, step=H, coverage=0.8)
    first = 360 - 3 * H
    fitted = TitansForecaster(**params).fit(_cut(data, first))
    for origin in (first, first + H, first + 2 * H):
        window = cv[cv["cutoff"] == data["ds"].iloc[origin - 1]]
        band = fitted.predict_interval(_cut(data, origin), coverage=0.8)
        np.testing.assert_allclose(window["TitansForecaster"], band["load"], rtol=1e-5,
                                   atol=1e-6)
        np.testing.assert_allclose(window["TitansForecaster-lo-80"], band["load-lo-80"],
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(window["TitansForecaster-hi-80"], band["load-hi-80"],
                                   rtol=1e-5, atol=1e-6)


def test_several_models_share_one_frame_that_metrics_read():
    data = daily_cycle(400, 0.1, seed=3)
    models = [NaiveForecaster(horizon=H), SeasonalNaiveForecaster(horizon=H, season_length=24),
              RidgeForecaster(horizon=H, lookback=48)]
    cv = cross_validation(models, data, n_windows=4, coverage=0.9)
    assert list(cv.columns[:4]) == ["unique_id", "ds", "cutoff", "y"]
    for name in ("NaiveForecaster", "SeasonalNaiveForecaster", "RidgeForecaster"):
        assert (cv[f"{name}-lo-90"] <= cv[name]).all() and (cv[name] <= cv[f"{name}-hi-90"]).all()
    scores = evaluate(cv, metrics=["mae", "coverage"], per=None).set_index("metric")
    # a daily cycle: the seasonal naive and the ridge beat the last value
    assert scores.loc["mae", "SeasonalNaiveForecaster"] < scores.loc["mae", "NaiveForecaster"]
    assert scores.loc["mae", "RidgeForecaster"] < scores.loc["mae", "NaiveForecaster"]
    named = cross_validation({"last": NaiveForecaster(horizon=H)}, data, n_windows=1)
    assert list(named.columns) == ["unique_id", "ds", "cutoff", "y", "last"]


def test_long_polars_tables_give_polars_frames_per_series():
    long = pd.concat([daily_cycle(200, 0.1, seed=4).assign(unique_id="a").rename(
                         columns={"load": "y"}),
                      daily_cycle(150, 0.1, seed=5).assign(unique_id="b").rename(
                          columns={"load": "y"})])
    shuffled = long.sample(frac=1.0, random_state=0)  # rows in any order
    table = pl.DataFrame({c: shuffled[c].to_numpy() for c in shuffled.columns})
    cv = NaiveForecaster(horizon=H).cross_validation(table, n_windows=2)
    assert isinstance(cv, pl.DataFrame) and cv.height == 2 * 2 * H
    for key, length in (("a", 200), ("b", 150)):
        part = cv.filter(pl.col("unique_id") == key)
        series = long[long["unique_id"] == key]
        # each series' windows end at its own last row
        assert part["ds"].to_list()[-1] == series["ds"].iloc[-1]
        np.testing.assert_array_equal(part["y"].to_numpy(), series["y"].iloc[-2 * H:])


def test_arrays_get_row_positions():
    values = np.arange(100.0)
    cv = NaiveForecaster(horizon=4).cross_validation(values, n_windows=2, step=3)
    np.testing.assert_array_equal(cv["ds"], [93, 94, 95, 96, 96, 97, 98, 99])
    np.testing.assert_array_equal(cv["cutoff"], [92] * 4 + [95] * 4)
    np.testing.assert_allclose(cv["NaiveForecaster"], [92] * 4 + [95] * 4, rtol=1e-12)
    np.testing.assert_array_equal(cv["y"], cv["ds"])


def test_the_backtest_is_the_same_windows_without_refitting():
    data = daily_cycle(300, 0.1, seed=6)
    model = RidgeForecaster(horizon=H, lookback=24).fit(_cut(data, 250))
    result = model.backtest(data, n_windows=3, coverage=0.9)
    frame = result.frame
    np.testing.assert_allclose(frame["RidgeForecaster"], result.forecasts["load"])
    np.testing.assert_allclose(frame["y"], result.actuals["load"])
    assert {"RidgeForecaster-lo-90", "RidgeForecaster-hi-90"} <= set(frame.columns)


def test_bad_calls_are_refused():
    data = daily_cycle(200, 0.1)
    with pytest.raises(ValueError, match="several NaiveForecaster; pass a dict"):
        cross_validation([NaiveForecaster(), NaiveForecaster()], data)
    with pytest.raises(ValueError, match="different horizons"):
        cross_validation([NaiveForecaster(horizon=3), RidgeForecaster(horizon=4)], data)
    with pytest.raises(TypeError, match="not a titans_seq forecaster"):
        cross_validation([object()], data)
    with pytest.raises(ValueError, match="n_windows"):
        NaiveForecaster().cross_validation(data, n_windows=0)
    with pytest.raises(ValueError, match="refit"):
        NaiveForecaster().cross_validation(data, refit=0)
    with pytest.raises(ValueError, match="coverage"):
        NaiveForecaster().cross_validation(data, coverage=1.5)
    with pytest.raises(ValueError, match="models is empty"):
        cross_validation([], data)


def test_quantile_models_give_quantile_columns_that_metrics_score():
    data = daily_cycle(360, 0.2, seed=7)
    params = {**TINY_STREAM, "loss": "quantile", "quantiles": (0.1, 0.5, 0.9),
              "learn_errors": False}
    cv = cross_validation([TitansForecaster(**params), NaiveForecaster(horizon=H)], data,
                          n_windows=2, quantiles=True)
    levels = [f"TitansForecaster_q{q}" for q in (0.1, 0.5, 0.9)]
    assert set(levels) <= set(cv.columns)
    assert not any(c.startswith("NaiveForecaster_q") for c in cv.columns)
    assert (cv[levels[0]] <= cv[levels[1]]).all() and (cv[levels[1]] <= cv[levels[2]]).all()
    # the point forecast is the median
    np.testing.assert_allclose(cv["TitansForecaster"], cv[levels[1]], rtol=1e-6)
    # each window's quantiles are predict_quantiles on the series cut at its origin
    fitted = TitansForecaster(**params).fit(_cut(data, 360 - 2 * H))
    last = fitted.predict_quantiles(_cut(data, 360 - H), quantiles=(0.1, 0.9))
    window = cv[cv["cutoff"] == data["ds"].iloc[360 - H - 1]]
    np.testing.assert_allclose(window[levels[0]], last["load_q0.1"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(window[levels[2]], last["load_q0.9"], rtol=1e-5, atol=1e-6)
    scores = evaluate(cv, metrics=["pinball", "crps"], models=["TitansForecaster"], per=None)
    assert (scores["TitansForecaster"] > 0).all()
    with pytest.raises(ValueError, match="no model forecasts quantiles"):
        NaiveForecaster(horizon=H).cross_validation(data, quantiles=True)

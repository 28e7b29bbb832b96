"""Property-based tests of the forecasting input contract: generated tables and arrays (NaN,
inf, mixed dtypes, odd shapes and column names, unsorted, repeated or zoned times across
daylight-saving changes, index kinds, extreme scales and offsets) either work —
and then no target column and no row is lost and the forecast continues the timestamps — or
are refused by a ValueError/TypeError of our own that names the problem."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, TimeSeriesSplit, cross_val_score

from datamodules import TimeSeriesDataModule, read_series
from tests.contracts import outcome, real_columns, tables
from titans_seq import TitansForecaster

TINY = dict(horizon=2, lookback=8, patch_len=4, linear_lookback=8, segment_tokens=4, dim=8,
            head_hidden=8, memory_depth=1, max_epochs=1, batch_size=8, random_state=0,
            accelerator="cpu")


def regular(n=80, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"ds": pd.date_range("2024-01-01", periods=n, freq="h"),
                         "load": np.sin(np.arange(n) / 4) + 0.1 * rng.normal(size=n)})


@pytest.fixture(scope="module")
def fitted():
    return TitansForecaster(**TINY).fit(regular())


def names_the_problem(error: BaseException, frame: pd.DataFrame) -> bool:
    message = str(error)
    return any(repr(c) in message or f"'{c}'" in message for c in frame.columns) or \
        any(word in message for word in ("row", "empty", "time", "column"))


@given(tables())
def test_read_series_keeps_every_target_and_row_or_says_why(frame):
    series, error = outcome(lambda: read_series(frame))
    if error is not None:
        assert names_the_problem(error, frame), error
        return
    assert series.target_names == real_columns(frame, series.time_col)
    assert series.lengths == [len(frame)]
    if series.times is not None:
        stamps = pd.DatetimeIndex(pd.to_datetime(frame[series.time_col]))
        if stamps.tz is not None:  # kept in UTC, given back in the zone
            stamps = stamps.tz_convert("UTC").tz_localize(None)
        np.testing.assert_array_equal(series.times[0], stamps.as_unit("ns"))


@given(tables(min_rows=30, max_rows=60))
@settings(max_examples=12)
def test_fit_and_predict_keep_targets_and_continue_time(frame):
    forecaster = TitansForecaster(**TINY)
    _, error = outcome(lambda: forecaster.fit(frame))
    if error is not None:
        assert names_the_problem(error, frame), error
        assert not hasattr(forecaster, "module_")
        return
    forecast = forecaster.predict()
    time_col = forecaster.series_.time_col
    assert [c for c in forecast.columns if c != time_col] == real_columns(frame, time_col)
    assert len(forecast) == TINY["horizon"]
    assert np.isfinite(forecast[real_columns(frame, time_col)].to_numpy(np.float64)).all()
    if time_col is not None:
        last = pd.Timestamp(pd.to_datetime(frame[time_col]).iloc[-1])
        assert pd.Timestamp(forecast[time_col].iloc[0]) == last + forecaster.series_.freq
    else:  # the index continues
        assert forecast.index[0] == frame.index[-1] + 1


@given(hnp.arrays(st.sampled_from([np.float64, np.float32, np.int64, np.bool_, np.complex128,
                                   np.dtype("U3"), np.dtype("O")]),
                  hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=40),
                  elements=None))
def test_arrays_are_read_or_refused(array):
    series, error = outcome(lambda: read_series(array))
    if error is None:
        assert series.values[0].shape[0] == array.shape[0]
        assert np.isfinite(series.values[0]).all()


@given(tables(min_rows=0, max_rows=40), st.sampled_from(["predict", "update", "backtest"]))
@settings(max_examples=30)
def test_fitted_methods_refuse_bad_input_and_keep_state(fitted, frame, method):
    before = fitted.predict().copy()
    rows = fitted.series_.lengths[0]
    shallow = copy.copy(fitted)  # updates go to a shallow copy: the original must not move
    call = {"predict": lambda: fitted.predict(frame), "update": lambda: shallow.update(frame),
            "backtest": lambda: fitted.backtest(frame, n_windows=2)}[method]
    outcome(call)
    assert fitted.series_.lengths[0] == rows
    pd.testing.assert_frame_equal(fitted.predict(), before)


@given(st.sampled_from(["horizon", "lookback", "max_epochs", "batch_size", "dim", "patience",
                        "segment_tokens", "lr", "dropout", "val_fraction", "random_state",
                        "quantiles", "verbose", "trainer_kwargs"]),
       st.sampled_from([np.int64(2), np.int32(8), 2, True, -1, 0, 1.5, "2", None, np.nan,
                        np.float64(0.05), (), {"bogus": 1}, np.random.RandomState(0)]))
@settings(max_examples=40)
def test_parameters_accept_any_integral_number_and_refuse_the_rest(name, value):
    forecaster = TitansForecaster(**{**TINY, "loss": "quantile", name: value})
    _, error = outcome(lambda: forecaster.fit(regular()))
    if error is not None:
        assert name in str(error), error
        with pytest.raises(NotFittedError):
            forecaster.predict()


def test_numpy_integers_work_everywhere():
    forecaster = TitansForecaster(**{**TINY, "horizon": np.int64(3), "max_epochs": np.int64(1),
                                     "lookback": np.int32(8)}).fit(regular())
    assert forecaster.predict().shape == (3, 2)
    horizon = forecaster.module_.hparams.config["layout"]["horizon"]
    assert horizon == 3 and type(horizon) is int  # YAML- and Lightning-safe


@pytest.mark.parametrize("params, words", [
    (dict(lr=-1), "lr must be a finite number > 0"),
    (dict(loss="quantile", quantiles=()), "quantiles must be a non-empty list"),
    (dict(trainer_kwargs={"max_epoch": 3}), r"trainer_kwargs has \['max_epoch'\]"),
    (dict(horizon=True), "horizon must be a positive int, got True"),
])
def test_bad_parameters_are_refused_before_any_training(params, words):
    with pytest.raises(ValueError, match=words):
        TitansForecaster(**{**TINY, **params}).fit(regular())


@given(tables(min_rows=0, max_rows=60))
@settings(max_examples=20)
def test_datamodule_reads_or_refuses(frame):
    data = TimeSeriesDataModule(frame, lookback=8, horizon=2, linear_lookback=8, patch_len=4,
                                segment_tokens=4, batch_size=4)
    _, error = outcome(lambda: data.setup("fit"))
    if error is not None:
        assert names_the_problem(error, frame) or "too short" in str(error), error


def test_odd_layouts_are_refused_with_the_columns_to_name():
    long = pd.concat([regular(40).assign(sid="a"), regular(40, 1).assign(sid="b")])
    long = long.rename(columns={"ds": "when", "load": "val"})
    with pytest.raises(TypeError, match="'sid'.*id_col='sid'"):
        read_series(long)
    series = read_series(long, id_col="sid", time_col="when", target="val")
    assert series.ids == ["a", "b"] and series.lengths == [40, 40]
    wide = regular().rename(columns={"ds": "when"})
    assert read_series(wide).time_col == "when"  # a datetime column, whatever its name
    with pytest.raises(TypeError, match="'load' must hold real numbers.*pd.to_numeric"):
        read_series(regular().assign(load=lambda f: f["load"].map("{:.2f}".format)))
    with pytest.raises(TypeError, match="real and imaginary"):
        read_series(np.ones(10) + 1j)


def test_a_failed_fit_leaves_the_forecaster_as_it_was(fitted):
    fresh = TitansForecaster(**TINY)
    with pytest.raises(ValueError, match="too short"):
        fresh.fit(regular(8))
    assert vars(fresh) == vars(TitansForecaster(**TINY)) and not hasattr(fresh, "module_")
    before, state = fitted.predict(), dict(vars(fitted))
    for bad in (regular(8), regular().assign(load=np.inf)):
        with pytest.raises(ValueError):
            fitted.fit(bad)
    assert vars(fitted).keys() == state.keys()
    assert all(vars(fitted)[key] is state[key] for key in state)
    pd.testing.assert_frame_equal(fitted.predict(), before)


def test_model_selection_with_numpy_grids():
    values = regular(160)["load"].to_numpy()[:, None]
    search = GridSearchCV(TitansForecaster(**TINY), {"max_epochs": np.arange(1, 3)},
                          cv=TimeSeriesSplit(2, test_size=8)).fit(values)
    assert search.best_params_["max_epochs"] in (1, 2)
    scores = cross_val_score(TitansForecaster(**TINY), values, cv=TimeSeriesSplit(2, test_size=8))
    assert np.isfinite(scores).all() and (scores < 0).all()

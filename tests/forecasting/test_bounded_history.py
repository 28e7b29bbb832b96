"""A fitted forecaster's state is bounded and an update costs the same whatever the history:
it keeps at most ``max_history`` rows of each series, an update or a forecast reads only the
rows after the memory's position, and either way the forecasts are those of reading every
row."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from tests.series import TINY_STREAM, daily_cycle
from titans_seq import TitansForecaster

TINY = {**TINY_STREAM, "val_fraction": 0.3, "calibration_window": 60}
FIT_ROWS = 700
FEEDS = (1, 7, 50, 3, 200, 13)  # update sizes below, at and above the horizon and a batch
CAP = 120


def fed(model: TitansForecaster, data: pd.DataFrame) -> TitansForecaster:
    start = FIT_ROWS
    for size in FEEDS:
        model.update(data.iloc[start:start + size])
        start += size
    return model


@pytest.mark.parametrize("params", [
    dict(),  # the long-memory network and its error memory
    dict(learn_errors=False),  # the network alone
    dict(mode="window", warmup=24),  # the fixed-window network
], ids=["error-memory", "network", "window"])
def test_a_capped_forecaster_forecasts_as_one_that_keeps_every_row(params):
    data = daily_cycle(FIT_ROWS + sum(FEEDS), 0.3, columns=("load", "temp"))
    every = TitansForecaster(**TINY, **params, max_history=None).fit(data.iloc[:FIT_ROWS])
    capped = TitansForecaster(**TINY, **params, max_history=CAP).fit(data.iloc[:FIT_ROWS])
    unit = capped._net.read_unit
    assert CAP <= capped.series_.lengths[0] < CAP + unit  # dropped at fit already
    fed(every, data)
    fed(capped, data)
    seen = FIT_ROWS + sum(FEEDS)
    assert every.series_.lengths == [seen]
    kept = capped.series_.lengths[0]
    assert CAP <= kept < CAP + unit
    np.testing.assert_array_equal(capped.series_.times[0], every.series_.times[0][-kept:])
    np.testing.assert_array_equal(capped.series_.values[0], every.series_.values[0][-kept:])
    pd.testing.assert_frame_equal(capped.predict(), every.predict())
    pd.testing.assert_frame_equal(capped.predict_interval(coverage=0.8),
                                  every.predict_interval(coverage=0.8))
    np.testing.assert_array_equal(capped.calibration_errors_, every.calibration_errors_)
    # reading on from the streams equals reading every row from the first
    scratch = every.predict(data.iloc[:seen])
    np.testing.assert_allclose(every.predict()[["load", "temp"]].to_numpy(),
                               scratch[["load", "temp"]].to_numpy(), rtol=1e-4, atol=1e-5)


def test_rolling_calibration_counts_each_completed_forecast_once():
    data = daily_cycle(FIT_ROWS + sum(FEEDS), 0.3)
    model = TitansForecaster(**{**TINY, "calibration_window": None}).fit(data.iloc[:FIT_ROWS])
    split = len(model.calibration_errors_)
    rolling = TitansForecaster(**{**TINY, "calibration_window": 10_000}).fit(
        data.iloc[:FIT_ROWS])
    assert len(rolling.calibration_errors_) == split
    fed(rolling, data)
    # every origin whose horizon the updates completed, from the first one fit left out
    assert len(rolling.calibration_errors_) == split + sum(FEEDS)
    fed(model, data)
    assert len(model.calibration_errors_) == split  # split conformal: validation only


def test_an_untimed_table_keeps_its_index_when_rows_are_dropped():
    data = daily_cycle(FIT_ROWS + sum(FEEDS), 0.3).drop(columns="ds")
    data.index = pd.RangeIndex(5_000, 5_000 + len(data))
    model = TitansForecaster(**TINY, max_history=CAP).fit(data.iloc[:FIT_ROWS])
    fed(model, data)
    kept = model.series_.lengths[0]
    end = 5_000 + len(data)
    assert model.series_.first_position == end - kept
    assert list(model.predict().index) == list(range(end, end + TINY["horizon"]))
    surprise = model.surprise()  # the rows kept, under their own index
    assert list(surprise.index) == list(range(end - kept, end))
    with pytest.raises(ValueError, match=f"index starts at 4000, not {end}"):
        model.update(data.iloc[:10].set_axis(pd.RangeIndex(4_000, 4_010)))
    model.update(pd.DataFrame({"load": [0.1, 0.2]}, index=pd.RangeIndex(end, end + 2)))
    assert model.series_.first_position + model.series_.lengths[0] == end + 2


def test_a_long_table_drops_rows_per_series():
    wide = daily_cycle(FIT_ROWS + 300, 0.3, columns=("a", "b"))
    long = wide.melt(id_vars="ds", var_name="id", value_name="y")
    fit = long[long["ds"] < wide["ds"][FIT_ROWS]]
    model = TitansForecaster(**TINY, max_history=CAP, id_col="id").fit(fit)
    for start in range(FIT_ROWS, FIT_ROWS + 300, 60):  # only series "a" streams on
        rows = (long["id"] == "a") & long["ds"].between(wide["ds"][start],
                                                        wide["ds"][start + 59])
        model.update(long[rows])
    lengths = dict(zip(model.series_.ids, model.series_.lengths))
    assert CAP <= lengths["a"] < CAP + model._net.read_unit
    assert model.series_.times[0][-1] == wide["ds"].iloc[-1]
    forecast = model.predict()
    assert forecast.groupby("id")["ds"].min().to_dict() == {
        "a": wide["ds"].iloc[-1] + pd.Timedelta(hours=1),
        "b": wide["ds"][FIT_ROWS - 1] + pd.Timedelta(hours=1)}


@pytest.mark.parametrize("value", [0, -5, 2.5, "all"])
def test_max_history_is_checked(value):
    data = daily_cycle(300, 0.3)
    with pytest.raises((ValueError, TypeError), match="max_history"):
        TitansForecaster(**TINY, max_history=value).fit(data)


def test_an_updates_cost_does_not_grow_with_the_history():
    """8 new rows cost the same after 700 rows as after 20,700 (every row kept): the
    update reads only what its streams still need (benchmarks/update_cost.py measured the
    re-reading update at 140 ms after 1 K rows and 2,110 ms after 16 K)."""
    data = daily_cycle(FIT_ROWS + 20_000 + 200, 0.3)
    model = TitansForecaster(**TINY, max_history=None).fit(data.iloc[:FIT_ROWS])

    def cost(start: int) -> float:
        times = []
        for k in range(7):
            begin = time.perf_counter()
            model.update(data.iloc[start + 8 * k:start + 8 * (k + 1)])
            times.append(time.perf_counter() - begin)
        return float(np.median(times))

    short = cost(FIT_ROWS)
    model.update(data.iloc[FIT_ROWS + 56:FIT_ROWS + 20_056])
    long = cost(FIT_ROWS + 20_056)
    assert model.series_.lengths == [FIT_ROWS + 20_112]
    assert long < 3 * short, f"{1e3 * short:.1f} ms at 700 rows, {1e3 * long:.1f} ms at 20,700"

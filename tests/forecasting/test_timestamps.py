"""Timestamps are never corrupted: time zones (daily series across daylight-saving changes,
polars zones, calendar features in local time), the range a timestamp can hold, and every kind
of index a table without a time column may have."""

import numpy as np
import pandas as pd
import polars as pl
import pytest

from datamodules import TimeSeriesDataModule
from datamodules.timeseries import read_stream
from titans_seq import TitansForecaster

TINY = dict(horizon=4, lookback=8, linear_lookback=8, patch_len=4, dim=8, max_epochs=1,
            random_state=0)


def wave(rows):
    return np.sin(np.arange(rows) / 5)


def test_a_daily_series_stays_at_local_midnight_across_daylight_saving():
    index = pd.date_range("2024-02-01", periods=150, freq="D", tz="Europe/Berlin")
    frame = pd.DataFrame({"load": wave(150)}, index=index)
    model = TitansForecaster(**TINY).fit(frame.iloc[:120])  # spans the change of March 31
    forecast = model.predict()
    assert list(forecast.index) == list(index[120:124])
    assert all(stamp.hour == 0 for stamp in forecast.index)
    model.update(frame.iloc[120:146])
    assert list(model.predict().index) == list(pd.date_range(
        index[146], periods=4, freq="D"))


def test_monthly_and_hourly_zoned_series_continue_in_their_zone():
    months = pd.date_range("2020-01-01", periods=60, freq="MS", tz="America/New_York")
    forecast = TitansForecaster(**TINY).fit(pd.DataFrame({"load": wave(60)},
                                                         index=months)).predict()
    assert list(forecast.index) == list(pd.date_range("2025-01-01", periods=4, freq="MS",
                                                      tz="America/New_York"))
    hours = pd.date_range("2024-03-30", periods=96, freq="h", tz="Europe/Berlin")
    forecast = TitansForecaster(**TINY).fit(pd.DataFrame({"load": wave(96)},
                                                         index=hours)).predict()
    assert list(forecast.index) == list(pd.date_range(hours[-1], periods=5, freq="h")[1:])


def test_a_polars_zone_comes_back():
    times = pl.datetime_range(pl.datetime(2024, 1, 1), pl.datetime(2024, 1, 5, 23), "1h",
                              eager=True, time_zone="Asia/Tokyo")
    frame = pl.DataFrame({"ds": times, "load": wave(120)})
    forecast = TitansForecaster(**TINY).fit(frame).predict()
    assert forecast["ds"].dtype.time_zone == "Asia/Tokyo"
    first = forecast["ds"][0]
    assert (first.hour, first.day) == (0, 6)  # the hour after 23:00 on the 5th, in Tokyo


def test_calendar_features_and_the_detector_read_local_time():
    index = pd.date_range("2024-06-01", periods=48, freq="h", tz="America/New_York")
    data = TimeSeriesDataModule(pd.DataFrame({"load": wave(48)}, index=index), lookback=8,
                                horizon=4, linear_lookback=8, patch_len=4, calendar=["hour"])
    data.setup("fit")
    hours = (data.prepared[0].covariates[:, 0].numpy() + 0.5) * 23
    np.testing.assert_allclose(hours[:3], [0, 1, 2], atol=1e-5)  # local midnight first
    stream = read_stream(pd.DataFrame({"load": wave(48)}, index=index))
    assert pd.Timestamp(stream.times[0]).hour == 0


def test_timestamps_outside_the_kept_range_are_refused_with_the_reason():
    late = pd.date_range("2290-01-01", periods=60, freq="D")
    with pytest.raises(ValueError, match="outside the range"):
        TitansForecaster(**TINY).fit(pd.DataFrame({"load": wave(60)}, index=late))
    edge = pd.date_range(end="2262-04-10", periods=60, freq="D")
    model = TitansForecaster(**TINY).fit(pd.DataFrame({"load": wave(60)}, index=edge))
    with pytest.raises(ValueError, match="latest time"):
        model.predict()


@pytest.mark.parametrize("kind,index", [
    ("consecutive", [f"r{i}" for i in range(80)]),
    ("PeriodIndex", pd.period_range("2020-01", periods=80, freq="M")),
    ("consecutive", np.arange(0, 40, 0.5)),
    ("consecutive", np.random.default_rng(0).permutation(80))])
def test_an_index_that_cannot_be_continued_is_refused_by_name(kind, index):
    with pytest.raises(ValueError, match=kind):
        TitansForecaster(**TINY).fit(pd.DataFrame({"load": wave(80)}, index=index))


def test_an_integer_index_is_continued():
    frame = pd.DataFrame({"load": wave(140)}, index=np.arange(1000, 1140))
    model = TitansForecaster(**TINY).fit(frame.iloc[:100])
    assert list(model.predict().index) == [1100, 1101, 1102, 1103]
    assert list(model.predict_interval().index) == [1100, 1101, 1102, 1103]
    assert list(model.surprise().index[:2]) == [1000, 1001]
    model.update(frame.iloc[100:120])
    assert list(model.predict().index) == [1120, 1121, 1122, 1123]
    with pytest.raises(ValueError, match="starts at 1130, not 1120"):
        model.update(frame.iloc[130:140])
    assert list(model.predict(frame.iloc[:50]).index) == [1050, 1051, 1052, 1053]

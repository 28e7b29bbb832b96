"""Every input layout the README documents for ``TitansForecaster``, end to end: fit, predict
(with the horizon's covariates where the fit had them), update with rows that continue the
series, predict again; the output comes back in the caller's container."""

import numpy as np
import pandas as pd
import polars as pl
import pytest

from titans_seq import TitansForecaster

H, ROWS = 4, 96
TINY = dict(horizon=H, lookback=8, linear_lookback=8, patch_len=4, segment_tokens=4, dim=8,
            head_hidden=8, memory_depth=1, max_epochs=1, batch_size=8, val_fraction=0.2,
            random_state=0)


def values(rows=ROWS + 8, channels=2, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(rows)[:, None]
    return np.sin(2 * np.pi * t / 12 + np.arange(channels)) + 0.1 * rng.normal(size=(rows,
                                                                                      channels))


def times(rows=ROWS + 8):
    return pd.date_range("2024-01-01", periods=rows, freq="h")


def wide(rows=ROWS + 8):
    return pd.DataFrame(values(rows), columns=["load", "temp"]).assign(date=times(rows))


def long(rows=ROWS + 8):
    parts = [pd.DataFrame({"unique_id": key, "ds": times(rows),
                           "y": values(rows, 1, seed)[:, 0]})
             for seed, key in enumerate(("a", "b"))]
    return pd.concat(parts, ignore_index=True)


def covariate(rows=ROWS + 8 + H):
    return np.cos(2 * np.pi * np.arange(rows) / 12)[:, None]


def cut(table, start, stop):
    """Rows ``[start, stop)`` of each series of a table (long tables: per series)."""
    if isinstance(table, np.ndarray):
        return table[start:stop]
    if isinstance(table, pl.DataFrame):
        if "unique_id" not in table.columns:
            return table.slice(start, stop - start)
        position = pl.int_range(pl.len()).over("unique_id")
        return table.filter((position >= start) & (position < stop))
    frame = table
    if "unique_id" in frame.columns:
        position = frame.groupby("unique_id").cumcount()
        frame = frame[(position >= start) & (position < stop)]
    else:
        frame = frame.iloc[start:stop]
    return frame


def polars(frame):
    return pl.DataFrame({name: frame[name].to_numpy() for name in frame.columns})


def check_output(forecast, data, channels):
    """Arrays give arrays ``(H, C)``; pandas gives pandas, polars gives polars, with
    timestamps after the last row seen."""
    if isinstance(data, np.ndarray):
        assert isinstance(forecast, np.ndarray) and forecast.shape == (H, channels)[:data.ndim]
        return
    assert isinstance(forecast, pl.DataFrame) == isinstance(data, pl.DataFrame)
    numbers = forecast.select(pl.selectors.numeric()).to_numpy() \
        if isinstance(forecast, pl.DataFrame) else forecast.select_dtypes("number").to_numpy()
    assert numbers.shape[0] == H * (2 if "unique_id" in data.columns else 1)
    assert np.isfinite(numbers).all()


def run(y, X=None, horizon_X=None, update_X=None, channels=2, **options):
    """Fit on the first ROWS rows, predict, update with the next 8, predict again."""
    model = TitansForecaster(**TINY, **options).fit(cut(y, 0, ROWS), X=X)
    check_output(model.predict(X=horizon_X), y, channels)
    model.update(cut(y, ROWS, ROWS + 8), X=update_X)
    return model


@pytest.mark.parametrize("layout", ["array (T,)", "array (T, C)", "pandas, time column",
                                    "pandas, DatetimeIndex", "polars, time column",
                                    "long pandas", "long polars"])
def test_tables_and_arrays(layout):
    y = {"array (T,)": values()[:, 0], "array (T, C)": values(),
         "pandas, time column": wide(), "pandas, DatetimeIndex": wide().set_index("date"),
         "polars, time column": polars(wide()), "long pandas": long(),
         "long polars": polars(long())}[layout]
    model = run(y, channels=1 if layout == "array (T,)" else 2)
    check_output(model.predict(), y, 1 if layout == "array (T,)" else 2)


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".tsv", ".parquet"])
def test_files(tmp_path, suffix):
    path = tmp_path / f"series{suffix}"
    frame = wide(ROWS)
    if suffix == ".parquet":
        polars(frame).write_parquet(path)
    else:
        frame.to_csv(path, index=False, sep="\t" if suffix == ".tsv" else ",")
    model = TitansForecaster(**TINY).fit(path)
    forecast = model.predict()
    assert list(forecast.columns) == ["date", "load", "temp"] and len(forecast) == H
    assert forecast["date"].iloc[0] == frame["date"].iloc[-1] + pd.Timedelta(hours=1)


def test_array_covariates_with_an_array_series():
    x = covariate()
    model = run(values(), X=x[:ROWS], horizon_X=x[ROWS:ROWS + H],
                update_X=x[ROWS:ROWS + 8])
    check_output(model.predict(X=x[ROWS + 8:ROWS + 8 + H]), values(), 2)


def test_array_covariates_with_a_timestamped_series():
    x = covariate()
    model = run(wide(), X=x[:ROWS], horizon_X=x[ROWS:ROWS + H], update_X=x[ROWS:ROWS + 8])
    forecast = model.predict(X=x[ROWS + 8:ROWS + 8 + H])
    assert forecast["date"].iloc[0] == times()[-1] + pd.Timedelta(hours=1)


def test_table_covariates_matched_by_time():
    x = pd.DataFrame({"date": times(ROWS + 8 + H), "price": covariate()[:, 0]})
    model = run(wide(), X=x.iloc[:ROWS], horizon_X=x.iloc[ROWS:ROWS + H],
                update_X=x.iloc[ROWS:ROWS + 8])
    assert model.future_names_ == ["price"]
    check_output(model.predict(X=x.iloc[ROWS + 8:]), wide(), 2)


def test_long_table_with_static_covariates_and_calendar():
    y = long().assign(size=lambda frame: np.where(frame["unique_id"] == "a", 1.0, 2.0))
    model = run(y, static_covariates=["size"], calendar=True)
    forecast = model.predict()
    assert set(forecast["unique_id"]) == {"a", "b"} and len(forecast) == 2 * H

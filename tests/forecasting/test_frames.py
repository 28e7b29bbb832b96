"""Reading forecasting input: every layout and container, and every refusal."""

import gzip

import numpy as np
import pandas as pd
import polars as pl
import pytest

from datamodules.timeseries import read_series


def wide(n=50, start="2024-01-01", freq="h"):
    rng = np.random.default_rng(0)
    return pd.DataFrame({"date": pd.date_range(start, periods=n, freq=freq),
                         "a": rng.normal(size=n), "b": rng.normal(size=n)})


def long(n=30):
    parts = [pd.DataFrame({"unique_id": key, "ds": pd.date_range("2024-01-01", periods=n - i,
                                                                  freq="D"),
                           "y": np.arange(n - i, dtype=float) * (i + 1), "price": 1.0 + i})
             for i, key in enumerate(["s1", "s2"])]
    return pd.concat(parts, ignore_index=True)


def test_wide_pandas_polars_and_index_agree():
    frame = wide()
    from_pandas = read_series(frame)
    from_polars = read_series(pl.from_dict({c: frame[c].to_numpy() for c in frame.columns}))
    from_index = read_series(frame.set_index("date"))
    for series in (from_pandas, from_polars, from_index):
        assert series.target_names == ["a", "b"] and series.n_channels == 2
        np.testing.assert_array_equal(series.values[0], frame[["a", "b"]].to_numpy())
        np.testing.assert_array_equal(series.times[0], frame["date"].to_numpy())
        assert series.freq == pd.tseries.frequencies.to_offset("h")
    assert from_polars.container == "polars" and from_index.time_index


def test_long_table_splits_series_and_statics():
    series = read_series(long(), static_covariates=["price"])
    assert series.ids == ["s1", "s2"] and series.lengths == [30, 29]
    np.testing.assert_array_equal(series.values[1][:, 0], np.arange(29) * 2.0)
    np.testing.assert_array_equal(series.static[:, 0], [1.0, 2.0])
    shuffled = long().sample(frac=1, random_state=0)
    np.testing.assert_array_equal(read_series(shuffled).values[0], series.values[0])


def test_arrays_and_files(tmp_path):
    assert read_series(np.arange(10.0)).values[0].shape == (10, 1)
    assert read_series(np.ones((10, 3))).n_channels == 3
    frame = wide()
    frame.to_csv(tmp_path / "d.csv", index=False)
    with gzip.open(tmp_path / "d.csv.gz", "wt") as handle:
        frame.to_csv(handle, index=False)
    pl.from_dict({c: frame[c].to_numpy() for c in frame.columns}).write_parquet(
        tmp_path / "d.parquet")
    for name in ("d.csv", "d.csv.gz", "d.parquet"):
        series = read_series(tmp_path / name)
        np.testing.assert_allclose(series.values[0], frame[["a", "b"]].to_numpy())
        assert series.times[0][0] == np.datetime64("2024-01-01")


@pytest.mark.parametrize("mutate, error, words", [
    (lambda f: f.iloc[:0], ValueError, "empty"),
    (lambda f: f.assign(a=f["a"].where(f.index != 7)), ValueError, "NaN in the target at rows 7"),
    (lambda f: f.assign(b=f["b"].where(f.index != 3, np.inf)), ValueError, "infinite value"),
    (lambda f: f.drop(index=[10, 11]), ValueError, "irregular"),
    (lambda f: f.iloc[::-1], ValueError, "must increase"),
])
def test_bad_tables_are_refused_with_the_reason(mutate, error, words):
    with pytest.raises(error, match=words):
        read_series(mutate(wide()))


def test_more_refusals(tmp_path):
    with pytest.raises(TypeError, match="'date' must hold real numbers.*time_col"):
        read_series(wide(), target=["a", "date"])
    with pytest.raises(ValueError, match="no target column 'zz'"):
        read_series(wide(), target="zz")
    with pytest.raises(TypeError, match="must be a pandas or polars"):
        read_series({"a": 1})
    with pytest.raises(ValueError, match=r"\(T,\) or \(T, C\)"):
        read_series(np.ones((2, 3, 4)))
    with pytest.raises(TypeError, match="real numbers"):
        read_series(np.array(["a", "b"]))
    with pytest.raises(ValueError, match="two rows at"):
        read_series(pd.concat([long(), long().iloc[:1]]))
    with pytest.raises(ValueError, match="vary within series"):
        read_series(long().assign(price=np.arange(59.0)), static_covariates=["price"])
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(ValueError, match="unknown file type"):
        read_series(tmp_path / "x.json")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(ValueError, match="could not read"):
        read_series(tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match="no such file"):
        read_series(tmp_path / "absent.csv")


def test_missing_mask_keeps_nan():
    frame = wide()
    frame.loc[5, "a"] = np.nan
    series = read_series(frame, missing="mask")
    assert np.isnan(series.values[0][5, 0]) and not np.isnan(series.values[0][5, 1])
    with pytest.raises(ValueError, match="missing must be"):
        read_series(frame, missing="drop")

"""`TitansForecaster`: the scikit-learn contract, containers, streaming update and backtest."""

import pickle
import warnings

import numpy as np
import pandas as pd
import polars as pl
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from titans_seq import TitansForecaster
from titans_seq.forecasting import TitansForecastNet

SMALL = dict(horizon=6, lookback=12, patch_len=4, dim=16, max_epochs=1, random_state=0)


def hourly(n=400, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return pd.DataFrame({"date": pd.date_range("2024-01-01", periods=n, freq="h"),
                         "load": np.sin(2 * np.pi * t / 24) + 0.1 * rng.normal(size=n),
                         "temp": np.cos(2 * np.pi * t / 24) + 0.1 * rng.normal(size=n)})


@pytest.fixture(scope="module")
def fitted():
    return TitansForecaster(**SMALL).fit(hourly())


def test_sklearn_contract(fitted):
    fresh = TitansForecaster(**SMALL)
    with pytest.raises(NotFittedError):
        fresh.predict()
    assert clone(fitted).get_params() == fitted.get_params()
    assert not hasattr(clone(fitted), "module_")
    assert fresh.set_params(horizon=3).horizon == 3
    # a second fit starts fresh: refitting equals a new forecaster fitted once
    again = clone(fitted).fit(hourly(seed=1)).fit(hourly())
    np.testing.assert_allclose(again.predict()[["load", "temp"]].to_numpy(),
                               fitted.predict()[["load", "temp"]].to_numpy(), rtol=1e-5,
                               atol=1e-6)


def test_containers(fitted):
    frame = hourly()
    forecast = fitted.predict()
    assert list(forecast.columns) == ["date", "load", "temp"] and len(forecast) == 6
    assert forecast["date"].iloc[0] == frame["date"].iloc[-1] + pd.Timedelta("1h")
    indexed = fitted.predict(frame.set_index("date"))
    assert isinstance(indexed.index, pd.DatetimeIndex) and list(indexed.columns) == ["load", "temp"]
    np.testing.assert_allclose(indexed.to_numpy(), forecast[["load", "temp"]].to_numpy(),
                               rtol=1e-5)
    polars = fitted.predict(pl.from_dict({c: frame[c].to_numpy() for c in frame.columns}))
    assert isinstance(polars, pl.DataFrame) and polars.columns == ["date", "load", "temp"]
    array = fitted.predict(frame[["load", "temp"]].to_numpy())
    assert isinstance(array, np.ndarray) and array.shape == (6, 2)


def test_long_input_and_univariate_arrays():
    frame = hourly()
    long = pd.concat([pd.DataFrame({"unique_id": key, "ds": frame["date"], "y": frame[col]})
                      for key, col in (("a", "load"), ("b", "temp"))])
    model = TitansForecaster(**SMALL).fit(long)
    forecast = model.predict()
    assert list(forecast.columns) == ["unique_id", "ds", "y"]
    assert forecast["unique_id"].tolist() == ["a"] * 6 + ["b"] * 6
    univariate = TitansForecaster(**SMALL).fit(frame["load"].to_numpy())
    assert univariate.predict().shape == (6,)


def test_pickle_round_trip_is_exact(fitted):
    restored = pickle.loads(pickle.dumps(fitted))
    pd.testing.assert_frame_equal(restored.predict(), fitted.predict())
    assert restored.module_.device == torch.device("cpu")


def test_backtest_equals_predict_on_the_cut_data(fitted):
    frame = hourly()
    result = fitted.backtest(frame, n_windows=3, step=5)
    assert set(result.metrics) == {"mse", "mae", "naive_mse", "naive_mae"}
    cutoffs = result.forecasts["cutoff"].unique()
    assert len(cutoffs) == 3
    for cutoff in cutoffs:
        cut = frame[frame["date"] <= cutoff]
        expected = fitted.predict(cut)[["load", "temp"]].to_numpy()
        got = result.forecasts[result.forecasts["cutoff"] == cutoff][["load", "temp"]]
        np.testing.assert_allclose(got.to_numpy(), expected, rtol=1e-5, atol=1e-6)
    errors = result.forecasts[["load", "temp"]].to_numpy() - \
        result.actuals[["load", "temp"]].to_numpy()
    assert result.metrics["mse"] == pytest.approx(np.mean(errors ** 2))


def test_update_continues_the_memory_and_checks_the_dates(fitted):
    frame = hourly(500)
    model = TitansForecaster(**SMALL).fit(frame.iloc[:400])
    model.update(frame.iloc[400:450])
    # updating equals having read the whole series
    np.testing.assert_allclose(model.predict()[["load", "temp"]].to_numpy(),
                               model.predict(frame.iloc[:450])[["load", "temp"]].to_numpy(),
                               rtol=1e-5, atol=1e-6)
    assert model.predict()["date"].iloc[0] == frame["date"].iloc[450]
    with pytest.raises(ValueError, match="continues at 2024-01-19 18:00"):
        model.update(frame.iloc[460:470])
    with pytest.raises(ValueError, match="3 target columns"):
        model.update(frame.assign(extra=1.0).iloc[450:460])


def test_quantiles():
    model = TitansForecaster(**SMALL, loss="quantile", quantiles=(0.1, 0.9)).fit(hourly())
    bands = model.predict_quantiles(quantiles=(0.1, 0.5, 0.9))
    assert list(bands.columns[1:4]) == ["load_q0.1", "load_q0.5", "load_q0.9"]
    assert (bands["load_q0.1"] <= bands["load_q0.5"]).all()
    assert (bands["load_q0.5"] <= bands["load_q0.9"]).all()
    np.testing.assert_allclose(bands["load_q0.5"], model.predict()["load"], rtol=1e-6)
    with pytest.raises(ValueError, match="0.25 was not trained"):
        model.predict_quantiles(quantiles=(0.25,))
    with pytest.raises(ValueError, match="loss='quantile'"):
        TitansForecaster(**SMALL).fit(hourly()).predict_quantiles()


def test_covariates_are_required_and_checked():
    frame = hourly()
    future = pd.DataFrame({"date": pd.date_range("2024-01-01", periods=406, freq="h"),
                           "promo": np.arange(406) % 7 == 0})
    model = TitansForecaster(**SMALL, calendar=True).fit(frame, X=future.iloc[:400])
    assert model.n_covariates_ == 5
    assert model.predict(X=future).shape == (6, 3)
    with pytest.raises(ValueError, match="predict needs X"):
        model.predict()
    with pytest.raises(ValueError, match="lacks 1 of them"):
        model.predict(X=future.iloc[:405])
    with pytest.raises(ValueError, match="must cover"):
        TitansForecaster(**SMALL).fit(frame, X=future.iloc[10:])


@pytest.mark.parametrize("params, words", [
    (dict(lookback=10, patch_len=4, mode="window"), "multiple of patch_len"),
    (dict(horizon=0), "horizon must be a positive int"),
    (dict(warmup=5, mode="window"), "warmup must be a multiple"),
])
def test_bad_parameters(params, words):
    with pytest.raises(ValueError, match=words):
        TitansForecaster(**{**SMALL, **params}).fit(hourly())


def test_bad_data():
    with pytest.raises(ValueError, match="too short"):
        TitansForecaster(**SMALL).fit(hourly(15))
    with pytest.raises(ValueError, match="NaN in the target"):
        TitansForecaster(**SMALL).fit(hourly().assign(load=np.nan))
    with pytest.raises(ValueError, match="has 5 rows"):
        TitansForecaster(**SMALL).fit(hourly()).predict(hourly(5))


def test_quiet_by_default(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TitansForecaster(**SMALL).fit(hourly(200)).predict()
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert list(tmp_path.iterdir()) == []


def test_streaming_blocks_equal_one_window():
    torch.manual_seed(0)
    net = TitansForecastNet(2, 8, 4, patch_len=2, n_covariates=1, dim=16, depth=1,
                            chunk_size=2).eval()
    history, covariates = torch.randn(3, 24, 2), torch.randn(3, 28, 1)
    whole, state = net(history, covariates=covariates)
    early = net.advance(history[:, :16], covariates=covariates[:, :16])
    split, split_state = net(history[:, 16:], covariates=covariates[:, 16:], state=early)
    torch.testing.assert_close(split, whole, rtol=1e-5, atol=1e-6)
    fresh, _ = net(history[:, 16:], covariates=covariates[:, 16:])
    assert not torch.allclose(fresh, whole)  # the memory of earlier blocks matters


@pytest.mark.parametrize("mode", ["stream", "window"])
def test_update_helps_after_a_regime_shift(mode):
    """Test-time learning: after a regime shift, a forecaster that has read the new regime
    (update: its memory reads it, its error memory learns from its errors on it) beats the
    same model forecasting from its lookback window alone."""
    rng = np.random.default_rng(0)
    period = 32

    def waveform(generator):
        k = np.arange(1, 5)
        a, b = generator.normal(size=4) / k, generator.normal(size=4) / k
        t = np.arange(period)[:, None]
        return (a * np.sin(2 * np.pi * k * t / period) + b * np.cos(2 * np.pi * k * t / period)
                ).sum(1)

    def regimes(count, length, generator):
        parts = [np.tile(waveform(generator), length // period) for _ in range(count)]
        return np.concatenate(parts) + 0.05 * generator.normal(size=count * length)

    horizon, lookback = 8, 16  # the lookback sees half a period: the rest must be learned
    # Whether the encoder's memory alone learns to recall the waveform depended on rounding
    # (about half the seeds); the error memory learns the new regime's mapping from its
    # pairs whatever the fit, so a few epochs suffice.
    options = dict(warmup=4 * lookback, max_epochs=3) if mode == "window" \
        else dict(linear_lookback=lookback, max_epochs=3)
    model = TitansForecaster(horizon=horizon, lookback=lookback, mode=mode, patch_len=4,
                             chunk_size=2, dim=32, dropout=0.0, lr=3e-3, random_state=0,
                             **options).fit(regimes(24, 256, rng))
    new = regimes(1, 256, np.random.default_rng(1))
    model.update(new[:160])
    updated, window_only = [], []
    for origin in range(160, 256 - horizon, 8):
        if origin > 160:
            model.update(new[origin - 8:origin])
        truth = new[origin:origin + horizon]
        updated.append(np.mean((model.predict() - truth) ** 2))
        window_only.append(np.mean((model.predict(new[origin - lookback:origin]) - truth) ** 2))
    assert np.mean(updated) < 0.85 * np.mean(window_only)


@pytest.mark.parametrize("params", [dict(variant="mag"), dict(variant="mal"),
                                    dict(variant="mac"),
                                    dict(channel_mode="mixing", mode="window"),
                                    dict(mode="window"), dict(patch_len=1, lookback=8)])
def test_variants_and_modes_fit_and_stream(params):
    frame = hourly(300)
    model = TitansForecaster(**{**SMALL, **params}).fit(frame.iloc[:250])
    model.update(frame.iloc[250:])
    forecast = model.predict()[["load", "temp"]].to_numpy()
    assert forecast.shape == (6, 2) and np.isfinite(forecast).all()
    np.testing.assert_allclose(forecast, model.predict(frame)[["load", "temp"]].to_numpy(),
                               rtol=1e-4, atol=1e-5)


def test_static_covariates_reach_the_model():
    frame = hourly()
    long = pd.concat([pd.DataFrame({"unique_id": key, "ds": frame["date"],
                                    "y": frame["load"] * scale, "size": scale})
                      for key, scale in (("small", 1.0), ("large", 3.0))])
    model = TitansForecaster(**SMALL, static_covariates=["size"]).fit(long)
    assert model.module_.hparams.n_static == 1
    model.module_.net.memory_weight.fill_(1.0)  # whatever share validation chose for it
    changed = long.assign(size=long["size"] * 10)
    assert not np.allclose(model.predict(changed)["y"], model.predict(long)["y"])


def test_review_refusals_and_containers(fitted):
    frame = hourly()
    later = hourly(420).iloc[400:]
    with pytest.raises(ValueError, match="at the fitted frequency"):
        clone_of = pickle.loads(pickle.dumps(fitted))
        clone_of.update(later.assign(date=pd.date_range(later["date"].iloc[0], periods=20,
                                                          freq="D")))
    with pytest.raises(ValueError, match="timestamped data"):
        pickle.loads(pickle.dumps(fitted)).update(later[["load", "temp"]].to_numpy())
    with pytest.raises(ValueError, match=r"target columns \['load', 'other'\]"):
        fitted.predict(frame.rename(columns={"temp": "other"}))
    swapped = fitted.predict(frame[["date", "temp", "load"]])
    pd.testing.assert_frame_equal(swapped, fitted.predict(frame))  # reordered by name
    with pytest.raises(ValueError, match="quantiles is empty"):
        TitansForecaster(**SMALL, loss="quantile").fit(frame).predict_quantiles(quantiles=[])
    with pytest.raises(ValueError, match="holds numbers, not timestamps"):
        fitted.predict(frame.drop(columns="date").assign(time=np.arange(len(frame))))


def test_time_zones_shapes_and_random_state():
    frame = hourly(200)
    local = frame.assign(date=frame["date"].dt.tz_localize("Europe/Paris"))
    before = torch.random.get_rng_state()
    model = TitansForecaster(**SMALL).fit(local)
    assert torch.equal(torch.random.get_rng_state(), before)  # the caller's RNG untouched
    forecast = model.predict()
    assert str(forecast["date"].dt.tz) == "Europe/Paris"
    assert forecast["date"].iloc[0] == local["date"].iloc[-1] + pd.Timedelta("1h")
    column = frame[["load"]].to_numpy()  # (T, 1) stays two-dimensional
    assert TitansForecaster(**SMALL).fit(column).predict().shape == (6, 1)
    untimed = TitansForecaster(**SMALL).fit(frame[["load", "temp"]]).predict()
    assert isinstance(untimed, pd.DataFrame) and list(untimed.index) == list(range(200, 206))

"""`TimeSeriesDataModule`: the ETT protocol's windows, train-only scaling, covariates."""

import numpy as np
import pandas as pd
import pytest
import torch
import lightning.pytorch as pl

from datamodules import TimeSeriesDataModule, load_etth1
from datamodules.timeseries import align_covariates, read_series
from titans_seq import ForecastingModule


@pytest.fixture(scope="module")
def etth1():
    return load_etth1()


def test_ett_protocol_windows_and_scaler(etth1):
    module = TimeSeriesDataModule(etth1, mode="window", lookback=96, horizon=96, split="ett-hour")
    module.setup("fit")
    # Time-Series-Library: 8640-96-96+1 train windows, 2880-96+1 val and test windows
    assert {k: len(v) for k, v in module.datasets.items()} == \
        {"train": 8449, "val": 2785, "test": 2785}
    values = etth1.drop(columns="date").to_numpy()
    np.testing.assert_allclose(module.scaler.mean[0], values[:8640].mean(0))
    np.testing.assert_allclose(module.scaler.std[0], values[:8640].std(0))
    first_test = module.datasets["test"][0]
    assert int(first_test["origin"]) == 11520  # input reads 96 rows of validation data
    scaled = (values - values[:8640].mean(0)) / values[:8640].std(0)
    np.testing.assert_allclose(first_test["history"].numpy(), scaled[11424:11520], atol=1e-5)
    np.testing.assert_allclose(first_test["target"].numpy(), scaled[11520:11616], atol=1e-5)
    last_test = module.datasets["test"][len(module.datasets["test"]) - 1]
    assert int(last_test["origin"]) + 96 == 14400


def test_scaler_travels_with_state_dict(etth1):
    fitted = TimeSeriesDataModule(etth1.iloc[:3000], mode="window", lookback=24, horizon=24)
    fitted.setup("fit")
    restored = TimeSeriesDataModule(None, mode="window", lookback=24, horizon=24)
    restored.load_state_dict(fitted.state_dict())
    restored.data = etth1.iloc[:3000].assign(OT=etth1["OT"].iloc[:3000] + 100)
    restored.setup("fit")  # statistics come from the state, not from the changed data
    np.testing.assert_array_equal(restored.scaler.mean, fitted.scaler.mean)


def test_windows_are_lazy():
    module = TimeSeriesDataModule(np.zeros((2_000_000, 1), dtype=np.float32), mode="window",
                                  lookback=8, horizon=8, stride=1, scale=False)
    module.setup("fit")
    dataset = module.datasets["train"]
    assert len(dataset) > 1_000_000
    assert dataset.first.nbytes + dataset.cumulative.nbytes < 100  # a few ints, no windows
    assert dataset.locate(len(dataset) - 1)[1] + 8 == module.borders_of(2_000_000)[0]


def test_calendar_and_covariate_coverage():
    frame = pd.DataFrame({"ds": pd.date_range("2024-01-01", periods=300, freq="h"),
                          "y": np.sin(np.arange(300) / 5), "price": np.arange(300.0)})
    module = TimeSeriesDataModule(frame, mode="window", lookback=24, horizon=12,
                                  calendar=["hour", "month"], future_covariates=["price"])
    module.setup("fit")
    item = module.datasets["train"][0]
    assert item["covariates"].shape == (36, 3) and module.n_covariates == 3
    hours = item["covariates"][:, 0].numpy()
    assert hours.min() >= -0.5 and hours.max() <= 0.5 and len(np.unique(hours)) == 24
    series = read_series(frame[["ds", "y"]])
    with pytest.raises(ValueError, match="must cover 2024-01-01 00:00:00 to 2024-01-13 23:00"):
        align_covariates(series, frame[["ds", "price"]].iloc[:-1], 12)
    with pytest.raises(ValueError, match="too short: too few rows for a training origin"):
        TimeSeriesDataModule(frame, mode="window", lookback=192, horizon=96).setup("fit")
    with pytest.raises(ValueError, match="future covariates"):
        module.setup("predict")


def test_lightning_fits_and_tests_with_masked_nan(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    values = np.sin(np.arange(600) / 6)[:, None] + 0.1 * rng.normal(size=(600, 2))
    values[100:110, 0] = np.nan
    data = TimeSeriesDataModule(values, mode="window", lookback=24, horizon=12, missing="mask",
                                batch_size=32)
    model = ForecastingModule(mode="window", n_channels=2, lookback=24, horizon=12, dim=16,
                              depth=1, patch_len=6)
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, data)
    metrics = trainer.test(model, data, verbose=False)[0]
    assert np.isfinite(metrics["test_mse"]) and np.isfinite(metrics["test_mae"])
    assert all(torch.isfinite(p).all() for p in model.parameters())
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    restored = ForecastingModule.load_from_checkpoint(tmp_path / "m.ckpt")
    batch = next(iter(data.test_dataloader()))
    model.eval(), restored.eval()
    torch.testing.assert_close(restored(batch), model(batch), rtol=0, atol=0)
    assert "scaler" in torch.load(tmp_path / "m.ckpt", weights_only=True)[
        "TimeSeriesDataModule"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.ckpt"]  # no lightning_logs


def test_predict_refuses_series_shorter_than_a_window():
    frame = pd.concat([pd.DataFrame({"unique_id": key, "ds": pd.date_range("2024-01-01",
                                                                            periods=n, freq="D"),
                                     "y": np.arange(n, dtype=float)})
                       for key, n in (("a", 200), ("b", 10))])
    module = TimeSeriesDataModule(frame, mode="window", lookback=16, horizon=4, val_fraction=0.0,
                                  test_fraction=0.0)
    with pytest.raises(ValueError, match=r"series \['b'\] have fewer than"):
        module.setup("predict")


def test_checkpoint_scaler_replaces_the_one_fitted_on_new_data(etth1):
    """Lightning restores a checkpoint after setup(): the windows must then use the
    checkpoint's statistics, not the ones setup() fitted on the new data."""
    trained = TimeSeriesDataModule(etth1.iloc[:3000], mode="window", lookback=24, horizon=24)
    trained.setup("fit")
    other = etth1.iloc[5000:8000].reset_index(drop=True)
    restored = TimeSeriesDataModule(other, mode="window", lookback=24, horizon=24)
    restored.setup("test")
    restored.load_state_dict(trained.state_dict())
    values = other.drop(columns="date").to_numpy()
    expected = (values - trained.scaler.mean[0]) / trained.scaler.std[0]
    first = restored.datasets["test"][0]
    origin = int(first["origin"])
    np.testing.assert_allclose(first["history"].numpy(), expected[origin - 24:origin],
                               atol=1e-5)

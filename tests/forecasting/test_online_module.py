"""The LightningModule's online evaluation of a test part (the online protocol's metric): the
error memory chosen after training and kept in checkpoints, the test loop forecasting every
test origin as the series arrive, and its figures against a computation by hand."""

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

from datamodules import TimeSeriesDataModule
from titans_seq import ForecastingModule
from titans_seq.forecasting.online import CANDIDATES, ErrorMemory
from titans_seq.training import quiet_lightning

from .test_online import regimes

LAYOUT = dict(lookback=16, horizon=8, linear_lookback=16, patch_len=4, segment_tokens=8)
BORDERS = [1280, 1536, 2048]


def data(test_online=True, rows=2048):
    series = regimes(rows // 256, 256, np.random.default_rng(0))
    return TimeSeriesDataModule(series[:, None], **LAYOUT, split="borders", borders=BORDERS,
                                batch_size=1, test_online=test_online)


def trainer(**options):
    return pl.Trainer(max_epochs=1, logger=False, enable_progress_bar=False,
                      enable_model_summary=False, num_sanity_val_steps=0,
                      **{"enable_checkpointing": False, **options})


def module(**options):
    return ForecastingModule(**LAYOUT, dim=16, depth=1, chunk_size=2, head_hidden=16,
                             dropout=0.0, **options)


@pytest.fixture(scope="module")
def fitted():
    torch.manual_seed(0)
    model, datamodule = module(), data()
    with quiet_lightning():
        trainer().fit(model, datamodule)
    return model, datamodule


def by_hand(model, datamodule, net, frozen_from=None):
    """The test part's MSE and MAE computed here: ``net``'s forecasts at every test origin of
    the one series, against its rows."""
    series = datamodule.prepared[0]
    first, stop = BORDERS[1], BORDERS[2] - LAYOUT["horizon"] + 1
    forecast = net.origin_forecasts(series, first, stop, frozen_from=frozen_from).numpy()
    values = series.values.numpy()
    truth = np.stack([values[o:o + LAYOUT["horizon"]] for o in range(first, stop)])
    error = forecast - truth
    return float(np.mean(error ** 2)), float(np.mean(np.abs(error)))


def test_fit_chooses_the_error_memory_on_validation(fitted):
    model, datamodule = fitted
    assert model.error_memory in CANDIDATES
    # what the choice reads: each series up to the end of its validation part, no test row
    assert [len(item.values) for item in datamodule.series_until("val")] == [BORDERS[1]]
    with pytest.raises(ValueError, match="part"):
        datamodule.series_until("everything")
    assert isinstance(model.forecaster(), ErrorMemory)
    assert model.forecaster().network is model.net


def test_online_test_scores_every_test_origin_as_computed_by_hand(fitted):
    model, datamodule = fitted
    with quiet_lightning():
        scores = trainer().test(model, datamodule, verbose=False)[0]
    mse, mae = by_hand(model, datamodule, ErrorMemory(model.net, model.error_memory))
    assert scores["test_mse"] == pytest.approx(mse, rel=1e-5)
    assert scores["test_mae"] == pytest.approx(mae, rel=1e-5)
    # frozen from the test part on: another figure, the same computation
    model.frozen_from = BORDERS[1]
    try:
        with quiet_lightning():
            frozen = trainer().test(model, datamodule, verbose=False)[0]
    finally:
        model.frozen_from = None
    mse, _ = by_hand(model, datamodule, ErrorMemory(model.net, model.error_memory), BORDERS[1])
    assert frozen["test_mse"] == pytest.approx(mse, rel=1e-5)
    assert frozen["test_mse"] != scores["test_mse"]


def test_without_the_error_memory_online_and_segment_tests_agree(fitted):
    """The network alone scores the same origins the same way through either test dataset."""
    model, _ = fitted
    memory = model.error_memory
    model.error_memory = None
    try:
        with quiet_lightning():
            online = trainer().test(model, data(), verbose=False)[0]
            segments = trainer().test(model, data(test_online=False), verbose=False)[0]
    finally:
        model.error_memory = memory
    assert online["test_mse"] == pytest.approx(segments["test_mse"], rel=1e-4)
    assert online["test_mae"] == pytest.approx(segments["test_mae"], rel=1e-4)


def test_learn_errors_false_keeps_the_network_alone():
    torch.manual_seed(0)
    model, datamodule = module(learn_errors=False), data()
    with quiet_lightning():
        trainer().fit(model, datamodule)
    assert model.error_memory is None and model.forecaster() is model.net


def test_checkpoints_keep_the_choice_and_a_mid_training_one_makes_it_at_test(fitted, tmp_path):
    model, datamodule = fitted
    with quiet_lightning():
        expected = trainer().test(model, datamodule, verbose=False)[0]["test_mse"]
        after = trainer()
        after.fit(module(), data())  # a Trainer attached to the module whose state is saved
    after.save_checkpoint(tmp_path / "after.ckpt")
    restored = ForecastingModule.load_from_checkpoint(tmp_path / "after.ckpt",
                                                      weights_only=True)
    assert restored.error_memory == after.lightning_module.error_memory is not None
    # a checkpoint written during training, before the choices made at its end
    torch.manual_seed(0)
    with quiet_lightning():
        during = trainer(enable_checkpointing=True, default_root_dir=tmp_path / "during")
        during.fit(module(), data())
    checkpoint = next((tmp_path / "during").rglob("*.ckpt"))
    restored = ForecastingModule.load_from_checkpoint(checkpoint, weights_only=True)
    assert restored.error_memory is None
    with quiet_lightning():
        scores = trainer().test(restored, data(), verbose=False)[0]
    assert restored.error_memory == model.error_memory
    assert scores["test_mse"] == pytest.approx(expected, rel=1e-5)

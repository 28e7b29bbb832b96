"""Where an estimator trains and runs: one device, named or the one it trained on, and a model
of an unavailable device (a GPU model on a CPU-only machine) runs on the CPU."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pandas as pd
import pytest
import torch

from tests.series import TINY_STREAM, daily_cycle
from titans_seq import TitansClassifier, TitansForecaster
from titans_seq.devices import check_device, placed_device, training_devices

NO_CUDA = not torch.cuda.is_available()


def test_device_names_are_checked():
    assert check_device("auto") == "auto" and check_device("cuda:1") == "cuda:1"
    assert check_device(torch.device("cpu")) == "cpu"
    with pytest.raises(ValueError, match="not a torch device"):
        check_device("gpu0")
    with pytest.raises(ValueError, match="device must be"):
        check_device(3)


def test_one_process_on_one_device():
    assert training_devices("auto", "cpu", 1, None) == ("cpu", 1, "cpu")
    assert training_devices("cpu", "auto", 1, None) == ("cpu", 1, "cpu")
    with pytest.raises(ValueError, match="strategy='ddp'.*command line"):
        training_devices("auto", "auto", 1, {"strategy": "ddp"})
    with pytest.raises(ValueError, match="several devices.*command line"):
        training_devices("auto", "cpu", 2, None)
    with pytest.raises(ValueError, match="leave accelerator"):
        training_devices("cpu", "gpu", 1, None)


@pytest.mark.skipif(not NO_CUDA, reason="checks a machine without CUDA")
def test_an_unavailable_device_is_refused_for_training_and_left_for_running():
    with pytest.raises(ValueError, match="'cuda:0' is not available"):
        training_devices("cuda:0", "auto", 1, None)
    assert placed_device("cuda:0") == torch.device("cpu")
    with pytest.raises(ValueError, match="not available"):
        TitansForecaster(**TINY_STREAM, device="cuda").fit(daily_cycle(200, 0.1))


def test_several_devices_through_the_estimator_are_refused_by_name():
    data = daily_cycle(200, 0.1)
    with pytest.raises(ValueError, match="titans-seq fit --trainer.strategy=ddp"):
        TitansForecaster(**TINY_STREAM, devices=2, accelerator="cpu").fit(data)
    with pytest.raises(ValueError, match="strategy='ddp_spawn'"):
        TitansForecaster(**TINY_STREAM, trainer_kwargs={"strategy": "ddp_spawn"}).fit(data)


def test_a_model_of_a_gpu_runs_on_the_cpu_here(tmp_path):
    """A forecaster whose fitted device is a GPU (as one fitted there would be) forecasts on
    the CPU of a machine without it, after pickling and after save/load, unchanged."""
    data = daily_cycle(300, 0.1)
    model = TitansForecaster(**TINY_STREAM, device="cpu").fit(data.iloc[:260])
    assert model.device_ == "cpu"
    expected = model.predict()
    expected_after = copy.deepcopy(model).update(data.iloc[260:]).predict()
    model.device_ = "cuda:0" if NO_CUDA else "cuda:99"  # a device this machine lacks
    for again in (pickle.loads(pickle.dumps(model)),
                  TitansForecaster.load(model.save(tmp_path / "gpu_model"))):
        assert again.device_ == model.device_
        pd.testing.assert_frame_equal(again.predict(), expected)
        assert again.module_.device == torch.device("cpu")
        # the memory streams run with the network: reading on gives the same forecasts
        pd.testing.assert_frame_equal(again.update(data.iloc[260:]).predict(), expected_after)


def test_a_classifier_of_a_gpu_classifies_on_the_cpu_in_float64():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 16, 2))
    y = (X[:, :, 0].mean(1) > 0).astype(int)
    model = TitansClassifier(dim=8, depth=1, heads=1, max_epochs=1, kmer_sizes=None,
                             random_state=0).fit(X, y)
    expected = model.predict_proba(X)
    model.device_ = "cuda:0" if NO_CUDA else "cuda:99"
    np.testing.assert_array_equal(model.predict_proba(X), expected)
    # one sequence's probabilities do not depend on the others of the call (float64)
    np.testing.assert_allclose(model.predict_proba(X[:1]), expected[:1], rtol=0, atol=1e-12)

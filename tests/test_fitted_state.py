"""Fitted methods read only what ``fit`` committed: after ``fit``, ``set_params`` of every
parameter to another valid value changes no fitted method's answer (the new values take
effect at the next ``fit``), for the three estimators."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from titans_seq import TitansAnomalyDetector, TitansClassifier, TitansForecaster

# Another valid value for every parameter of each estimator (a parameter added without one
# here fails the test, so the rule is checked for it too).
FORECASTER_CHANGES = dict(
    horizon=3, mode="window", lookback=8, linear_lookback=16, segment_tokens=4,
    head_hidden=8, warmup=8, variant="mag", dim=8, depth=2, patch_len=2,
    channel_mode="mixing", memory_depth=1, chunk_size=2, dropout=0.3, loss="mae",
    quantiles=(0.2, 0.8), calendar=["hour"], missing="mask", val_fraction=0.3,
    max_epochs=3, batch_size=7, lr=0.05, patience=1, target="load", time_col="date",
    id_col="id", static_covariates=["size"], calibration_window=7, max_history=50,
    learn_errors=False,
    random_state=9,
    verbose=True, device="cuda:3", accelerator="cpu", devices="auto",
    trainer_kwargs={"max_steps": 3})
CLASSIFIER_CHANGES = dict(
    variant="mag", dim=8, depth=2, heads=1, memory_depth=1, chunk_size=8, dropout=0.3,
    bidirectional=True, readout="last", stem_kernel=0, stem_stride=1, kmer_sizes=(2, 3),
    kmer_hidden=4, kmer_epochs=0, max_surprise_norm=None, tokenizer="kmer", k=3,
    max_length=12, crop="center", padding="max_length", ambiguity="error", rna=True,
    rc_augment=0.5, rc_average=True, pretrain=1, pretrained="elsewhere.ckpt", max_epochs=3,
    batch_size=5, lr=0.05, weight_decay=0.5, patience=1, val_fraction=0.3, random_state=9,
    verbose=True, device="cuda:3", accelerator="gpu", devices="auto",
    trainer_kwargs={"max_steps": 3})
DETECTOR_CHANGES = dict(
    context=4, key_dim=4, memory_depth=1, memory_hidden=8, chunk_size=2, max_lr=0.1,
    short_window=7, long_window=50, novelty=False, refractory=0, contamination=0.1,
    threshold=0.9, max_epochs=3, lr=0.5, random_state=9, verbose=True, accelerator="auto",
    devices="auto", trainer_kwargs={"max_steps": 3})


def changed(model, changes):
    """``model`` with every parameter set to the value in ``changes``."""
    params = model.get_params()
    assert sorted(changes) == sorted(params), "a parameter without another value to try"
    same = [name for name in params if changes[name] == params[name]]
    assert same == [], f"{same}: the same value as fitted"
    return model.set_params(**changes)


def hourly(rows, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(rows)
    return pd.DataFrame({"date": pd.date_range("2024-01-01", periods=rows, freq="h"),
                         "load": np.sin(2 * np.pi * t / 24) + 0.1 * rng.normal(size=rows),
                         "temp": np.cos(2 * np.pi * t / 24) + 0.1 * rng.normal(size=rows)})


def forecaster_answers(model, frame):
    """Every fitted method's answer (on copies: ``update`` changes the model)."""
    answers = {"predict": model.predict(), "predict_y": model.predict(frame.iloc[:300]),
               "surprise": model.surprise(), "surprise_y": model.surprise(frame.iloc[:300]),
               "backtest": model.backtest(n_windows=3, step=4).forecasts,
               "score": model.score(frame.iloc[400:430])}
    if model.module_.quantiles:
        answers["quantiles"] = model.predict_quantiles(quantiles=(0.1, 0.9))
    if model.calibration_errors_ is not None:
        answers["interval"] = model.predict_interval(coverage=0.8)
    updated = copy.deepcopy(model).update(frame.iloc[400:413])
    answers["update"] = updated.predict()
    answers["update_interval"] = updated.predict_interval(coverage=0.8)
    return answers


def assert_same(before, after):
    assert before.keys() == after.keys()
    for name in before:
        if isinstance(before[name], pd.DataFrame):
            pd.testing.assert_frame_equal(after[name], before[name], obj=name)
        else:
            np.testing.assert_array_equal(after[name], before[name], err_msg=name)


@pytest.mark.parametrize("params", [
    dict(loss="quantile", calendar=True, calibration_window=40),  # the long-memory network
    dict(mode="window", warmup=12, lr=3e-3),  # the fixed-window network
], ids=["stream", "window"])
def test_forecaster_fitted_methods_ignore_later_parameters(params):
    frame = hourly(460)
    model = TitansForecaster(horizon=6, lookback=12, patch_len=4, dim=16, max_epochs=1,
                             random_state=0, **params).fit(frame.iloc[:400])
    fitted_with = model.get_params()
    before = forecaster_answers(model, frame)
    other_mode = "stream" if fitted_with["mode"] == "window" else "window"
    changed(model, {**FORECASTER_CHANGES, "mode": other_mode})
    assert_same(before, forecaster_answers(model, frame))
    # the new values are the next fit's
    model.set_params(**{**fitted_with, "horizon": 3}).fit(frame.iloc[:400])
    assert model.module_.net.horizon == 3 and len(model.predict()) == 3


def dna(seed, n):
    rng = np.random.default_rng(seed)
    sequences = ["".join(rng.choice(list("ACGT"), size=int(rng.integers(20, 40))))
                 for _ in range(n)]
    return sequences, np.array(["gc" if s.count("G") > len(s) / 4 else "at" for s in sequences])


def test_classifier_fitted_methods_ignore_later_parameters():
    X, y = dna(0, 60)
    model = TitansClassifier(dim=16, depth=1, heads=2, chunk_size=4, kmer_epochs=2,
                             max_epochs=1, random_state=0, accelerator="auto").fit(X, y)
    queries = dna(1, 20)[0] + ["acgtnacgt" * 3]  # lower case and an unknown base: as fitted
    before = {"proba": model.predict_proba(queries), "predict": model.predict(queries),
              "score": model.score(X[:20], y[:20])}
    changed(model, CLASSIFIER_CHANGES)
    after = {"proba": model.predict_proba(queries), "predict": model.predict(queries),
             "score": model.score(X[:20], y[:20])}
    assert_same(before, after)


def test_detector_fitted_methods_ignore_later_parameters():
    rng = np.random.default_rng(0)
    stream = np.sin(np.arange(900) / 8.0)[:, None] + 0.05 * rng.normal(size=(900, 1))
    stream[700] += 2.0
    model = TitansAnomalyDetector(max_epochs=2, random_state=0).fit(stream[:400])

    def answers(detector):
        return {"score_samples": detector.score_samples(stream[400:]),
                "decision_function": detector.decision_function(stream[400:]),
                "predict": detector.predict(stream[400:]),
                "anomaly_score": copy.deepcopy(detector).anomaly_score(stream[400:])}

    before = answers(model)
    assert_same(before, answers(changed(model, DETECTOR_CHANGES)))

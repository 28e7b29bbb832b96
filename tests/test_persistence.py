"""`save` / `load` of the three estimators: exact round trips (fitted or not, and carrying on
after the load as the original does), no pickle anywhere, the format version checked, and
damaged or hostile files refused with a `ValueError` naming the file."""

from __future__ import annotations

import json
import pickle
import zipfile

import numpy as np
import pandas as pd
import pytest

from tests.series import TINY_STREAM, daily_cycle
from titans_seq import TitansAnomalyDetector, TitansClassifier, TitansForecaster
from titans_seq.persistence import FORMAT_VERSION, STATE_FILE, TENSOR_FILE


def round_trip(model, tmp_path):
    directory = model.save(tmp_path / "model")
    assert sorted(p.name for p in directory.iterdir()) == [STATE_FILE, TENSOR_FILE]
    for file in directory.iterdir():  # neither file is a pickle (nor a zip of pickles)
        head = file.read_bytes()[:2]
        assert head != b"\x80\x04" and head != b"\x80\x02" and not zipfile.is_zipfile(file)
    return type(model).load(directory)


@pytest.mark.parametrize("params", [
    dict(calibration_window=50),  # error memory, rolling conformal
    dict(loss="quantile", calendar=True, learn_errors=False, max_history=200),
    dict(mode="window", warmup=24),
], ids=["stream", "quantile-calendar", "window"])
def test_a_forecaster_round_trips_exactly_and_carries_on_alike(params, tmp_path):
    data = daily_cycle(800, 0.3, columns=("load", "temp"))
    model = TitansForecaster(**TINY_STREAM, val_fraction=0.3, **params).fit(data.iloc[:700])
    loaded = round_trip(model, tmp_path)
    assert loaded.get_params() == model.get_params()
    pd.testing.assert_frame_equal(loaded.predict(), model.predict())
    pd.testing.assert_frame_equal(loaded.predict_interval(), model.predict_interval())
    pd.testing.assert_frame_equal(loaded.surprise(), model.surprise())
    for fitted in (model, loaded):
        fitted.update(data.iloc[700:760])
    pd.testing.assert_frame_equal(loaded.predict(), model.predict())
    pd.testing.assert_frame_equal(loaded.predict_interval(), model.predict_interval())
    if params.get("loss") == "quantile":
        pd.testing.assert_frame_equal(loaded.predict_quantiles(), model.predict_quantiles())


def test_a_long_table_with_covariates_and_a_time_zone_round_trips(tmp_path):
    wide = daily_cycle(400, 0.3, columns=("a", "b"))
    wide["ds"] = wide["ds"].dt.tz_localize("Europe/Berlin")
    long = wide.melt(id_vars="ds", var_name="id", value_name="y")
    long["temp"] = np.cos(np.arange(len(long)) / 7)
    long["size"] = long["id"].map({"a": 1.0, "b": 3.0})
    fit = long[long["ds"] < wide["ds"][360]]
    model = TitansForecaster(**TINY_STREAM, id_col="id", static_covariates=["size"]).fit(
        fit.drop(columns="temp"), X=fit[["id", "ds", "temp"]])
    loaded = round_trip(model, tmp_path)
    future = long[(long["ds"] >= wide["ds"][360]) & (long["ds"] < wide["ds"][366])]
    pd.testing.assert_frame_equal(loaded.predict(X=future[["id", "ds", "temp"]]),
                                  model.predict(X=future[["id", "ds", "temp"]]))
    assert str(loaded.predict(X=future[["id", "ds", "temp"]])["ds"].dt.tz) == "Europe/Berlin"


def test_a_classifier_round_trips_exactly(tmp_path):
    rng = np.random.default_rng(0)
    X = ["".join(rng.choice(list("ACGT"), size=int(rng.integers(20, 40)))) for _ in range(60)]
    y = np.array(["gc" if s.count("G") > len(s) / 4 else "at" for s in X])
    model = TitansClassifier(dim=16, depth=1, heads=2, chunk_size=4, kmer_epochs=2,
                             max_epochs=2, random_state=0).fit(X, y)
    loaded = round_trip(model, tmp_path)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert loaded.classes_.dtype == model.classes_.dtype
    numeric = rng.normal(size=(40, 30, 2))
    labels = (numeric[:, :, 0].mean(1) > 0).astype(int)
    model = TitansClassifier(dim=16, depth=1, heads=2, chunk_size=4, max_epochs=2,
                             random_state=0).fit(numeric, labels)
    loaded = round_trip(model, tmp_path / "numeric")
    np.testing.assert_array_equal(loaded.predict_proba(numeric), model.predict_proba(numeric))


def test_a_detector_round_trips_and_streams_on_alike(tmp_path):
    t = np.arange(1500)
    values = np.sin(2 * np.pi * t / 96) + 0.1 * np.random.default_rng(0).normal(size=1500)
    values[1200] += 3
    model = TitansAnomalyDetector(max_epochs=3, random_state=0).fit(values[:600])
    model.anomaly_score(values[600:900])  # a stream part-read: its state travels too
    loaded = round_trip(model, tmp_path)
    np.testing.assert_array_equal(loaded.anomaly_score(values[900:]),
                                  model.anomaly_score(values[900:]))


@pytest.mark.parametrize("cls", [TitansForecaster, TitansClassifier, TitansAnomalyDetector])
def test_an_unfitted_estimator_round_trips_its_parameters(cls, tmp_path):
    model = cls(max_epochs=7, random_state=3)
    loaded = round_trip(model, tmp_path)
    assert loaded.get_params() == model.get_params()
    assert not hasattr(loaded, "module_")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    data = daily_cycle(300, 0.3)
    model = TitansForecaster(**{**TINY_STREAM, "max_epochs": 1}).fit(data)
    return model.save(tmp_path_factory.mktemp("saved") / "model"), model


def edited(saved, tmp_path, change):
    """A copy of the saved directory with its JSON tree changed by ``change``."""
    directory, _ = saved
    target = tmp_path / "edited"
    target.mkdir(parents=True)
    (target / TENSOR_FILE).write_bytes((directory / TENSOR_FILE).read_bytes())
    tree = json.loads((directory / STATE_FILE).read_text())
    change(tree)
    (target / STATE_FILE).write_text(json.dumps(tree))
    return target


def test_another_format_version_is_refused_with_both_versions(saved, tmp_path):
    target = edited(saved, tmp_path, lambda tree: tree.update(version=FORMAT_VERSION + 1,
                                                              library="9.9.9"))
    with pytest.raises(ValueError, match=rf"format version {FORMAT_VERSION + 1} \(titans_seq "
                                         rf"9\.9\.9\).*reads version {FORMAT_VERSION}"):
        TitansForecaster.load(target)


def test_another_estimator_class_is_refused(saved):
    with pytest.raises(ValueError, match="holds a TitansForecaster, not a TitansClassifier"):
        TitansClassifier.load(saved[0])


def _swap_class(tree, name):
    """Name ``name`` as the class of the fitted state's first dataclass."""
    def visit(node):
        if isinstance(node, dict):
            if "dataclass" in node:
                node["dataclass"] = name
                return True
            return any(visit(child) for child in node.values())
        if isinstance(node, list):
            return any(visit(child) for child in node)
        return False
    assert visit(tree["fitted"])


@pytest.mark.parametrize("name, reason", [
    ("os:system", "outside titans_seq"),
    ("subprocess:Popen", "outside titans_seq"),
    ("titans_seq.base:TitansEstimator", "not a dataclass"),
    ("titans_seq.nothing:Here", "does not have"),
    ("titans_seq.base:__import__('os')", "malformed|outside"),
])
def test_a_class_outside_the_library_is_never_built(saved, tmp_path, name, reason):
    target = edited(saved, tmp_path, lambda tree: _swap_class(tree, name))
    with pytest.raises(ValueError, match=reason) as error:
        TitansForecaster.load(target)
    assert str(target) in str(error.value)


def test_a_module_of_another_kind_is_refused(saved, tmp_path):
    def swap(tree):
        tree["fitted"]["dict"]["module_"]["module"] = "titans_seq.base:TitansEstimator"
    with pytest.raises(ValueError, match="not a LightningModule"):
        TitansForecaster.load(edited(saved, tmp_path, swap))


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / TENSOR_FILE).write_bytes(b"\x00" * 40), "not a safetensors file"),
    (lambda d: (d / TENSOR_FILE).write_bytes(pickle.dumps({"a": 1})), "not a safetensors"),
    (lambda d: (d / STATE_FILE).write_text("{not json"), "not the JSON save writes"),
    (lambda d: (d / STATE_FILE).write_text("[1, 2]"), "not a titans_seq estimator file"),
    (lambda d: (d / STATE_FILE).unlink(), "not a saved estimator"),
], ids=["zeros", "pickle", "json", "not-a-tree", "missing"])
def test_damaged_files_raise_a_value_error_naming_them(saved, tmp_path, damage, message):
    target = edited(saved, tmp_path, lambda tree: None)
    damage(target)
    with pytest.raises(ValueError, match=message) as error:
        TitansForecaster.load(target)
    assert str(target) in str(error.value)


def test_a_missing_tensor_or_bad_parameters_are_refused(saved, tmp_path):
    def drop_tensor(tree):
        tree["fitted"]["dict"]["scaler_"]["fields"]["mean"] = {"array": "nowhere"}
    with pytest.raises(ValueError, match="tensor 'nowhere'"):
        TitansForecaster.load(edited(saved, tmp_path / "a", drop_tensor))

    def bad_hparams(tree):
        tree["fitted"]["dict"]["module_"]["hparams"] = {"dict": {"unknown": 1}}
    with pytest.raises(ValueError, match="unknown"):
        TitansForecaster.load(edited(saved, tmp_path / "b", bad_hparams))


def test_what_save_cannot_write_is_named_and_nothing_is_written(tmp_path):
    model = TitansForecaster(random_state=np.random.RandomState(0))
    with pytest.raises(TypeError, match="random_state is a RandomState"):
        model.save(tmp_path / "model")
    assert not (tmp_path / "model").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        TitansForecaster().save(tmp_path / "file")


def test_a_deeply_nested_file_is_refused(saved, tmp_path):
    target = tmp_path / "deep"
    target.mkdir()
    (target / TENSOR_FILE).write_bytes((saved[0] / TENSOR_FILE).read_bytes())
    tree = json.loads((saved[0] / STATE_FILE).read_text())
    text = json.dumps(tree).replace('"horizon": 6', '"horizon": ' + '[' * 100_000
                                    + ']' * 100_000)
    (target / STATE_FILE).write_text(text)
    with pytest.raises(ValueError, match=str(target)):
        TitansForecaster.load(target)

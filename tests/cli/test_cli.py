"""The ``titans-seq`` LightningCLI: shipped configs, ``--print_config``, quiet defaults, loggers,
the layout linked from the datamodule, ``predict --output``, the help."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from datamodules import TimeSeriesDataModule
from titans_seq.cli import build_cli

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
# Small overrides so a shipped config trains in seconds.
# Where the encoder's settings sit: in the forecasting config, or beside the DNA modules' own.
FORECAST_ENCODER, DNA_ENCODER = "--model.init_args.config.encoder", "--model.init_args.encoder"
FAST = {"forecast_etth1.yaml": [f"{FORECAST_ENCODER}.dim=16", "--trainer.fast_dev_run=1"],
        "forecast_etth1_window.yaml": [f"{FORECAST_ENCODER}.dim=16",
                                       "--trainer.fast_dev_run=1"],
        "forecast_etth2_online.yaml": [f"{FORECAST_ENCODER}.dim=16",
                                       "--trainer.fast_dev_run=1"],
        "dna_promoters.yaml": [f"{DNA_ENCODER}.dim=16", "--trainer.fast_dev_run=1",
                               "--data.init_args.batch_size=8"],
        "dna_pretrain.yaml": [f"{DNA_ENCODER}.dim=16", "--trainer.fast_dev_run=1",
                              "--data.init_args.batch_size=8"]}
# The GPU-sized configs, shrunk the same way (bf16 autocast runs on the CPU too).
GPU_SMALL = [f"{DNA_ENCODER}.dim=16", f"{DNA_ENCODER}.heads=2",
             f"{DNA_ENCODER}.memory_heads=2", f"{DNA_ENCODER}.depth=1",
             "--trainer.fast_dev_run=1", "--data.init_args.batch_size=8",
             "--data.init_args.num_workers=0", "--trainer.enable_model_summary=false"]
FAST["dna_promoters_gpu.yaml"] = [*GPU_SMALL, "--model.init_args.kmer_hidden=8"]
FAST["dna_pretrain_gpu.yaml"] = GPU_SMALL


@pytest.fixture
def empty_folder(tmp_path, monkeypatch):
    folder = tmp_path / "run"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.setattr(sys, "argv", ["titans-seq"])  # the CLI reads args=, not pytest's argv
    return folder


# fast_dev_run's few validation batches of the class-sorted promoter file hold one class only
pytestmark = pytest.mark.filterwarnings("ignore:No positive samples in targets")


@pytest.mark.parametrize("config", sorted(FAST))
def test_shipped_config_fits_from_any_folder_and_writes_nothing(config, empty_folder):
    cli = build_cli(["fit", "--config", str(CONFIGS / config),
                     "--trainer.enable_progress_bar=false", *FAST[config]])
    assert cli.trainer.state.finished
    assert cli.model.net is not None  # shapes taken from the datamodule
    assert os.listdir(empty_folder) == []


def test_print_config_is_complete_and_valid(empty_folder, capsys):
    with pytest.raises(SystemExit):
        build_cli(["fit", "--config", str(CONFIGS / "dna_promoters.yaml"), "--print_config"])
    printed = capsys.readouterr().out
    config = yaml.safe_load(printed)
    init_args = config["model"]["init_args"]
    for name in ("stem_kernel", "lr", "encoder"):
        assert name in init_args  # every __init__ argument, not only the ones set
    for name in ("variant", "dim", "depth", "memory_depth", "chunk_size", "max_surprise_norm",
                 "bidirectional", "window", "memory_kernel"):
        assert name in init_args["encoder"]  # every field of the encoder's config
    assert config["data"]["init_args"]["tokenizer"] == "char"
    saved = empty_folder.parent / "printed.yaml"
    saved.write_text(printed)
    cli = build_cli(["fit", "--config", str(saved), "--trainer.enable_progress_bar=false",
                     *FAST["dna_promoters.yaml"]])
    assert cli.trainer.state.finished


def test_flags_reach_the_encoder(empty_folder):
    cli = build_cli(["fit", "--config", str(CONFIGS / "forecast_etth1.yaml"),
                     f"{FORECAST_ENCODER}.variant=mag", f"{FORECAST_ENCODER}.depth=2",
                     "--trainer.enable_progress_bar=false", *FAST["forecast_etth1.yaml"]])
    encoder = cli.model.net.encoder
    assert encoder.variant == "mag" and encoder.depth == 2


@pytest.mark.parametrize("config, metric", [("forecast_etth1.yaml", "val_mse"),
                                            ("dna_promoters.yaml", "val_accuracy")])
def test_logger_true_gives_csv_logs_and_the_config(config, metric, empty_folder):
    build_cli(["fit", "--config", str(CONFIGS / config),
               "--trainer.logger=true", f"--trainer.default_root_dir={empty_folder}",
               "--trainer.enable_progress_bar=false", "--trainer.fast_dev_run=0",
               "--trainer.max_epochs=1", "--trainer.limit_train_batches=2",
               "--trainer.limit_val_batches=1", "--trainer.log_every_n_steps=1",
               *FAST[config][:1]])
    logs = list(empty_folder.rglob("metrics.csv"))
    assert len(logs) == 1 and metric in logs[0].read_text()
    assert (logs[0].parent / "config.yaml").exists()


def test_console_command_exits_cleanly(empty_folder):
    command = Path(sys.executable).with_name("titans-seq")
    completed = subprocess.run([str(command), "fit", "--config",
                                str(CONFIGS / "forecast_etth1.yaml"),
                                "--trainer.enable_progress_bar=false",
                                *FAST["forecast_etth1.yaml"]],
                               capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert os.listdir(empty_folder) == []


def test_bad_config_value_is_refused(empty_folder):
    with pytest.raises(SystemExit):
        build_cli(["fit", "--config", str(CONFIGS / "forecast_etth1.yaml"),
                   f"{FORECAST_ENCODER}.variant=xyz"])


def test_fit_then_validate_test_and_predict_from_the_checkpoint(empty_folder):
    common = ["--config", str(CONFIGS / "forecast_etth1.yaml"), f"{FORECAST_ENCODER}.dim=16",
              "--trainer.enable_progress_bar=false", "--trainer.limit_val_batches=1",
              "--trainer.limit_test_batches=1", "--trainer.enable_checkpointing=true",
              f"--trainer.default_root_dir={empty_folder}"]
    build_cli(["fit", *common, "--trainer.max_epochs=1", "--trainer.limit_train_batches=2"])
    checkpoint = next(empty_folder.rglob("*.ckpt"))
    for subcommand, metric in (("validate", "val_mse"), ("test", "test_mse")):
        cli = build_cli([subcommand, *common, f"--ckpt_path={checkpoint}"])
        assert metric in cli.trainer.callback_metrics
    cli = build_cli(["predict", *common, f"--ckpt_path={checkpoint}"])
    assert cli.trainer.state.finished and cli.trainer.predict_loop.predictions[0].shape == \
        (1, 96, 7)  # one forecast of 96 rows and 7 channels past the end of ETTh1
    # without --output, the predictions are returned and nothing is written
    assert {path.suffix for path in empty_folder.rglob("*") if path.is_file()} == {".ckpt"}


def test_online_config_fits_then_tests_online_from_its_checkpoint(empty_folder):
    """The online protocol's config: fit writes the best checkpoint where the config's comment
    says, and test from it chooses the error memory on validation (the checkpoint was written
    before training ended) and scores every test origin online."""
    common = ["--config", str(CONFIGS / "forecast_etth2_online.yaml"),
              f"{FORECAST_ENCODER}.dim=16", "--model.init_args.config.head_hidden=16",
              "--trainer.enable_progress_bar=false"]
    build_cli(["fit", *common, "--trainer.max_epochs=1", "--trainer.limit_train_batches=2"])
    checkpoint = empty_folder / "runs" / "etth2_online" / "best.ckpt"
    assert checkpoint.exists()
    cli = build_cli(["test", *common, f"--ckpt_path={checkpoint}"])
    assert cli.model.error_memory is not None
    scores = cli.trainer.callback_metrics
    assert 0 < float(scores["test_mse"]) < 10 and 0 < float(scores["test_mae"]) < 3


def test_pretraining_config_writes_the_checkpoint_the_classifier_starts_from(empty_folder):
    small = [f"{DNA_ENCODER}.dim=16", "--data.init_args.batch_size=8",
             "--trainer.enable_progress_bar=false"]
    pretraining = build_cli(["fit", "--config", str(CONFIGS / "dna_pretrain.yaml"), *small,
                             "--trainer.max_epochs=1", "--trainer.limit_train_batches=2",
                             "--trainer.limit_val_batches=1"])
    checkpoint = empty_folder / "runs" / "dna_pretrain" / "pretrained.ckpt"
    assert sorted(os.listdir(checkpoint.parent)) == ["pretrained.ckpt"]
    classifier = build_cli(["fit", "--config", str(CONFIGS / "dna_promoters.yaml"), *small,
                            "--trainer.fast_dev_run=1",
                            f"--model.init_args.pretrained={checkpoint}"])
    assert classifier.trainer.state.finished
    # Pre-training never read the classifier's test part.
    assert set(pretraining.datamodule.datasets["train"].sequences).isdisjoint(
        classifier.datamodule.datasets["test"].sequences)
    # The fine-tuned embedding started from the pre-trained one: one AdamW step moves each
    # weight by about lr, where a fresh N(0, 1) embedding would differ by about 1.
    started = pretraining.model.trunk.embed.weight
    tuned = classifier.model.net.trunk.embed.weight
    assert (tuned - started).abs().max() < 0.01


def test_a_checkpoint_of_fit_becomes_a_forecaster(empty_folder):
    """``TitansForecaster.from_checkpoint`` turns the online config's checkpoint and its
    datamodule into an estimator that forecasts as the module does, and refuses data laid out
    otherwise."""
    from datamodules.datasets import load_etth2
    from titans_seq import TitansForecaster

    common = ["--config", str(CONFIGS / "forecast_etth2_online.yaml"),
              f"{FORECAST_ENCODER}.dim=16", "--model.init_args.config.head_hidden=16",
              "--trainer.enable_progress_bar=false"]
    build_cli(["fit", *common, "--trainer.max_epochs=1", "--trainer.limit_train_batches=2"])
    checkpoint = empty_folder / "runs" / "etth2_online" / "best.ckpt"
    cli = build_cli(["test", *common, f"--ckpt_path={checkpoint}"])  # makes the choices
    data = cli.datamodule
    model = TitansForecaster.from_checkpoint(checkpoint, data)
    assert model.error_memory_ == cli.model.error_memory
    horizon, rows = model.horizon, data.series.lengths[0]
    expected = cli.model.forecaster().origin_forecasts(data.prepared[0], rows - horizon,
                                                       rows - horizon + 1)[0].numpy()
    backtest = model.backtest(n_windows=1).forecasts
    np.testing.assert_allclose(backtest[model.target_names_].to_numpy(),
                               data.scaler.inverse_transform(expected, 0), rtol=1e-4,
                               atol=1e-4)
    forecast = model.predict()
    assert len(forecast) == horizon and forecast["date"].iloc[0] > data.series.times[0][-1]
    # a series as fit takes it, read with the estimator's parameters
    frame = load_etth2().iloc[:4000]
    again = TitansForecaster.from_checkpoint(checkpoint, frame, time_col="date")
    assert again.predict().shape == forecast.shape
    with pytest.raises(ValueError, match="horizon=24.*horizon=12"):
        TitansForecaster.from_checkpoint(checkpoint, TimeSeriesDataModule(
            "etth2", horizon=12, lookback=96, linear_lookback=data.layout.linear_lookback,
            patch_len=data.layout.patch_len, segment_tokens=data.layout.segment_tokens))


# -- predict --output, the linked layout, the help -----------------------------------------------
# A small forecasting layout, set once on the datamodule (the model takes it through the links).
TINY_LAYOUT = ["--data.init_args.split=fractions", "--data.init_args.lookback=32",
               "--data.init_args.linear_lookback=64", "--data.init_args.horizon=8",
               "--data.init_args.patch_len=8", "--data.init_args.segment_tokens=4"]
TINY_FORECAST = ["--config", str(CONFIGS / "forecast_etth1.yaml"), f"{FORECAST_ENCODER}.dim=16",
                 "--model.init_args.config.head_hidden=16", "--trainer.enable_progress_bar=false",
                 *TINY_LAYOUT]
TARGETS = ["load", "temp"]


def two_series(folder: Path) -> Path:
    """A long CSV of two hourly series of different lengths and levels (around 10 and -50)."""
    rng = np.random.default_rng(0)
    frames = []
    for key, length, level in (("north", 300, 10.0), ("south", 260, -50.0)):
        steps = np.arange(length)
        frames.append(pd.DataFrame({
            "unique_id": key, "ds": pd.date_range("2024-01-01", periods=length, freq="h"),
            "load": level + 3 * np.sin(steps / 6) + rng.normal(0, 0.3, length),
            "temp": 2 * level + np.cos(steps / 9) + rng.normal(0, 0.3, length)}))
    path = folder / "two_series.csv"
    pd.concat(frames).to_csv(path, index=False)
    return path


def fitted_checkpoint(common: list[str], folder: Path) -> Path:
    """A checkpoint of one short epoch of ``common``'s model and data."""
    build_cli(["fit", *common, "--trainer.max_epochs=1", "--trainer.limit_train_batches=2",
               "--trainer.limit_val_batches=1", "--trainer.enable_checkpointing=true",
               f"--trainer.default_root_dir={folder}"])
    return next(folder.rglob("*.ckpt"))


def in_data_units(scaled: np.ndarray, observed: pd.DataFrame) -> np.ndarray:
    """``scaled`` forecasts ``(H, C[, Q])`` in the units of ``observed`` (a series' rows):
    × std + mean of its training rows (the first 70 %: the datamodule's default fractions)."""
    train = observed[TARGETS].to_numpy()[:int(len(observed) * (1 - 0.1 - 0.2))]
    mean, std = train.mean(0), train.std(0)
    if scaled.ndim == 3:  # quantiles last
        return scaled * std[:, None] + mean[:, None]
    return scaled * std + mean


def test_predict_writes_forecasts_in_the_data_units_to_csv(empty_folder):
    """Long data: one row per series and forecast time, after the series' end, in the units
    of the data; a checkpoint of another horizon than the datamodule's is refused."""
    data = two_series(empty_folder.parent)
    common = [*TINY_FORECAST, f"--data.init_args.data={data}", "--data.init_args.id_col=unique_id",
              "--data.init_args.time_col=ds", "--data.init_args.target=[load, temp]"]
    checkpoint = fitted_checkpoint(common, empty_folder)
    output = empty_folder / "forecasts.csv"
    cli = build_cli(["predict", *common, f"--ckpt_path={checkpoint}", f"--output={output}",
                     "--trainer.enable_checkpointing=true"])  # the fit's callbacks, unused
    assert cli.model.config.layout.horizon == 8  # --data.init_args.horizon reached the model
    written = pd.read_csv(output, parse_dates=["cutoff", "ds"])
    assert list(written.columns) == ["unique_id", "cutoff", "ds", *TARGETS]
    observed = pd.read_csv(data, parse_dates=["ds"])
    assert list(written["unique_id"].unique()) == ["north", "south"]
    for index, key in enumerate(cli.datamodule.series.ids):  # one batch per series
        rows, history = written[written.unique_id == key], observed[observed.unique_id == key]
        last = history["ds"].iloc[-1]
        assert (rows["cutoff"] == last).all()
        assert list(rows["ds"]) == list(pd.date_range(last, periods=9, freq="h")[1:])
        scaled = cli.trainer.predict_loop.predictions[index][0].numpy()
        assert scaled.std() > 1e-3  # a forecast that is not the mean: the std is undone too
        np.testing.assert_allclose(rows[TARGETS].to_numpy(), in_data_units(scaled, history),
                                   rtol=1e-5, atol=1e-5)
    levels = written.groupby("unique_id")["load"].mean()
    assert abs(levels["north"] - 10) < 5 and abs(levels["south"] + 50) < 5  # not scaled
    with pytest.raises(ValueError, match="trained with horizon=8, the datamodule has horizon=4"):
        build_cli(["predict", *common, "--data.init_args.horizon=4", f"--ckpt_path={checkpoint}"])


def test_predict_writes_quantile_forecasts_of_wide_data_to_parquet(empty_folder):
    """Wide data (one series, no id column) and a quantile model: one column per target and
    level, in the data's units."""
    import polars

    data = empty_folder.parent / "one_series.csv"
    two_series(empty_folder.parent)
    whole = pd.read_csv(empty_folder.parent / "two_series.csv", parse_dates=["ds"])
    whole[whole.unique_id == "north"].drop(columns="unique_id").to_csv(data, index=False)
    common = [*TINY_FORECAST, f"--data.init_args.data={data}",
              "--model.init_args.config.loss=quantile"]
    checkpoint = fitted_checkpoint(common, empty_folder)
    output = empty_folder / "forecasts.parquet"
    cli = build_cli(["predict", *common, f"--ckpt_path={checkpoint}", f"--output={output}",
                     "--trainer.enable_checkpointing=true"])  # the fit's callbacks, unused
    written = polars.read_parquet(output)
    levels = ["0.1", "0.5", "0.9"]
    assert written.columns == ["cutoff", "ds", *[f"{name}_q{level}" for name in TARGETS
                                                 for level in levels]]
    history = pd.read_csv(data, parse_dates=["ds"])
    last = history["ds"].iloc[-1]
    assert written["ds"].to_list() == list(pd.date_range(last, periods=9, freq="h")[1:])
    assert set(written["cutoff"].to_list()) == {last}
    expected = in_data_units(cli.trainer.predict_loop.predictions[0][0].numpy(), history)
    for channel, name in enumerate(TARGETS):
        for q, level in enumerate(levels):
            np.testing.assert_allclose(written[f"{name}_q{level}"].to_numpy(),
                                       expected[:, channel, q], rtol=1e-5, atol=1e-5)


def test_predict_writes_dna_classes_with_ids_and_labels(empty_folder):
    fasta = empty_folder.parent / "sequences.fa"
    fasta.write_text(">promoter_a\nACGTACGTACGTTTGACAGCTAGCTAGGCTATAATGCGC\n"
                     ">promoter_b\nGGGCCCAAATTTGGGCCCAAATTTACGT\n"
                     ">other_c\nTTTTTTTTTTAAAAAAAAAACCCCCGGGGG\n")
    output = empty_folder / "classes.csv.gz"
    cli = build_cli(["predict", "--config", str(CONFIGS / "dna_promoters.yaml"),
                     f"{DNA_ENCODER}.dim=16", "--data.init_args.batch_size=2",
                     f"--data.init_args.predict={fasta}", "--trainer.enable_progress_bar=false",
                     f"--output={output}"])
    written = pd.read_csv(output)
    classes = cli.datamodule.classes_.tolist()
    assert list(written.columns) == ["id", "label", *[f"proba_{c}" for c in classes]]
    assert list(written["id"]) == ["promoter_a", "promoter_b", "other_c"]
    probabilities = np.concatenate([p.numpy() for p in cli.trainer.predict_loop.predictions])
    np.testing.assert_allclose(written[[f"proba_{c}" for c in classes]].to_numpy(),
                               probabilities, rtol=1e-5)
    assert list(written["label"]) == [classes[i] for i in probabilities.argmax(1)]


@pytest.mark.parametrize("output, message", [
    ("forecasts.txt", r"must end in \.csv, \.csv\.gz, \.parquet"),
    ("missing/forecasts.csv", "its folder 'missing' does not exist")])
def test_predict_refuses_an_output_it_cannot_write(output, message, empty_folder):
    with pytest.raises(ValueError, match=message):
        build_cli(["predict", *TINY_FORECAST, f"--output={output}"])
    assert os.listdir(empty_folder) == []


def test_the_layout_is_set_once_on_the_datamodule(empty_folder):
    """The datamodule's layout reaches the model (its config given or left to the defaults);
    setting it on the model as well is refused, on the command line and in a file."""
    cli = build_cli(["--config", str(CONFIGS / "forecast_etth1.yaml"),
                     "--data.init_args.horizon=12", "--data.init_args.lookback=48"], run=False)
    assert (cli.model.config.layout.horizon, cli.model.config.layout.lookback) == (12, 48)
    assert cli.model.config.encoder.dim == 64  # the rest of the model's config kept
    cli = build_cli(["--model=titans_seq.ForecastingModule",
                     "--data=datamodules.TimeSeriesDataModule", "--data.init_args.data=etth1",
                     "--data.init_args.mode=window", "--data.init_args.horizon=12"], run=False)
    assert (cli.model.config.layout.mode, cli.model.config.layout.horizon) == ("window", 12)
    with pytest.raises(ValueError, match="--data.init_args.horizon"):
        build_cli(["--config", str(CONFIGS / "forecast_etth1.yaml"),
                   "--model.init_args.config.layout.horizon=12"], run=False)
    config = yaml.safe_load((CONFIGS / "forecast_etth1.yaml").read_text())
    config["model"]["init_args"]["config"]["layout"] = {"lookback": 48}
    repeated = empty_folder.parent / "repeated.yaml"
    repeated.write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match="repeated.yaml.*--data.init_args.lookback"):
        build_cli(["--config", str(repeated)], run=False)


@pytest.mark.parametrize("subcommand", [[], ["fit"], ["predict"]])
def test_help_names_the_models_datamodules_configs_and_examples(
        subcommand, capsys, empty_folder):
    with pytest.raises(SystemExit):
        build_cli([*subcommand, "--help"])
    text = capsys.readouterr().out
    for name in ("titans_seq.ForecastingModule", "datamodules.TimeSeriesDataModule",
                 "titans_seq.ClassificationModule", "titans_seq.PretrainingModule",
                 "datamodules.DNADataModule", "titans-seq fit --config",
                 "titans-seq predict --config", "--output forecasts.csv"):
        assert name in text
    assert [config.name for config in sorted(CONFIGS.glob("*.yaml"))
            if config.name not in text] == []
    if subcommand == ["predict"]:
        assert "--output OUTPUT" in text


def test_predict_under_ddp_writes_every_series_once(empty_folder):
    """Two CPU processes each forecast one of the two series; rank 0 gathers the rows and
    writes one file, equal to the one a single process writes."""
    data = two_series(empty_folder.parent)
    common = [*TINY_FORECAST, f"--data.init_args.data={data}", "--data.init_args.id_col=unique_id",
              "--data.init_args.time_col=ds", "--data.init_args.target=[load, temp]",
              "--trainer.accelerator=cpu"]
    build_cli(["predict", *common, f"--output={empty_folder / 'one.csv'}"])
    command = Path(sys.executable).with_name("titans-seq")
    completed = subprocess.run([str(command), "predict", *common, "--trainer.devices=2",
                                "--trainer.strategy=ddp", "--output=two.csv"],
                               capture_output=True, text=True, timeout=300,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert sorted(os.listdir(empty_folder)) == ["one.csv", "two.csv"]
    pd.testing.assert_frame_equal(pd.read_csv(empty_folder / "two.csv"),
                                  pd.read_csv(empty_folder / "one.csv"))

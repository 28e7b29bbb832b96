"""The ``titans-seq`` LightningCLI: shipped configs, ``--print_config``, quiet defaults, loggers."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
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

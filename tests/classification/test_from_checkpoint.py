"""``TitansClassifier.from_checkpoint``: a checkpoint written by ``titans-seq fit`` with the
promoter config becomes a classifier that predicts as the module does."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from titans_seq import TitansClassifier
from titans_seq.cli import build_cli

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "dna_promoters.yaml"
pytestmark = pytest.mark.filterwarnings("ignore:No positive samples in targets")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The promoter config, shrunk, fitted for two batches; its checkpoint and the CLI."""
    folder = tmp_path_factory.mktemp("run")
    argv, cwd = sys.argv, Path.cwd()
    sys.argv = ["titans-seq"]
    try:
        cli = build_cli(["fit", "--config", str(CONFIG), "--model.init_args.encoder.dim=16",
                         "--model.init_args.kmer_hidden=8", "--data.init_args.batch_size=8",
                         "--trainer.max_epochs=1", "--trainer.limit_train_batches=2",
                         "--trainer.limit_val_batches=1", "--trainer.enable_progress_bar=false",
                         f"--trainer.default_root_dir={folder}"])
    finally:
        sys.argv = argv
    checkpoint = folder / "promoters.ckpt"
    cli.trainer.save_checkpoint(checkpoint)
    assert Path.cwd() == cwd
    return cli, checkpoint


def _module_probabilities(cli, sequences: list[str]) -> np.ndarray:
    """The CLI module's own probabilities of ``sequences``, one at a time (no padding)."""
    data, module = cli.datamodule, cli.model.eval()
    tokens = data.tokenizer_
    rows = []
    with torch.inference_mode():
        for sequence in sequences:
            inputs = torch.as_tensor(tokens.encode(sequence))[None]
            mask = torch.ones(inputs.shape[:2], dtype=torch.bool)
            rows.append(module.predict_proba(inputs, mask).double().numpy()[0])
    return np.stack(rows)


def test_the_classifier_predicts_as_the_trained_module(trained):
    cli, checkpoint = trained
    data = cli.datamodule
    model = TitansClassifier.from_checkpoint(checkpoint, data)
    sequences = data.datasets["test"].sequences[:12]
    np.testing.assert_allclose(model.predict_proba(sequences),
                               _module_probabilities(cli, sequences), atol=1e-5)
    np.testing.assert_array_equal(model.classes_, data.classes_)
    labels = model.predict(sequences)
    assert set(labels) <= set(data.classes_.tolist())
    # the network's settings became the estimator's parameters
    assert model.get_params()["dim"] == 16 and model.get_params()["kmer_hidden"] == 8
    assert model.get_params()["tokenizer"] == "char"


def test_without_the_datamodule_the_checkpoint_names_its_classes(trained, tmp_path):
    cli, checkpoint = trained
    model = TitansClassifier.from_checkpoint(checkpoint)
    np.testing.assert_array_equal(model.classes_, cli.datamodule.classes_)
    sequences = cli.datamodule.datasets["test"].sequences[:4]
    again = TitansClassifier.load(model.save(tmp_path / "saved"))
    np.testing.assert_array_equal(again.predict_proba(sequences), model.predict_proba(sequences))
    renamed = TitansClassifier.from_checkpoint(checkpoint, classes=["no", "yes"])
    np.testing.assert_array_equal(renamed.predict_proba(sequences),
                                  model.predict_proba(sequences))
    assert set(renamed.predict(sequences)) <= {"no", "yes"}


def test_what_does_not_belong_to_the_checkpoint_is_refused(trained, tmp_path):
    _, checkpoint = trained
    with pytest.raises(ValueError, match="2 classes; 3 were given"):
        TitansClassifier.from_checkpoint(checkpoint, classes=["a", "b", "c"])
    with pytest.raises(ValueError, match="repeated labels"):
        TitansClassifier.from_checkpoint(checkpoint, classes=["a", "a"])
    with pytest.raises(ValueError, match="tokenizer='char'.*leave it unset"):
        TitansClassifier.from_checkpoint(checkpoint, tokenizer="onehot")
    with pytest.raises(ValueError, match="is not a file"):
        TitansClassifier.from_checkpoint(tmp_path / "missing.ckpt")
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="broken.ckpt"):
        TitansClassifier.from_checkpoint(broken)

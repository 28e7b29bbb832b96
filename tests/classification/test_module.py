"""`ClassificationModule` with `DNADataModule` through real Lightning Trainers: metrics per
stage, multi-class, checkpoint round trip without the data."""

import numpy as np
import pandas as pd
import pytest
import torch
import lightning.pytorch as pl

from datamodules.dna import DNADataModule
from titans_seq import ClassificationModule
from titans_seq.training import quiet_lightning

from .test_classifier import motif_task


def trainer(tmp_path, **options):
    return pl.Trainer(max_epochs=2, logger=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=tmp_path,
                      accelerator="cpu", **options)


def three_classes(n: int) -> pd.DataFrame:
    """Class by motif: GATTACA, CCGGAAT or neither."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        sequence = "".join(rng.choice(list("ACGT"), size=40))
        label = ["none", "gattaca", "ccggaat"][i % 3]
        if label != "none":
            at = int(rng.integers(0, 33))
            sequence = sequence[:at] + label.upper() + sequence[at + 7:]
        rows.append((sequence, label))
    return pd.DataFrame(rows, columns=["sequence", "label"])


def test_fit_test_and_checkpoint_round_trip(tmp_path):
    sequences, labels = motif_task(0, 240)
    frame = pd.DataFrame({"sequence": sequences, "label": labels})
    data = DNADataModule(frame, val_fraction=0.2, test_fraction=0.2, batch_size=32, seed=0)
    data.setup("fit")
    torch.manual_seed(0)
    module = ClassificationModule(n_classes=data.n_classes, vocab_size=data.vocab_size, dim=16,
                                  depth=1, memory_heads=2, chunk_size=4, lr=3e-3,
                                  tokenizer="char", rc_average=True)
    checkpoint = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, monitor="val_loss")
    with quiet_lightning():
        fit = trainer(tmp_path, callbacks=[checkpoint])
        fit.fit(module, datamodule=data)
        metrics = fit.test(module, datamodule=data, ckpt_path=checkpoint.best_model_path,
                           verbose=False)[0]
    for name in ("accuracy", "mcc", "f1", "auroc", "loss"):
        assert np.isfinite(metrics[f"test_{name}"])
    assert 0 <= metrics["test_accuracy"] <= 1 and -1 <= metrics["test_mcc"] <= 1
    # The checkpoint alone (no training data) predicts what the trained module predicts.
    restored = ClassificationModule.load_from_checkpoint(checkpoint.best_model_path,
                                                         map_location="cpu")
    new_data = DNADataModule(predict=sequences[:50], batch_size=16)
    new_data.load_state_dict(torch.load(checkpoint.best_model_path,
                                        weights_only=True)["DNADataModule"])
    assert list(new_data.classes_) == ["background", "promoter"]
    with quiet_lightning():
        predicted = torch.cat(trainer(tmp_path).predict(restored, datamodule=new_data))
    module.load_state_dict(restored.state_dict())
    module.eval()
    batch = next(iter(new_data.predict_dataloader()))
    torch.testing.assert_close(predicted[:16], module.predict_proba(batch["inputs"],
                                                                     batch["mask"]))
    assert predicted.shape == (50, 2)


def test_multiclass_metrics(tmp_path):
    data = DNADataModule(three_classes(150), val_fraction=0.2, test_fraction=0.2,
                         batch_size=32, seed=0)
    data.setup("fit")
    assert data.n_classes == 3
    module = ClassificationModule(n_classes=3, vocab_size=data.vocab_size, dim=16, depth=1,
                                  memory_heads=2, chunk_size=4)
    with quiet_lightning():
        fit = trainer(tmp_path, enable_checkpointing=False)
        fit.fit(module, datamodule=data)
        metrics = fit.validate(module, datamodule=data, verbose=False)[0]
    assert {"val_accuracy", "val_mcc", "val_f1", "val_auroc"} <= set(metrics)
    with pytest.raises(ValueError, match="n_classes"):
        ClassificationModule(n_classes=1, vocab_size=10)


def test_the_classifier_and_its_modules_share_one_set_of_encoder_defaults():
    from titans_seq import EncoderConfig, PretrainingModule, TitansClassifier

    defaults = TitansClassifier()._check_params()["encoder"]
    assert EncoderConfig.coerce(ClassificationModule().hparams.encoder) == defaults
    assert EncoderConfig.coerce(PretrainingModule().hparams.encoder) == defaults

"""Interrupt-and-resume equals an uninterrupted run; bf16-mixed and 32-true train on the CPU
with the memory state in fp32; a checkpoint predicts without the training data."""

import lightning.pytorch as pl
import pytest
import torch

from datamodules import DNADataModule, TimeSeriesDataModule, load_etth1
from titans_seq import ClassificationModule, ForecastingModule
from titans_seq.training import KeepBestWeights, quiet_lightning

from ..classification.test_classifier import motif_task


def forecasting_run(tmp_path, max_epochs, callbacks=(), ckpt_path=None, precision="32-true",
                    dropout=0.0, mode="window"):
    pl.seed_everything(0, verbose=False)
    shapes = dict(mode=mode, lookback=24, horizon=12)
    if mode == "stream":
        shapes.update(linear_lookback=48, patch_len=8, segment_tokens=8)
    data = TimeSeriesDataModule(load_etth1().iloc[:800], batch_size=16 if mode == "window"
                                else 3, seed=3, **shapes)
    model = ForecastingModule(**{"patch_len": 8, **shapes}, dim=16, depth=1, memory_heads=2,
                              chunk_size=2, dropout=dropout)
    with quiet_lightning():
        trainer = pl.Trainer(accelerator="cpu", max_epochs=max_epochs, limit_train_batches=4,
                             limit_val_batches=1 if mode == "window" else 3, logger=False,
                             enable_progress_bar=False,
                             enable_model_summary=False, num_sanity_val_steps=0,
                             default_root_dir=tmp_path, callbacks=list(callbacks),
                             enable_checkpointing=any(isinstance(c, pl.callbacks.ModelCheckpoint)
                                                      for c in callbacks),
                             precision=precision)
        trainer.fit(model, data, ckpt_path=ckpt_path)
    return model, trainer


class StopAfter(pl.Callback):
    """An interruption: stop at the end of epoch ``epoch`` (0-based)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_end(self, trainer, module) -> None:
        if trainer.current_epoch == self.epoch:
            trainer.should_stop = True


@pytest.mark.filterwarnings("ignore:The dirpath has changed")  # a new folder on purpose
@pytest.mark.parametrize("mode", ["window", "stream"])
def test_interrupt_and_resume_gives_the_uninterrupted_weights(tmp_path, mode):
    """With dropout (the random state travels in the checkpoint) and the best-epoch callback
    of the shipped configs (its state too); in stream mode the lane order of each epoch, the
    linear path's fit and the memory-weight choice resume too."""
    def best():
        return KeepBestWeights("val_mse", 0)
    straight, _ = forecasting_run(tmp_path / "straight", max_epochs=4, callbacks=[best()],
                                  dropout=0.1, mode=mode)
    checkpoint = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True,
                                              save_top_k=0)
    forecasting_run(tmp_path / "first", max_epochs=4,
                    callbacks=[best(), checkpoint, StopAfter(1)], dropout=0.1, mode=mode)
    interrupted = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)["state_dict"]
    resumed, trainer = forecasting_run(tmp_path / "second", max_epochs=4, callbacks=[
        best(), pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt2", save_last=True,
                                             save_top_k=0)],
        ckpt_path=tmp_path / "ckpt" / "last.ckpt", dropout=0.1, mode=mode)
    assert trainer.current_epoch == 4
    for name, value in straight.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[name], value, rtol=0, atol=1e-6)
    # Training on differs from what the checkpoint held: the resumed run did train on.
    assert any(not torch.equal(interrupted[k], v) for k, v in straight.state_dict().items())


@pytest.mark.parametrize("precision", ["bf16-mixed", "32-true"])
def test_precisions_train_on_cpu_with_an_fp32_memory(tmp_path, precision):
    model, trainer = forecasting_run(tmp_path, max_epochs=1, precision=precision)
    assert torch.isfinite(torch.tensor(float(trainer.callback_metrics["train_loss"])))
    assert all(p.dtype == torch.float32 for p in model.parameters())
    block = model.net.encoder.blocks[0]
    x = torch.randn(2, 12, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16-mixed"):
        _, state = block.memory(x)
    assert all(w.dtype == torch.float32 for w in (*state.memory.weights,
                                                  *state.memory.momentum))


def test_dna_checkpoint_predicts_without_the_training_data(tmp_path):
    sequences, labels = motif_task(0, 120)
    data = DNADataModule(sequences, labels=list(labels), batch_size=32, seed=0)
    checkpoint = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, save_last=True, save_top_k=0)
    model = ClassificationModule(dim=16, depth=1, memory_heads=2, chunk_size=4)  # shapes: data
    with quiet_lightning():
        pl.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_progress_bar=False,
                   enable_model_summary=False, callbacks=[checkpoint]).fit(model, data)
    assert model.hparams.n_classes == 2 and model.hparams.vocab_size == data.vocab_size
    restored = ClassificationModule.load_from_checkpoint(tmp_path / "last.ckpt",
                                                         map_location="cpu")
    fresh = DNADataModule(predict=sequences[:10], batch_size=10)
    fresh.load_state_dict(torch.load(tmp_path / "last.ckpt",
                                     weights_only=True)["DNADataModule"])
    with quiet_lightning():
        predicted = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False
                               ).predict(restored, fresh)[0]
    model.eval()
    batch = next(iter(fresh.predict_dataloader()))
    torch.testing.assert_close(predicted, model.predict_proba(batch["inputs"], batch["mask"]))
    assert list(fresh.classes_) == ["background", "promoter"]

"""`KeepBestWeights` with a real Trainer: the best epoch's weights come back, in either
direction, and patience stops the run."""

import lightning.pytorch as pl
import pytest
import torch

from titans_seq.training import KeepBestWeights, quiet_lightning

SCORES = [0.5, 0.7, 0.6, 0.65, 0.4, 0.9]


class EpochCounter(pl.LightningModule):
    """A weight that counts the epochs trained, and a scripted validation score."""

    def __init__(self) -> None:
        super().__init__()
        self.epochs = torch.nn.Parameter(torch.zeros(()))

    def training_step(self, batch, index):
        return (self.epochs * 0).sum()

    def on_train_epoch_end(self) -> None:
        with torch.no_grad():
            self.epochs += 1

    def validation_step(self, batch, index):
        self.log("score", SCORES[self.current_epoch])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


@pytest.mark.parametrize("mode, best_epoch, epochs_run", [("max", 1, 4), ("min", 0, 3)])
def test_best_epoch_comes_back_and_patience_stops(mode, best_epoch, epochs_run):
    module = EpochCounter()
    data = torch.utils.data.DataLoader(torch.zeros(2, 1), batch_size=2)
    with quiet_lightning():
        trainer = pl.Trainer(max_epochs=len(SCORES), logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False,
                             callbacks=[KeepBestWeights("score", 2, mode)])
        trainer.fit(module, data, data)
    # Validation runs before the epoch's end hook: the weights validated at epoch e count e.
    assert trainer.current_epoch == epochs_run
    assert module.epochs.item() == best_epoch
    with pytest.raises(ValueError, match="'min' or 'max'"):
        KeepBestWeights("score", 2, "up")

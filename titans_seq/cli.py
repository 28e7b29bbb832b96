"""``titans-seq``: the Lightning command line for every titans_seq model and datamodule.

    titans-seq fit --config configs/forecast_etth1.yaml
    titans-seq test --config configs/dna_promoters.yaml --ckpt_path runs/last.ckpt
    titans-seq fit --config configs/dna_promoters.yaml --print_config   # the complete config

A config names a LightningModule (``model.class_path``: ``titans_seq.ForecastingModule`` or
``titans_seq.ClassificationModule``) and a datamodule (``data.class_path``:
``datamodules.TimeSeriesDataModule`` or ``datamodules.DNADataModule``); every ``__init__``
argument of both, and every Trainer flag, can be set in YAML or as ``--model.init_args.dim=128``.
The models take the data's shapes from the datamodule (``n_channels`` / ``n_classes`` left
unset), so a config names them once.

Nothing is written unless asked: no logger and no checkpoints by default.
``--trainer.logger=true`` gives a CSV logger under ``default_root_dir`` (TensorBoard with
``--trainer.logger=lightning.pytorch.loggers.TensorBoardLogger``), and the resolved config is
then saved beside the logs; ``--trainer.enable_checkpointing=true`` writes checkpoints.
"""

from __future__ import annotations

import os

import lightning.pytorch as pl
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger

from .training import quiet_lightning

TRAINER_DEFAULTS = {"logger": False, "enable_checkpointing": False}


class SaveConfigWhenLogging(SaveConfigCallback):
    """Save the resolved config beside the logs, and only when there are logs."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if trainer.logger is not None:
            super().setup(trainer, pl_module, stage)


class TitansCLI(LightningCLI):
    """:class:`LightningCLI` with quiet defaults and CSV as the logger that ``logger=true``
    asks for."""

    def instantiate_trainer(self, **kwargs) -> pl.Trainer:
        config = self.config_init[self.subcommand] if self.subcommand else self.config_init
        trainer_config = config["trainer"]
        if trainer_config.get("logger") is True:
            trainer_config["logger"] = CSVLogger(
                save_dir=trainer_config.get("default_root_dir") or os.getcwd())
        return super().instantiate_trainer(**kwargs)


def build_cli(args: list[str] | None = None, run: bool = True) -> TitansCLI:
    """Parse ``args`` (default ``sys.argv``) and, with ``run``, run the subcommand; the CLI
    object holds the model, datamodule and Trainer afterwards."""
    with quiet_lightning():
        return TitansCLI(pl.LightningModule, pl.LightningDataModule, subclass_mode_model=True,
                         subclass_mode_data=True, save_config_callback=SaveConfigWhenLogging,
                         save_config_kwargs={"overwrite": True},
                         trainer_defaults=TRAINER_DEFAULTS, seed_everything_default=0,
                         args=args, run=run)


def main() -> None:
    """Entry point of the ``titans-seq`` console command."""
    build_cli()


if __name__ == "__main__":
    main()

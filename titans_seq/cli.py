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

Nothing is written unless asked: no logger and no checkpoints by default. ``--ckpt_path`` loads
with torch's safe loader (``weights_only=True`` unless given otherwise), and a missing,
corrupt or hostile file, or the checkpoint of another model, is refused with the file named.
``--trainer.logger=true`` gives a CSV logger under ``default_root_dir`` (TensorBoard with
``--trainer.logger=lightning.pytorch.loggers.TensorBoardLogger``), and the resolved config is
then saved beside the logs; ``--trainer.enable_checkpointing=true`` writes checkpoints.
"""

from __future__ import annotations

import importlib
import inspect
import os
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger

from .training import quiet_lightning, read_checkpoint

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

    def _parse_ckpt_path(self) -> None:
        """Before Lightning reads the hyper-parameters of ``--ckpt_path`` into the config:
        load checkpoints safely by default, and refuse one that is missing, unreadable or of
        another model, naming the file."""
        config = self.config.get(self.config.get("subcommand") or "", None)
        if config is not None:
            if config.get("weights_only") is None:
                config["weights_only"] = True
            path = config.get("ckpt_path")
            if path is not None and path not in ("last", "best", "hpc", "registry"):
                _check_model_checkpoint(path, config.get("model"))
        super()._parse_ckpt_path()


def _check_model_checkpoint(path: str, model: Any) -> None:
    """``path`` must be a checkpoint the config's model (``class_path``) can take: its saved
    hyper-parameters are arguments of that class."""
    checkpoint = read_checkpoint(path)
    class_path = getattr(model, "class_path", None) or (model or {}).get("class_path")
    if not class_path:
        return
    module, _, name = class_path.rpartition(".")
    model_class = getattr(importlib.import_module(module), name)
    accepted = set(inspect.signature(model_class.__init__).parameters) - {"self"}
    saved = set(checkpoint.get("hyper_parameters") or {}) - {"_instantiator", "_class_path"}
    if saved - accepted:
        raise ValueError(f"{path} is not a checkpoint of {name}: it was saved with "
                         f"{sorted(saved)}, which {name} does not take; pass a checkpoint "
                         "written with this config")


def _check_config_files(args: list[str]) -> None:
    """Each ``--config`` file exists and is YAML, or a ValueError names it (with the line),
    before the parser prints its whole usage around a message without the file's name."""
    import yaml

    paths = [value for flag, value in zip(args, args[1:]) if flag in ("--config", "-c")]
    paths += [arg.split("=", 1)[1] for arg in args if arg.startswith("--config=")]
    for path in paths:
        if not Path(path).is_file():
            continue  # the parser also takes a config given inline
        try:
            yaml.safe_load(Path(path).read_text())
        except (yaml.YAMLError, UnicodeDecodeError) as error:
            where = getattr(error, "problem_mark", None)
            line = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
            problem = getattr(error, "problem", None) or type(error).__name__
            raise ValueError(f"config {path} is not valid YAML{line}: {problem}") from None


def build_cli(args: list[str] | None = None, run: bool = True) -> TitansCLI:
    """Parse ``args`` (default ``sys.argv``) and, with ``run``, run the subcommand; the CLI
    object holds the model, datamodule and Trainer afterwards."""
    import sys

    _check_config_files(list(sys.argv[1:] if args is None else args))
    with quiet_lightning():
        return TitansCLI(pl.LightningModule, pl.LightningDataModule, subclass_mode_model=True,
                         subclass_mode_data=True, save_config_callback=SaveConfigWhenLogging,
                         save_config_kwargs={"overwrite": True},
                         trainer_defaults=TRAINER_DEFAULTS, seed_everything_default=0,
                         args=args, run=run)


def main() -> None:
    """Entry point of the ``titans-seq`` console command: a bad config file or checkpoint
    ends with one line naming it (exit status 2), not a traceback."""
    import sys

    try:
        build_cli()
    except ValueError as error:
        print(f"titans-seq: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()

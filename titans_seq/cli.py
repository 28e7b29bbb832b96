"""``titans-seq``: the Lightning command line for every titans_seq model and datamodule.

    titans-seq fit --config configs/forecast_etth1.yaml
    titans-seq fit --config configs/forecast_etth1.yaml --data.init_args.horizon=336
    titans-seq test --config configs/dna_promoters.yaml --ckpt_path runs/last.ckpt
    titans-seq predict --config configs/forecast_etth2_online.yaml \\
        --ckpt_path runs/etth2_online/best.ckpt --output forecasts.csv
    titans-seq fit --config configs/dna_promoters.yaml --print_config   # the complete config

A config names a LightningModule (``model.class_path``: ``titans_seq.ForecastingModule``,
``titans_seq.ClassificationModule`` or ``titans_seq.PretrainingModule``) and a datamodule
(``data.class_path``: ``datamodules.TimeSeriesDataModule`` or ``datamodules.DNADataModule``);
every ``__init__`` argument of both, and every Trainer flag, can be set in YAML or as
``--model.init_args.dim=128``. ``titans-seq --help`` lists them with the example configs.

Settings the model shares with the data are set once, on the datamodule. The models take the
data's shapes from it (``n_channels`` / ``n_classes`` left unset), and a forecasting model's
layout (``mode``, ``lookback``, ``horizon``, ``warmup``, ``linear_lookback``, ``patch_len``,
``segment_tokens``) is linked to the datamodule's (jsonargparse's ``link_arguments``:
``--data.init_args.horizon=336`` reaches ``model.config.layout.horizon``); setting it on the
model as well is refused, as is a checkpoint trained with another layout.

``titans-seq predict`` forecasts the ``horizon`` rows after the end of each series (or
classifies the sequences of ``--data.init_args.predict=FILE``) and returns the predictions;
``--output FILE`` also writes them to a ``.csv``, ``.csv.gz`` or ``.parquet`` table in the
data's own terms: forecasts in the data's units with their series ids, ``cutoff`` and
timestamps; sequence ids, predicted labels and class probabilities (see
:mod:`titans_seq.writers`). It adds a :class:`~titans_seq.writers.PredictionWriter`, which a
config may also list among ``trainer.callbacks``. Under DDP the rows of every process are
gathered and rank 0 writes the one file.

Nothing else is written unless asked: no logger and no checkpoints by default. ``--ckpt_path``
loads with torch's safe loader (``weights_only=True`` unless given otherwise), and a missing,
corrupt or hostile file, or the checkpoint of another model, is refused with the file named.
``--trainer.logger=true`` gives a CSV logger under ``default_root_dir`` (TensorBoard with
``--trainer.logger=lightning.pytorch.loggers.TensorBoardLogger``), and the resolved config is
then saved beside the logs; ``--trainer.enable_checkpointing=true`` writes checkpoints.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import warnings
from argparse import RawDescriptionHelpFormatter
from dataclasses import fields
from pathlib import Path
from typing import Any, Optional

import lightning.pytorch as pl
from jsonargparse import DefaultHelpFormatter, Namespace
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger

from datamodules.timeseries import ForecastLayout

from .training import quiet_lightning, read_checkpoint
from .writers import PredictionWriter

TRAINER_DEFAULTS = {"logger": False, "enable_checkpointing": False}

# The forecasting layout: fields of TimeSeriesDataModule linked into ForecastingModule's
# config. jsonargparse holds an optional dataclass argument as a class of its own, so the
# link's target names the config's init_args.
LAYOUT = tuple(field.name for field in fields(ForecastLayout))
MODEL_LAYOUT = "model.init_args.config.init_args.layout"
# A model layout given on the command line (--model.init_args.config.layout.horizon=…).
_MODEL_LAYOUT_FLAG = re.compile(r"--model\.(?:init_args\.)?config\.(?:init_args\.)?layout"
                                r"(?:\.(\w+))?(?:=|$)")

DESCRIPTION = "Train, evaluate and predict with the Titans models of titans_seq."
EPILOG = """\
models (model.class_path) and the datamodules they read (data.class_path):
  forecasting      titans_seq.ForecastingModule     datamodules.TimeSeriesDataModule
  DNA classes      titans_seq.ClassificationModule  datamodules.DNADataModule
  DNA pre-training titans_seq.PretrainingModule     datamodules.DNADataModule (labelled: false)
  A class's arguments: titans-seq fit --model.help titans_seq.ForecastingModule
  A forecasting model takes its layout (mode, lookback, horizon, warmup, linear_lookback,
  patch_len, segment_tokens) from the datamodule: set them under data only.

example configs (the configs/ folder of the source tree):
  forecast_etth1.yaml         ETTh1, horizon 96, long memory over the whole history
  forecast_etth1_window.yaml  ETTh1, horizon 96, fixed 96-row windows (the ablation)
  forecast_etth2_online.yaml  ETTh2, online protocol: learns from its errors as rows arrive
  dna_promoters.yaml          human non-TATA promoters, k-mer branch + Titans encoder
  dna_promoters_gpu.yaml      the same at GPU size (bf16)
  dna_pretrain.yaml           next-base pre-training of the classifier's trunk, no labels
  dna_pretrain_gpu.yaml       the same at GPU size (bf16)
  fsdp.yaml                   FSDP over 4 GPUs, added after a model config

examples:
  titans-seq fit --config configs/forecast_etth1.yaml
  titans-seq fit --config configs/forecast_etth1.yaml --data.init_args.horizon=336
  titans-seq fit --config configs/forecast_etth2_online.yaml
  titans-seq test --config configs/forecast_etth2_online.yaml \\
      --ckpt_path runs/etth2_online/best.ckpt
  titans-seq predict --config configs/forecast_etth2_online.yaml \\
      --ckpt_path runs/etth2_online/best.ckpt --output forecasts.csv
  titans-seq predict --config configs/dna_promoters.yaml --ckpt_path PATH.ckpt \\
      --data.init_args.predict=sequences.fa --output classes.parquet
  titans-seq fit --config configs/dna_promoters.yaml --print_config > my.yaml
"""
SUBCOMMANDS = {
    "fit": "Train a model on the datamodule's training part, validating on its validation\n"
           "part.",
    "validate": "Evaluate a model on the datamodule's validation part.",
    "test": "Evaluate a model on the datamodule's test part.",
    "predict": "Predict: forecast the horizon after the end of each series, or classify the\n"
               "datamodule's predict sequences; --output FILE writes them as a table."}


class HelpFormatter(RawDescriptionHelpFormatter, DefaultHelpFormatter):
    """jsonargparse's help, with the description and the epilog printed as written."""


class SaveConfigWhenLogging(SaveConfigCallback):
    """Save the resolved config beside the logs, and only when there are logs."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if trainer.logger is not None:
            super().setup(trainer, pl_module, stage)


class TitansCLI(LightningCLI):
    """:class:`LightningCLI` with quiet defaults, CSV as the logger that ``logger=true`` asks
    for, the forecasting layout linked from the datamodule to the model, and ``predict
    --output FILE``."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # Only where both sides have them (a forecasting model and datamodule): jsonargparse
        # skips a link whose source or target the chosen classes lack.
        for name in LAYOUT:
            parser.link_arguments(f"data.init_args.{name}", f"{MODEL_LAYOUT}.{name}")

    def _prepare_subcommand_parser(self, klass: type, subcommand: str,
                                   **kwargs: Any) -> LightningArgumentParser:
        parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
        if subcommand == "predict":  # not an argument of Trainer.predict: kept from it
            parser.add_argument("--output", type=Optional[str], default=None,
                                help="Write the predictions to this .csv, .csv.gz or .parquet "
                                     "file (titans_seq.writers.PredictionWriter).")
        return parser

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else self.config
        if _links_layout(config) and config["model.init_args.config"] is None:
            # jsonargparse links only into a value that exists: a forecasting model left with
            # its default config (None) gets it spelled out, and the link is applied again.
            given = {"model": {"init_args": {"config": {}}}}
            self.config = parser.parse_object({subcommand: given} if subcommand else given,
                                              self.config)

    def instantiate_trainer(self, **kwargs) -> pl.Trainer:
        config = self.config_init[self.subcommand] if self.subcommand else self.config_init
        trainer_config = config["trainer"]
        if trainer_config.get("logger") is True:
            trainer_config["logger"] = CSVLogger(
                save_dir=trainer_config.get("default_root_dir") or os.getcwd())
        if self.subcommand == "predict" and config.get("output") is not None:
            callbacks = trainer_config.get("callbacks") or []
            callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
            trainer_config["callbacks"] = [*callbacks, PredictionWriter(config["output"])]
        return super().instantiate_trainer(**kwargs)

    def _parse_ckpt_path(self) -> None:
        """Before Lightning reads the hyper-parameters of ``--ckpt_path`` into the config:
        load checkpoints safely by default, and refuse one that is missing, unreadable, of
        another model or of another layout than the datamodule's, naming the file."""
        config = self.config.get(self.config.get("subcommand") or "", None)
        if config is not None:
            if config.get("weights_only") is None:
                config["weights_only"] = True
            path = config.get("ckpt_path")
            if path is not None and path not in ("last", "best", "hpc", "registry"):
                checkpoint = read_checkpoint(path)
                _check_model_checkpoint(path, checkpoint, config.get("model"))
                if _links_layout(config):
                    _check_checkpoint_layout(path, checkpoint, config["data.init_args"])
        super()._parse_ckpt_path()


def _links_layout(config: Namespace) -> bool:
    """Whether the parsed ``config`` pairs a model with a forecasting ``config`` and a
    datamodule with the layout's fields: where the layout links apply."""
    model, data = config.get("model"), config.get("data")
    return isinstance(model, Namespace) and isinstance(data, Namespace) \
        and "init_args.config" in model \
        and all(f"init_args.{name}" in data for name in LAYOUT)


def _check_model_checkpoint(path: str, checkpoint: dict, model: Any) -> None:
    """``checkpoint`` (of file ``path``) must be one the config's model (``class_path``) can
    take: its saved hyper-parameters are arguments of that class."""
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


def _check_checkpoint_layout(path: str, checkpoint: dict, data: Namespace) -> None:
    """A forecasting checkpoint's layout must be the datamodule's (the model takes the
    datamodule's through the links, so a difference would go unnoticed until the weights
    fail to load, or load into a network that reads the data otherwise)."""
    saved = ((checkpoint.get("hyper_parameters") or {}).get("config") or {}).get("layout")
    if not isinstance(saved, dict):
        return
    mismatch = ForecastLayout.coerce(saved).mismatch(
        ForecastLayout(**{name: data[name] for name in LAYOUT}))
    if mismatch:
        name, trained, given = mismatch
        raise ValueError(f"{path} was trained with {name}={trained!r}, the datamodule has "
                         f"{name}={given!r}; set --data.init_args.{name}={trained}")


def _check_args(args: list[str]) -> None:
    """Before the parser, which would print its whole usage around a message that does not
    name the file: each ``--config`` file exists and is YAML (or a ValueError names it, with
    the line), and neither a file nor a flag sets the model's layout, which is linked to the
    datamodule's (jsonargparse would silently replace it)."""
    import yaml

    for arg in args:
        match = _MODEL_LAYOUT_FLAG.match(arg)
        if match:
            _refuse_model_layout(arg.split("=", 1)[0], match.group(1))
    paths = [value for flag, value in zip(args, args[1:]) if flag in ("--config", "-c")]
    paths += [arg.split("=", 1)[1] for arg in args if arg.startswith("--config=")]
    for path in paths:
        if not Path(path).is_file():
            continue  # the parser also takes a config given inline
        try:
            document = yaml.safe_load(Path(path).read_text())
        except (yaml.YAMLError, UnicodeDecodeError) as error:
            where = getattr(error, "problem_mark", None)
            line = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
            problem = getattr(error, "problem", None) or type(error).__name__
            raise ValueError(f"config {path} is not valid YAML{line}: {problem}") from None
        layout = _model_layout(document)
        if layout is not None:
            name = next(iter(layout), None) if isinstance(layout, dict) else None
            _refuse_model_layout(f"config {path} (model: config: layout:)", name)


def _model_layout(document: Any) -> Any:
    """The model's ``config.layout`` in a config file's contents (None where it has none)."""
    model = document.get("model") if isinstance(document, dict) else None
    model = model.get("init_args", model) if isinstance(model, dict) else None
    config = model.get("config") if isinstance(model, dict) else None
    return config.get("layout") if isinstance(config, dict) else None


def _refuse_model_layout(where: str, name: str | None) -> None:
    setting = name if name in LAYOUT else "horizon"
    raise ValueError(f"{where} sets the model's layout, which the model takes from the "
                     f"datamodule: set it there, once (data: init_args: {setting}:, or "
                     f"--data.init_args.{setting}=…)")


def build_cli(args: list[str] | None = None, run: bool = True) -> TitansCLI:
    """Parse ``args`` (default ``sys.argv``) and, with ``run``, run the subcommand; the CLI
    object holds the model, datamodule and Trainer afterwards."""
    import sys

    _check_args(list(sys.argv[1:] if args is None else args))
    help_text = {"description": DESCRIPTION, "epilog": EPILOG,
                 "formatter_class": HelpFormatter}
    parser_kwargs = {**help_text, **{name: {**help_text, "description": description}
                                     for name, description in SUBCOMMANDS.items()}}
    with quiet_lightning(), warnings.catch_warnings():
        # A forecast's series and origin travel in its batch (PredictionWriter reads them):
        # the whole-series loaders have no batch indices to infer, and need none.
        warnings.filterwarnings("ignore", message="Couldn't infer the batch indices")
        return TitansCLI(pl.LightningModule, pl.LightningDataModule, subclass_mode_model=True,
                         subclass_mode_data=True, save_config_callback=SaveConfigWhenLogging,
                         save_config_kwargs={"overwrite": True},
                         trainer_defaults=TRAINER_DEFAULTS, seed_everything_default=0,
                         parser_kwargs=parser_kwargs, args=args, run=run)


def main() -> None:
    """Entry point of the ``titans-seq`` console command: a bad config file, checkpoint or
    output file ends with one line naming it (exit status 2), not a traceback."""
    import sys

    try:
        build_cli()
    except ValueError as error:
        print(f"titans-seq: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()

"""A quiet Lightning fit for the estimators: no files written, best validation weights kept."""

from __future__ import annotations

import contextlib
import copy
import logging
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Callable, TypeVar

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset


class KeepBestWeights(pl.Callback):
    """Remember the weights of the best validation epoch in memory (no checkpoint file), stop
    after ``patience`` epochs without improvement, and restore the best weights at the end.
    ``mode="max"`` for a metric where higher is better (accuracy)."""

    def __init__(self, monitor: str, patience: int, mode: str = "min") -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.monitor, self.patience, self.mode = monitor, patience, mode
        self.best, self.best_weights, self.stale = float("inf"), None, 0

    def on_validation_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        value = float(trainer.callback_metrics[self.monitor])
        if self.mode == "max":
            value = -value  # best is the smallest, either way
        if value < self.best:
            self.best, self.stale = value, 0
            self.best_weights = copy.deepcopy(module.state_dict())
        else:
            self.stale += 1
            if self.patience and self.stale >= self.patience:
                trainer.should_stop = True

    def on_fit_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if self.best_weights is not None:
            module.load_state_dict(self.best_weights)

    def state_dict(self) -> dict:
        """Saved in checkpoints, so a resumed run keeps the best epoch seen before."""
        return {"best": self.best, "stale": self.stale, "best_weights": self.best_weights}

    def load_state_dict(self, state_dict: dict) -> None:
        self.best, self.stale = state_dict["best"], state_dict["stale"]
        self.best_weights = state_dict["best_weights"]


def trainer_datamodule(module: pl.LightningModule, attribute: str, fix: str):
    """The datamodule the module's Trainer runs with, if it has ``attribute``; else a
    ``ValueError`` ending in ``fix``."""
    data = module.trainer.datamodule if module._trainer is not None else None
    if data is None or not hasattr(data, attribute):
        raise ValueError(f"{attribute} is None: {fix}")
    return data


def adopt_shapes(module: pl.LightningModule, shapes: dict) -> None:
    """Record shapes taken from the data as hyper-parameters: in checkpoints (so
    ``load_from_checkpoint`` rebuilds the same network) and in what loggers merge with the
    datamodule's hyper-parameters."""
    module.hparams.update(shapes)
    module._hparams_initial.update(shapes)


class RandomStateInCheckpoints:
    """LightningModule mixin: the torch random state (dropout masks) travels in checkpoints,
    so a run resumed at an epoch boundary draws what the uninterrupted run drew."""

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["torch_rng_state"] = torch.get_rng_state()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            checkpoint["cuda_rng_states"] = torch.cuda.get_rng_state_all()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "torch_rng_state" in checkpoint:
            torch.set_rng_state(checkpoint["torch_rng_state"].cpu())
        states = checkpoint.get("cuda_rng_states")
        if states is not None and torch.cuda.is_available() \
                and len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([state.cpu() for state in states])


@contextlib.contextmanager
def quiet_lightning():
    """Silence Lightning's informational logging and hints (progress bars stay as asked)."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric",
                                                      "lightning")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        for logger in loggers:
            logger.setLevel(logging.WARNING)
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*litlogger.*")
        # mode="stream" loaders are IterableDatasets with a length, read by one process
        warnings.filterwarnings("ignore", message=".*IterableDataset` has `__len__` defined.*")
        # Estimators hold nothing out when the data are too small to; that is documented.
        warnings.filterwarnings("ignore", message=".*validation_step` but have no `val_data.*")
        # Lightning's CLI still passes jsonargparse's deprecated skip_none when saving configs.
        warnings.filterwarnings("ignore", message="(?s).*skip_none parameter was deprecated")
        warnings.filterwarnings("ignore", message="(?s).*was deprecated in v4.49.0 and will be "
                                "removed in v5")  # jsonargparse, as Lightning's CLI calls it
        warnings.filterwarnings("ignore", message="(?s).*only one JsonargparseDeprecationWarning")
        warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)


def train_module(module: pl.LightningModule, train: Dataset, val: Dataset | None, *,
                 max_epochs: int, batch_size: int, patience: int, verbose: bool,
                 seed: int | None, trainer_kwargs: dict, monitor: str = "val_mse",
                 mode: str = "min", collate_fn: Callable | None = None) -> None:
    """Fit ``module`` on ``train`` with early stopping on ``val`` (if it has items): the best
    validation weights by ``monitor`` (lower is better; higher with ``mode="max"``) are
    kept."""
    generator = torch.Generator()
    generator.manual_seed(seed if seed is not None else int(torch.randint(2**31, ()).item()))
    has_val = val is not None and len(val) > 0
    if getattr(train, "items_are_batches", False):
        # Items are whole batches, in the order a recurrent model must read them.
        train_loader = DataLoader(train, batch_size=None)
        val_loader = DataLoader(val, batch_size=None) if has_val else None
    else:
        train_loader = DataLoader(train, batch_size=batch_size, shuffle=True,
                                  generator=generator, collate_fn=collate_fn)
        val_loader = (DataLoader(val, batch_size=max(256, batch_size), collate_fn=collate_fn)
                      if has_val else None)
    callbacks = [KeepBestWeights(monitor, patience, mode)] if has_val else []
    options = dict(max_epochs=max_epochs, logger=False, enable_checkpointing=False,
                   enable_model_summary=False, enable_progress_bar=verbose,
                   num_sanity_val_steps=0, callbacks=callbacks)
    options.update(trainer_kwargs)
    with quiet_lightning(), warnings.catch_warnings():
        # A part frozen for a later stage of training (the classifier's k-mer branch) stays
        # in eval mode on purpose.
        warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode at the start")
        trainer = pl.Trainer(**options)
        trainer.fit(module, train_loader, val_loader)


Module = TypeVar("Module", bound=pl.LightningModule)
# what a missing, truncated, corrupt or hostile file raises inside torch and Lightning
_LOAD_ERRORS = (pickle.UnpicklingError, RuntimeError, EOFError, KeyError, TypeError, ValueError,
                AttributeError, IndexError, OSError, zipfile.BadZipFile)


def read_checkpoint(path: "str | Path") -> dict:
    """A checkpoint file's contents, read on the CPU with torch's safe loader; a missing,
    corrupt or hostile file raises ``ValueError`` naming it."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {str(path)!r} is not a file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except _LOAD_ERRORS as error:
        raise ValueError(f"{path} is not a checkpoint that can be loaded safely "
                         f"({_reason(error)})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ValueError(f"{path} is not a Lightning checkpoint (no state_dict)")
    return checkpoint


def _reason(error: BaseException) -> str:
    """What went wrong loading a file, in one line (never torch's advice to unpickle)."""
    if isinstance(error, pickle.UnpicklingError):
        return "it holds objects other than tensors and plain values, which titans-seq never " \
               "unpickles"
    message = str(error).splitlines()[0][:200] if str(error) else ""
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def load_module_checkpoint(module_class: type[Module], path: "str | Path") -> Module:
    """``module_class.load_from_checkpoint(path)`` on the CPU with torch's safe loader
    (``weights_only=True``: tensors and plain values only, so a file's pickle payload never
    runs, whatever torch's default). A missing, corrupt or hostile file, or the checkpoint of
    another module, raises ``ValueError`` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{str(path)!r} is not a file; pass the path of a checkpoint written "
                         f"by `titans-seq fit` (a {module_class.__name__})")
    try:
        return module_class.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    except _LOAD_ERRORS as error:
        raise ValueError(f"{path} is not a {module_class.__name__} checkpoint that can be "
                         f"loaded safely ({_reason(error)}); pass a checkpoint written by "
                         f"`titans-seq fit` with that model") from None

"""`TitansEstimator`: what every titans_seq estimator shares, and nothing more.

- the training parameters (``max_epochs``, ``batch_size``, ``lr``, ``patience``,
  ``val_fraction``, ``random_state``, ``verbose``, ``accelerator``, ``devices``,
  ``trainer_kwargs``) and their checks;
- one way to seed: ``random_state`` is None, an integral number or a numpy ``RandomState``,
  and the caller's torch random state is left as it was;
- training through Lightning (:func:`~titans_seq.training.train_module`), then dropping the
  Trainer, and committing the fitted state only once everything has succeeded: a failed
  ``fit`` leaves the estimator exactly as it was (unfitted, or with its previous fit);
- pickling: a fitted estimator loads on a CPU-only machine;
- :meth:`~TitansEstimator.save` / :meth:`~TitansEstimator.load` without pickle (weights in
  safetensors, the rest in JSON; :mod:`titans_seq.persistence`).
"""

from __future__ import annotations

import copy
import inspect
from pathlib import Path
from typing import Any, Callable, TypeVar

import lightning.pytorch as pl
import torch
from sklearn.base import BaseEstimator
from torch.utils.data import Dataset

from datamodules.checks import InvalidParameterError, boolean, fraction, integer, real, seed_from

from .devices import check_device, placed_device, training_devices
from .persistence import load_estimator, save_estimator
from .training import train_module

Estimator = TypeVar("Estimator", bound="FittedEstimator")

_TRAINER_ARGUMENTS = tuple(inspect.signature(pl.Trainer.__init__).parameters)[1:]


class FittedEstimator(BaseEstimator):
    """What every titans_seq estimator (the baselines included) shares: the fitted state
    committed at once, and :meth:`save` / :meth:`load` without pickle."""

    def _commit(self, fitted: dict[str, Any]) -> None:
        """Replace the fitted state (attributes ending in ``_``) by ``fitted``, at once."""
        for name in [name for name in vars(self) if name.endswith("_")
                     and not name.startswith("_")]:
            delattr(self, name)
        self.__dict__.update(fitted)

    def save(self, path: "str | Path") -> Path:
        """Write this estimator, fitted or not, to the directory ``path``: every tensor in
        ``tensors.safetensors``, the parameters and the rest of the fitted state in
        ``estimator.json``, with the format's version. Returns the directory."""
        return save_estimator(self, path)

    @classmethod
    def load(cls: type[Estimator], path: "str | Path") -> Estimator:
        """The estimator :meth:`save` wrote to ``path``, as it was (on the CPU). Reads JSON
        and safetensors only (no pickle); a file of another format version, of another
        estimator class, or damaged, raises ``ValueError`` saying which."""
        return load_estimator(cls, path)


class TitansEstimator(FittedEstimator):
    """Base of :class:`~titans_seq.TitansForecaster` and :class:`~titans_seq.TitansClassifier`
    (subclasses store their ``__init__`` arguments and read top-down from ``fit``)."""

    def _check_training_params(self) -> dict[str, Any]:
        """The shared training parameters, checked, as plain Python values (a numpy integer
        from a parameter grid becomes an ``int``)."""
        if self.trainer_kwargs is not None and (
                not isinstance(self.trainer_kwargs, dict)
                or not all(isinstance(key, str) for key in self.trainer_kwargs)):
            raise InvalidParameterError(f"trainer_kwargs must be None or a dict of Trainer "
                                        f"arguments, got {self.trainer_kwargs!r}")
        unknown = sorted(set(self.trainer_kwargs or {}) - set(_TRAINER_ARGUMENTS))
        if unknown:
            raise InvalidParameterError(f"trainer_kwargs has {unknown}, which the Lightning "
                                        "Trainer does not take; see lightning.pytorch.Trainer "
                                        "for its arguments")
        if not isinstance(self.accelerator, str):
            raise InvalidParameterError(f"accelerator must be a str ('auto', 'cpu', 'gpu', …), "
                                        f"got {self.accelerator!r}")
        devices = self.devices if isinstance(self.devices, str) \
            else integer("devices", self.devices, hint="or a str such as 'auto'")
        device = check_device(getattr(self, "device", "auto"))
        accelerator, devices, trained_on = training_devices(device, self.accelerator, devices,
                                                            self.trainer_kwargs)
        rules = {"max_epochs": lambda v: integer("max_epochs", v),
                 "batch_size": lambda v: integer("batch_size", v),
                 "lr": lambda v: real("lr", v, 0.0, low_open=True),
                 "patience": lambda v: integer("patience", v, 0, hint="0: never stop early"),
                 "val_fraction": lambda v: fraction("val_fraction", v),
                 "verbose": lambda v: boolean("verbose", v)}
        # each estimator has the training parameters it needs (a detector has no batches)
        checked = {name: rule(getattr(self, name)) for name, rule in rules.items()
                   if name in self.get_params(deep=False)}
        checked.setdefault("batch_size", 1)
        checked.setdefault("patience", 0)
        return {**checked, "seed": seed_from(self.random_state), "devices": devices,
                "accelerator": accelerator,
                # where the fitted model runs: the device named, else the one it trains on
                "device": trained_on if device == "auto" else device}

    def _fit_module(self, build: Callable[[], pl.LightningModule], train: Dataset,
                    val: Dataset | None, training: dict[str, Any], *, monitor: str,
                    mode: str = "min", trainer_defaults: dict | None = None,
                    collate_fn: Callable | None = None) -> pl.LightningModule:
        """Build a module (seeded) and train it; returns it on the CPU, in eval mode, without
        its Trainer. ``trainer_kwargs`` override ``trainer_defaults``. ``build`` may return a
        module trained before (a later stage of its training)."""
        seed = training["seed"]
        # The caller's random state (CPU and every visible GPU) is left as it was.
        with torch.random.fork_rng(devices=range(torch.cuda.device_count())):
            if seed is not None:
                torch.manual_seed(seed)
            module = build()
            train_module(module, train, val, max_epochs=training["max_epochs"],
                         batch_size=training["batch_size"], patience=training["patience"],
                         verbose=training["verbose"], seed=seed,
                         trainer_kwargs={"accelerator": training["accelerator"],
                                         "devices": training["devices"],
                                         **(trainer_defaults or {}),
                                         **(self.trainer_kwargs or {})},
                         monitor=monitor, mode=mode, collate_fn=collate_fn)
        module.trainer = None  # let the Trainer and its data loaders go
        return module.cpu().eval()

    def _placed(self) -> torch.device:
        """The device the fitted model runs on (:func:`~titans_seq.devices.placed_device`),
        with the model moved there (and what :meth:`_move_state` moves)."""
        target = placed_device(getattr(self, "device_", "cpu"))
        if self.module_.device != target:
            self.module_.to(target)
            self._move_state(target)
        return target

    def _move_state(self, device: torch.device) -> None:
        """Move fitted tensors other than the model to ``device`` (none here)."""

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        if "module_" in state:
            module = copy.deepcopy(state["module_"]).cpu()
            module._trainer = None
            state["module_"] = module
        return state

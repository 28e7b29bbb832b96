"""From a checkpoint of ``titans-seq fit`` to a :class:`~titans_seq.TitansForecaster`: the
estimator's parameters that a module's config describes, the datamodule whose series it
reads, and the checks that the two belong together."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from datamodules.timeseries import (ForecastLayout, TimeSeriesDataModule, align_covariates,
                                    read_series)

from .config import ForecastConfig


def params_of(config: ForecastConfig) -> dict[str, Any]:
    """The estimator's parameters for the settings of ``config`` (the inverse of
    :meth:`~titans_seq.TitansForecaster.config` where the estimator has a parameter)."""
    layout, encoder = config.layout, config.encoder
    return dict(horizon=layout.horizon, mode=layout.mode, lookback=layout.lookback,
                linear_lookback=layout.linear_lookback if layout.mode == "stream" else None,
                segment_tokens=layout.segment_tokens, warmup=layout.warmup,
                patch_len=layout.patch_len, head_hidden=config.head_hidden,
                variant=encoder.variant, dim=encoder.dim, depth=encoder.depth,
                memory_depth=encoder.memory_depth, chunk_size=encoder.chunk_size,
                dropout=encoder.dropout, channel_mode=config.channel_mode, loss=config.loss,
                quantiles=tuple(config.quantiles), lr=config.lr,
                learn_errors=config.learn_errors)


def params_of_data(data: Any) -> dict[str, Any]:
    """The estimator's reading parameters of a datamodule (none for other data)."""
    if not isinstance(data, TimeSeriesDataModule):
        return {}
    return dict(target=data.target, time_col=data.time_col, id_col=data.id_col,
                static_covariates=data.static_covariates, missing=data.missing,
                calendar=list(data.calendar) or False, val_fraction=data.val_fraction,
                batch_size=data.batch_size)


def datamodule_for(layout: ForecastLayout, data: Any, X: Any, params: dict[str, Any]
                   ) -> TimeSeriesDataModule:
    """``data`` as a set-up datamodule laid out as ``layout``: a datamodule as given (its
    layout must be the checkpoint's), or a series read as ``fit`` reads it."""
    if isinstance(data, TimeSeriesDataModule):
        if X is not None:
            raise ValueError("X goes with a series; a TimeSeriesDataModule carries its own "
                             "covariates (future_covariates=…)")
        different = layout.mismatch(data.layout)
        if different is not None:
            name, mine, theirs = different
            raise ValueError(f"the checkpoint was trained with {name}={mine!r}, the "
                             f"datamodule has {name}={theirs!r}; build it as the checkpoint's "
                             "config did")
        if not data.prepared:
            data.setup("fit")
        return data
    series = read_series(data, **params["read_options"], name="data")
    if X is not None:
        future, names = align_covariates(series, X, 0)
        series = replace(series, future=future, future_names=names)
    module = TimeSeriesDataModule(series, **layout.to_dict(), calendar=params["calendar"],
                                  split="fractions", val_fraction=params["val_fraction"],
                                  test_fraction=0.0, batch_size=params["batch_size"])
    module.setup("fit")
    return module


def check_shapes(module: Any, data: TimeSeriesDataModule, checkpoint: Any) -> None:
    """The datamodule has the channels and covariates the checkpoint's network reads."""
    for name in ("n_channels", "n_covariates", "n_static"):
        trained, given = getattr(module.hparams, name), getattr(data, name)
        if trained != given:
            raise ValueError(f"{Path(str(checkpoint)).name} was trained on data with "
                             f"{name}={trained}; the data given has {given} (same targets, "
                             "covariates and calendar features as in training)")

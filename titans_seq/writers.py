"""`PredictionWriter`: what ``titans-seq predict --output FILE`` writes, a table in the data's
own terms.

- **Forecasts** (a :class:`~datamodules.TimeSeriesDataModule`): one row per series and
  forecast time: the series' id column (long tables; a wide table is one series, without
  one), ``cutoff`` (the last observed time), the time column (the data's name, ``ds`` when it
  has none; row positions for data without timestamps) and one column per target, in the
  data's units (the datamodule's scaler undone). Quantile models give ``{target}_q{level}``
  columns instead. ``predict`` forecasts the ``horizon`` rows after the end of each series.
- **Classes** (a labelled :class:`~datamodules.DNADataModule` and a
  :class:`~titans_seq.ClassificationModule`): one row per sequence: ``id`` (its record's
  name), ``label`` (the most probable class, named as the training labels are) and
  ``proba_{class}`` for every class.

The file is CSV (``.csv``, or gzipped ``.csv.gz``) or Parquet (``.parquet``), by its name.
Under DDP every process predicts its share of the series or sequences; the rows are gathered
on rank 0, which writes the one file (on its own machine's file system).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from datamodules import DNADataModule, TimeSeriesDataModule
from datamodules.timeseries import SeriesSet

from .forecasting.outputs import forecast_columns, to_container, window_times

SUFFIXES = (".csv", ".csv.gz", ".parquet")


def check_output(output: str | Path) -> Path:
    """``output`` as a path a table can be written to: a known suffix (:data:`SUFFIXES`) and
    an existing folder, or a ``ValueError`` naming what is wrong."""
    path = Path(output).expanduser()
    if not path.name.lower().endswith(SUFFIXES):
        raise ValueError(f"cannot write predictions to {str(path)!r}: the file name must end "
                         f"in {', '.join(SUFFIXES)}")
    if not path.parent.is_dir():
        raise ValueError(f"cannot write predictions to {str(path)!r}: its folder "
                         f"{str(path.parent)!r} does not exist")
    return path


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """``frame`` as CSV (gzipped for ``.gz``) or Parquet, by the name of ``path``."""
    if path.name.lower().endswith(".parquet"):
        to_container(frame, "polars").write_parquet(path)  # polars needs no pyarrow
    else:
        frame.to_csv(path, index=False)  # pandas infers the compression from the suffix


def forecast_table(data: TimeSeriesDataModule, forecasts: np.ndarray, series: np.ndarray,
                   origins: np.ndarray, levels: Sequence[float] | None = None
                   ) -> pd.DataFrame:
    """The rows of forecasts ``(B, H, C)`` or ``(B, H, C, Q)`` (``levels``), scaled as the
    model gives them, of series ``series[b]`` from origin ``origins[b]`` (the first forecast
    row), in the data's units."""
    source = data.read()
    frames = [_forecast_rows(data, source, forecast, int(index), int(origin), levels)
              for forecast, index, origin in zip(forecasts, series, origins)]
    return pd.concat(frames, ignore_index=True)


def _forecast_rows(data: TimeSeriesDataModule, source: SeriesSet, forecast: np.ndarray,
                   index: int, origin: int, levels: Sequence[float] | None) -> pd.DataFrame:
    """One forecast ``(H, C[, Q])`` of series ``index`` as rows keyed by id, cutoff, time."""
    horizon = forecast.shape[0]
    if levels:  # the scaler's statistics follow the targets (the last axis): levels first
        values = np.moveaxis(data.inverse_transform(np.moveaxis(forecast, -1, 0), index), 0, -1)
    else:
        values = data.inverse_transform(forecast, index)
    frame = pd.DataFrame(values.reshape(horizon, -1), columns=forecast_columns(source, levels))
    stamps, cutoffs = window_times(source, index, [origin], horizon)
    frame.insert(0, source.time_col or "ds", stamps)
    frame.insert(0, "cutoff", cutoffs)
    if source.layout == "long":
        frame.insert(0, source.id_col, [source.ids[index]] * horizon)
    return frame


def class_table(data: DNADataModule, probabilities: np.ndarray, indices: Sequence[int]
                ) -> pd.DataFrame:
    """The rows of class probabilities ``(B, n_classes)`` of the predict sequences
    ``indices``: id, most probable label, one probability column per class."""
    classes, dataset = data.classes_, data.datasets["predict"]
    frame = pd.DataFrame({"id": [dataset.name(int(i)) for i in indices],
                          "label": classes[probabilities.argmax(1)].tolist()})
    for column, name in enumerate(classes.tolist()):
        frame[f"proba_{name}"] = probabilities[:, column]
    return frame


class PredictionWriter(BasePredictionWriter):
    """Write what ``Trainer.predict`` predicts to ``output`` as one table (see the module's
    docstring for its columns), once prediction ends. The predictions are still returned.

    Parameters
    ----------
    output : str or Path
        A ``.csv``, ``.csv.gz`` or ``.parquet`` file in an existing folder (checked here, so a
        bad name is refused before anything runs); an existing file is replaced.

    ``titans-seq predict --output FILE`` adds one; in a config or on the command line it is a
    callback like any other (``--trainer.callbacks+=titans_seq.writers.PredictionWriter
    --trainer.callbacks.output=FILE``).
    """

    def __init__(self, output: str | Path) -> None:
        super().__init__(write_interval="batch")
        self.output = check_output(output)
        self._parts: list[tuple[np.ndarray, pd.DataFrame]] = []
        self._seen = 0  # sequences so far, where the loader does not say which it read

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if stage == "predict":
            _check_data(trainer.datamodule)

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._parts, self._seen = [], 0

    def write_on_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           prediction: Any, batch_indices: Sequence[int] | None, batch: Any,
                           batch_idx: int, dataloader_idx: int = 0) -> None:
        data, values = trainer.datamodule, prediction.detach().float().cpu().numpy()
        if isinstance(data, TimeSeriesDataModule):
            # the batch says where each forecast starts (ForecastOrigins)
            series = batch["series"].reshape(-1).cpu().numpy()
            origins = batch["origin"].reshape(-1).cpu().numpy()
            frame = forecast_table(data, values, series, origins,
                                   getattr(pl_module, "quantiles", None))
            horizon = values.shape[1]
            keys = np.stack([np.repeat(series, horizon), np.repeat(origins, horizon),
                             np.tile(np.arange(horizon), len(series))], 1)
        else:
            if not batch_indices and trainer.world_size > 1:
                raise ValueError("PredictionWriter needs the indices of each batch's "
                                 "sequences under DDP: predict from a DataLoader")
            indices = list(batch_indices) if batch_indices else \
                list(range(self._seen, self._seen + len(values)))
            self._seen += len(values)
            frame, keys = class_table(data, values, indices), np.asarray(indices)[:, None]
        self._parts.append((keys, frame))

    def on_predict_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        parts = _gathered(self._parts, trainer)
        self._parts = []
        if trainer.is_global_zero and parts:
            write_table(_in_order(parts), self.output)


def _check_data(data: Any) -> None:
    """The datamodule is one whose predictions the writer can place and name."""
    if isinstance(data, TimeSeriesDataModule):
        return
    if isinstance(data, DNADataModule):
        if not data.labelled:
            raise ValueError("PredictionWriter writes class predictions; this DNADataModule is "
                             "unlabelled (labelled=False, for pre-training) and has no classes")
        return
    raise ValueError("PredictionWriter writes the forecasts of a TimeSeriesDataModule or the "
                     "classes of a DNADataModule; the Trainer runs with "
                     f"{type(data).__name__ if data is not None else 'no datamodule'}")


def _gathered(parts: list, trainer: pl.Trainer) -> list:
    """Every process's parts, on rank 0 (the others get an empty list); one process: its
    own."""
    if trainer.world_size == 1 or not (torch.distributed.is_available()
                                       and torch.distributed.is_initialized()):
        return parts
    everyone = [None] * trainer.world_size if trainer.is_global_zero else None
    torch.distributed.gather_object(parts, everyone, dst=0)
    return [part for rank in everyone or [] for part in rank]


def _in_order(parts: list[tuple[np.ndarray, pd.DataFrame]]) -> pd.DataFrame:
    """The rows of every part in the order of their keys (series, origin, step; or sequence),
    each once: a distributed sampler may give a process an item twice to even out the
    shares."""
    keys = np.concatenate([key for key, _ in parts])
    frame = pd.concat([frame for _, frame in parts], ignore_index=True)
    _, first = np.unique(keys, axis=0, return_index=True)  # sorted by key
    return frame.iloc[first].reset_index(drop=True)

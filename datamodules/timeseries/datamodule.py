"""`TimeSeriesDataModule`: forecasting windows for Lightning from any supported input."""

from __future__ import annotations

from typing import Any, Literal, Sequence

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..checks import InvalidParameterError, boolean, choice, fraction, integer
from ..datasets import resolve_embedded
from ..loaders import RoleLoaders
from ..sampling import training_sampler
from .covariates import calendar_names
from .frames import Missing, SeriesSet, read_series
from .layout import ForecastLayout, Mode
from .parts import (PARTS, check_training_origins, forecast_datasets, head_rows,
                    online_test_dataset, predict_dataset)
from .preparation import SeriesScaler, prepare_series
from .windows import PreparedSeries, WindowDataset

Split = Literal["fractions", "borders", "ett-hour", "ett-minute"]
ETT_HOUR_BORDERS = (8640, 11520, 14400)  # 12, 4 and 4 months of hourly rows


def check_split(split: Split, val_fraction: float = 0.1, test_fraction: float = 0.2,
                borders: Sequence[int] | None = None) -> None:
    """The rules of :func:`split_borders`' options, without the data's length."""
    choice("split", split, ("fractions", "borders", "ett-hour", "ett-minute"))
    if split == "fractions":
        total = fraction("val_fraction", val_fraction) + fraction("test_fraction", test_fraction)
        if total >= 1:
            raise InvalidParameterError("val_fraction + test_fraction must leave rows for "
                                        "training")
    if split == "borders":
        if borders is None or isinstance(borders, (str, bytes)) or len(borders) != 3:
            raise InvalidParameterError("split='borders' needs borders=(train_end, val_end, "
                                        "test_end)")
        for index, border in enumerate(borders):
            integer(f"borders[{index}]", border)


def split_borders(length: int, split: Split, val_fraction: float = 0.1,
                  test_fraction: float = 0.2,
                  borders: Sequence[int] | None = None) -> tuple[int, int, int]:
    """``(train_end, val_end, test_end)`` row borders of a series of ``length`` rows.

    ``"fractions"``: in time order, ``test = int(length · test_fraction)``,
    ``train = int(length · (1 − val_fraction − test_fraction))``, validation the rest (the
    Time-Series-Library rule). ``"borders"``: given. ``"ett-hour"``/``"ett-minute"``: the
    standard ETT borders (8640, 11520, 14400), × 4 for 15-minute data.
    """
    check_split(split, val_fraction, test_fraction, borders)
    if split == "fractions":
        train = int(length * (1 - val_fraction - test_fraction))
        test = int(length * test_fraction)
        return train, length - test, length
    if split in ("ett-hour", "ett-minute"):
        borders = tuple(b * (4 if split == "ett-minute" else 1) for b in ETT_HOUR_BORDERS)
        if length < borders[-1]:
            raise ValueError(f"the {split} split needs {borders[-1]} rows, the data has {length}")
        return borders
    train, val, test = (int(b) for b in borders)
    if not 0 < train <= val <= test <= length:
        raise ValueError(f"borders must satisfy 0 < train_end <= val_end <= test_end <= "
                         f"{length} (rows of the data), got {tuple(borders)}")
    return train, val, test


class ForecastOrigins(Dataset):
    """A predict dataset (one item per series, in order: :func:`predict_dataset`) whose items
    also say which series they forecast and from which origin: ``series`` (its index) and
    ``origin`` (the row after its last one). A prediction writer places each forecast by
    them, whatever order a loader, or each process of several, reads the items in."""

    def __init__(self, dataset: Dataset, lengths: Sequence[int]) -> None:
        self.dataset, self.lengths = dataset, list(lengths)
        # a loader passes items through as they are when the dataset's items are batches
        self.items_are_batches = getattr(dataset, "items_are_batches", False)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {**self.dataset[index], "series": torch.tensor(index),
                "origin": torch.tensor(self.lengths[index])}


class TimeSeriesDataModule(RoleLoaders, pl.LightningDataModule):
    """Forecasting windows from pandas/polars tables (wide or long), arrays, CSV or Parquet.

    Parameters
    ----------
    data
        The series: anything :func:`~datamodules.timeseries.frames.read_series` reads, the
        name of an embedded dataset (``"etth1"``), or a :class:`SeriesSet` already read.
    mode, lookback, horizon, warmup, linear_lookback, patch_len, segment_tokens
        Which rows a forecast reads (the model's :class:`ForecastLayout`, which documents
        them): ``mode="stream"`` gives batches of :class:`~datamodules.timeseries.LaneSegments`
        (each channel of each series a lane read from its first row, segment after segment
        in time order, ``batch_size`` lanes at a time) for a model whose memory reads the
        whole history, every origin of a part scored with everything before it readable;
        ``mode="window"`` gives windows of ``warmup + lookback`` rows
        (:class:`~datamodules.timeseries.WindowDataset`). Origins without ``context`` rows
        before them are not used.
    target, time_col, id_col, future_covariates, static_covariates, missing
        How to read ``data`` (see ``read_series``).
    calendar : bool or list of str
        Calendar features from the timestamps, as future-known covariates (True: hour,
        day-of-week, day, month).
    split : {"fractions", "borders", "ett-hour", "ett-minute"}
        How each series is cut into train / validation / test rows, in time order.
        Validation and test windows read their input from earlier rows.
    scale : bool
        Standardise each series' columns with statistics of its training rows only. The
        statistics are saved with the module (``state_dict``, so in Lightning checkpoints).
    stride : int
        Step between training origins (validation and test use every origin).
    shuffle, seed
        Shuffle the training windows (or group the lanes) in an order that depends only on
        ``seed`` and the epoch (a resumed run repeats it).
    test_online : bool
        The test part as whole series, one batch each, with the first and last test origins
        (:class:`~datamodules.timeseries.parts.OnlineTestSeries`): a
        :class:`~titans_seq.ForecastingModule` then forecasts every test origin as the series
        arrive, learning from the realised errors of its forecasts once their rows are in
        (the online protocol). The same origins are scored either way.

    Attributes
    ----------
    layout : ForecastLayout
        The layout the model must share (its ``config.layout``).
    series : SeriesSet
        The data, once read.
    scaler : SeriesScaler
        The scaling statistics (fitted in ``setup``, or loaded from a checkpoint).
    prepared : list of PreparedSeries
        The scaled series the datasets read (after ``setup``).

    Notes
    -----
    The ``predict`` stage forecasts the ``horizon`` rows after the end of each series (the
    model has read the whole series in ``mode="stream"``, its last window in
    ``mode="window"``); its batches also hold ``series`` and ``origin``
    (:class:`ForecastOrigins`), which ``titans_seq.writers.PredictionWriter`` reads.
    """

    def __init__(self, data: Any = None, lookback: int = 96, horizon: int = 96,
                 warmup: int = 0, target: str | list[str] | None = None,
                 time_col: str | None = None, id_col: str | None = None,
                 future_covariates: list[str] | None = None, static_covariates: Any = None,
                 calendar: bool | list[str] = False, split: Split = "fractions",
                 val_fraction: float = 0.1, test_fraction: float = 0.2,
                 borders: list[int] | None = None, scale: bool = True,
                 missing: Missing = "error", stride: int = 1, batch_size: int = 32,
                 eval_batch_size: int | None = None, num_workers: int = 0,
                 shuffle: bool = True, seed: int = 0, mode: Mode = "stream",
                 linear_lookback: int = 720, patch_len: int = 16,
                 segment_tokens: int = 32, test_online: bool = False) -> None:
        super().__init__()
        self.layout = ForecastLayout(mode, lookback, horizon, warmup, linear_lookback,
                                     patch_len, segment_tokens)
        stride, batch_size = integer("stride", stride), integer("batch_size", batch_size)
        eval_batch_size = integer("eval_batch_size", eval_batch_size, optional=True)
        num_workers, seed = integer("num_workers", num_workers, 0), integer("seed", seed, 0)
        scale, shuffle = boolean("scale", scale), boolean("shuffle", shuffle)
        self.test_online = boolean("test_online", test_online)
        choice("missing", missing, ("error", "mask"))
        check_split(split, val_fraction, test_fraction, borders)
        self.data = data
        self.target, self.time_col, self.id_col = target, time_col, id_col
        self.future_covariates = list(future_covariates or [])
        self.static_covariates, self.missing = static_covariates, missing
        self.calendar = calendar_names(calendar)
        self.split, self.val_fraction, self.test_fraction = split, val_fraction, test_fraction
        self.borders, self.scale, self.stride = borders, scale, stride
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or batch_size
        self.num_workers, self.shuffle, self.seed = num_workers, shuffle, seed
        self.series: SeriesSet | None = None  # read once, by read()
        self.scaler: SeriesScaler | None = None
        self.prepared: list[PreparedSeries] = []
        self.datasets: dict[str, WindowDataset] = {}

    # -- reading ---------------------------------------------------------------------------
    def read(self) -> SeriesSet:
        """Read and check ``data`` once (also done by ``setup``)."""
        if self.series is None:
            if self.data is None:
                raise ValueError("TimeSeriesDataModule needs data=…")
            series = self.data if isinstance(self.data, SeriesSet) else read_series(
                resolve_embedded(self.data), target=self.target, time_col=self.time_col,
                id_col=self.id_col, future_covariates=self.future_covariates,
                static_covariates=self.static_covariates, missing=self.missing, name="data")
            if self.calendar and series.times is None:
                raise ValueError("calendar features need timestamps; the data has none")
            self.series = series
        return self.series

    @property
    def n_channels(self) -> int:
        return self.read().n_channels

    @property
    def n_covariates(self) -> int:
        return len(self.calendar) + len(self.read().future_names)

    @property
    def n_static(self) -> int:
        return len(self.read().static_names)

    def borders_of(self, length: int) -> tuple[int, int, int]:
        return split_borders(length, self.split, self.val_fraction, self.test_fraction,
                             self.borders)

    def series_until(self, part: Literal["train", "val", "test"]) -> list[PreparedSeries]:
        """Each prepared series up to the end of its ``part`` (after ``setup``): what a model
        may read to choose on validation (``"val"``), or to be tested (``"test"``)."""
        choice("part", part, PARTS)
        index = PARTS.index(part)
        return [head_rows(item, self.borders_of(int(item.values.shape[0]))[index])
                for item in self.prepared]

    # -- Lightning hooks ---------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        series = self.read()
        borders = [self.borders_of(length) for length in series.lengths]
        check_training_origins(borders, self.layout)  # before the scaler reads the rows
        if self.scaler is None:
            self.scaler = SeriesScaler.fit(series, [b[0] for b in borders], self.scale)
        elif self.scaler.mean.shape != (series.n_series, series.n_channels):
            raise ValueError("the loaded scaler statistics do not match the data: "
                             f"{self.scaler.mean.shape} vs {(series.n_series, series.n_channels)}")
        self.prepared = prepare_series(series, self.scaler, self.calendar)
        rank, world = 0, 1
        trainer = getattr(self, "trainer", None)
        if trainer is not None:  # DDP: each rank reads its own lanes
            rank, world = trainer.global_rank, trainer.world_size
        self.datasets = forecast_datasets(
            self.prepared, borders, self.layout, batch_size=self.batch_size,
            eval_batch_size=self.eval_batch_size, stride=self.stride, shuffle=self.shuffle,
            seed=self.seed, rank=rank, world_size=world)
        if self.test_online:
            self.datasets["test"] = online_test_dataset(self.prepared, borders, self.layout)
        if stage == "predict":
            if series.future_names:
                raise ValueError("forecasting past the end needs the future covariates' next "
                                 f"{self.layout.horizon} rows; use "
                                 "TitansForecaster.predict(X=…)")
            ahead = prepare_series(series, self.scaler, self.calendar,
                                   extra_rows=self.layout.horizon)
            self.datasets["predict"] = ForecastOrigins(
                predict_dataset(ahead, series.ids, series.lengths, self.layout),
                series.lengths)

    def _loader(self, name: str) -> DataLoader | list:
        dataset = self.datasets.get(name)
        if dataset is None or len(dataset) == 0:
            return []
        if getattr(dataset, "items_are_batches", False):
            # Items are whole batches already, in the order the memory must read them.
            return DataLoader(dataset, batch_size=None, num_workers=min(self.num_workers, 1))
        training = name == "train"
        # The order depends only on (seed, epoch): resuming from a checkpoint repeats it.
        sampler = training_sampler(dataset, self.shuffle, self.seed) if training else None
        batch_size = self.batch_size if training else self.eval_batch_size
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler,
                          num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    # -- scaler statistics travel with checkpoints ------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {} if self.scaler is None else {"scaler": self.scaler.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "scaler" in state_dict:
            self.scaler = SeriesScaler.from_state_dict(state_dict["scaler"])
            if self.datasets:
                # Lightning restores a checkpoint after setup(): rebuild the windows with the
                # checkpoint's statistics, not the ones just fitted on this data.
                stage = "predict" if "predict" in self.datasets else None
                self.datasets = {}
                self.setup(stage)

    def inverse_transform(self, values: np.ndarray, series: int | np.ndarray) -> np.ndarray:
        """Scaled model output ``(..., C)`` back to the data's units."""
        if self.scaler is None:
            raise ValueError("the scaler is fitted in setup(); call setup() first")
        return self.scaler.inverse_transform(values, series)

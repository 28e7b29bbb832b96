"""`TimeSeriesDataModule`: forecasting windows for Lightning from any supported input."""

from __future__ import annotations

from typing import Any, Literal, Sequence

import lightning.pytorch as pl
import numpy as np
from torch.utils.data import DataLoader

from ..datasets import resolve_embedded
from ..loaders import RoleLoaders
from ..sampling import training_sampler
from .covariates import calendar_names
from .frames import Missing, SeriesSet, read_series
from .preparation import SeriesScaler, prepare_series
from .streams import LaneSegments
from .windows import WindowDataset

Split = Literal["fractions", "borders", "ett-hour", "ett-minute"]
Mode = Literal["stream", "window"]
ETT_HOUR_BORDERS = (8640, 11520, 14400)  # 12, 4 and 4 months of hourly rows


def split_borders(length: int, split: Split, val_fraction: float = 0.1,
                  test_fraction: float = 0.2,
                  borders: Sequence[int] | None = None) -> tuple[int, int, int]:
    """``(train_end, val_end, test_end)`` row borders of a series of ``length`` rows.

    ``"fractions"``: in time order, ``test = int(length · test_fraction)``,
    ``train = int(length · (1 − val_fraction − test_fraction))``, validation the rest (the
    Time-Series-Library rule). ``"borders"``: given. ``"ett-hour"``/``"ett-minute"``: the
    standard ETT borders (8640, 11520, 14400), × 4 for 15-minute data.
    """
    if split == "fractions":
        for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not (isinstance(value, (int, float)) and 0 <= value < 1):
                raise ValueError(f"{name} must be in [0, 1), got {value!r}")
        if val_fraction + test_fraction >= 1:
            raise ValueError("val_fraction + test_fraction must leave rows for training")
        train = int(length * (1 - val_fraction - test_fraction))
        test = int(length * test_fraction)
        return train, length - test, length
    if split in ("ett-hour", "ett-minute"):
        borders = tuple(b * (4 if split == "ett-minute" else 1) for b in ETT_HOUR_BORDERS)
        if length < borders[-1]:
            raise ValueError(f"the {split} split needs {borders[-1]} rows, the data has {length}")
        return borders
    if split == "borders":
        if borders is None or len(borders) != 3:
            raise ValueError("split='borders' needs borders=(train_end, val_end, test_end)")
        train, val, test = (int(b) for b in borders)
        if not 0 < train <= val <= test <= length:
            raise ValueError(f"borders must satisfy 0 < train_end <= val_end <= test_end <= "
                             f"{length} (rows of the data), got {tuple(borders)}")
        return train, val, test
    raise ValueError(f"split must be 'fractions', 'borders', 'ett-hour' or 'ett-minute', "
                     f"got {split!r}")


class TimeSeriesDataModule(RoleLoaders, pl.LightningDataModule):
    """Forecasting windows from pandas/polars tables (wide or long), arrays, CSV or Parquet.

    Parameters
    ----------
    data
        The series: anything :func:`~datamodules.timeseries.frames.read_series` reads, or the
        name of an embedded dataset (``"etth1"``).
    lookback, horizon : int
        Input rows and forecast rows of a window.
    warmup : int
        Extra input rows before the lookback that the model's memory reads first (a multiple
        of ``lookback``); origins without that much history are not used.
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
    mode : {"stream", "window"}
        ``"stream"``: batches of :class:`~datamodules.timeseries.LaneSegments` (each channel of
        each series a lane read from its first row, segment after segment in time order,
        ``batch_size`` lanes at a time) for a model whose memory reads the whole history; every
        origin of a part is scored, with everything before it readable. ``"window"``: windows
        of ``warmup + lookback`` rows (:class:`~datamodules.timeseries.WindowDataset`).
    linear_lookback, patch_len, segment_tokens : int
        ``mode="stream"``: rows a forecast reads besides the memory are ``max(lookback,
        linear_lookback)``; rows per memory token; tokens per segment (as the model's).
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
                 segment_tokens: int = 32) -> None:
        super().__init__()
        if mode not in ("stream", "window"):
            raise ValueError(f"mode must be 'stream' or 'window', got {mode!r}")
        for name, value, low in (("linear_lookback", linear_lookback, 0),
                                 ("patch_len", patch_len, 1),
                                 ("segment_tokens", segment_tokens, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if mode == "stream" and warmup:
            raise ValueError("warmup is for mode='window'; in mode='stream' the memory reads "
                             "the whole history; set warmup=0")
        for name, value in (("lookback", lookback), ("horizon", horizon),
                            ("stride", stride), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0 \
                or warmup % lookback:
            raise ValueError(f"warmup must be a multiple of lookback ({lookback}) >= 0, "
                             f"got {warmup!r}")
        self.data, self.lookback, self.horizon, self.warmup = data, lookback, horizon, warmup
        self.target, self.time_col, self.id_col = target, time_col, id_col
        self.future_covariates = list(future_covariates or [])
        self.static_covariates, self.missing = static_covariates, missing
        self.calendar = calendar_names(calendar)
        self.split, self.val_fraction, self.test_fraction = split, val_fraction, test_fraction
        self.borders, self.scale, self.stride = borders, scale, stride
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or batch_size
        self.num_workers, self.shuffle, self.seed = num_workers, shuffle, seed
        self.mode, self.linear_lookback = mode, linear_lookback
        self.patch_len, self.segment_tokens = patch_len, segment_tokens
        self.series: SeriesSet | None = None  # read once, by read()
        self.scaler: SeriesScaler | None = None
        self.datasets: dict[str, WindowDataset] = {}

    # -- reading ---------------------------------------------------------------------------
    def read(self) -> SeriesSet:
        """Read and check ``data`` once (also done by ``setup``)."""
        if self.series is None:
            if self.data is None:
                raise ValueError("TimeSeriesDataModule needs data=…")
            series = read_series(resolve_embedded(self.data), target=self.target,
                                 time_col=self.time_col,
                                 id_col=self.id_col, future_covariates=self.future_covariates,
                                 static_covariates=self.static_covariates,
                                 missing=self.missing, name="data")
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

    # -- Lightning hooks ---------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        series = self.read()
        borders = [self.borders_of(length) for length in series.lengths]
        if self.scaler is None:
            self.scaler = SeriesScaler.fit(series, [b[0] for b in borders], self.scale)
        elif self.scaler.mean.shape != (series.n_series, series.n_channels):
            raise ValueError("the loaded scaler statistics do not match the data: "
                             f"{self.scaler.mean.shape} vs {(series.n_series, series.n_channels)}")
        prepared = prepare_series(series, self.scaler, self.calendar)
        context = self.context
        if self.mode == "stream":
            self._setup_streams(series, prepared, borders, stage)
            return
        parts = {"train": [(context, b[0] - self.horizon) for b in borders],
                 "val": [(max(b[0], context), b[1] - self.horizon) for b in borders],
                 "test": [(max(b[1], context), b[2] - self.horizon) for b in borders]}
        for name, origins in parts.items():
            self.datasets[name] = WindowDataset(prepared, origins, context, self.horizon,
                                                self.stride if name == "train" else 1)
        if len(self.datasets["train"]) == 0:
            shortest = min(b[0] for b in borders)
            raise ValueError(f"no training window: a window needs lookback + warmup + horizon "
                             f"= {context + self.horizon} training rows, the shortest series "
                             f"has {shortest}; use a shorter lookback/horizon or more data")
        if stage == "predict":
            short = [key for key, n in zip(series.ids, series.lengths) if n < context]
            if short:
                raise ValueError(f"series {short[:5]} have fewer than lookback + warmup = "
                                 f"{context} rows, so there is no window to forecast from")
            predict_series = prepare_series(series, self.scaler, self.calendar,
                                            extra_rows=self.horizon) \
                if not series.future_names else None
            if predict_series is None:
                raise ValueError("forecasting past the end needs the future covariates' next "
                                 f"{self.horizon} rows; use TitansForecaster.predict(X=…)")
            self.datasets["predict"] = WindowDataset(
                predict_series, [(length, length) for length in series.lengths], context,
                self.horizon)

    @property
    def context(self) -> int:
        """Rows before an origin that a window (or a forecast besides the memory) reads."""
        return max(self.lookback, self.linear_lookback) if self.mode == "stream" \
            else self.lookback + self.warmup

    def _setup_streams(self, series, prepared, borders, stage: str | None) -> None:
        context, horizon = self.context, self.horizon
        rank, world = 0, 1
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            rank, world = trainer.global_rank, trainer.world_size
        parts = {"train": ([(context, b[0] - horizon) for b in borders], [b[0] for b in borders]),
                 "val": ([(max(b[0], context), b[1] - horizon) for b in borders],
                         [b[1] for b in borders]),
                 "test": ([(max(b[1], context), b[2] - horizon) for b in borders],
                          [b[2] for b in borders])}
        for name, (origins, stops) in parts.items():
            training = name == "train"
            self.datasets[name] = LaneSegments(
                prepared, origins, stops, context, horizon, self.patch_len,
                self.segment_tokens, self.batch_size if training else self.eval_batch_size,
                shuffle=training and self.shuffle, seed=self.seed, rank=rank,
                world_size=world, merge_unscored=not training)
        if len(self.datasets["train"]) == 0:
            shortest = min(b[0] for b in borders)
            raise ValueError(f"no training origin: a forecast needs max(lookback, "
                             f"linear_lookback) + horizon = {context + horizon} training rows, "
                             f"the longest series has {max(b[0] for b in borders)} (shortest "
                             f"{shortest}); use a shorter linear_lookback/horizon or more data")
        if stage == "predict":
            short = [key for key, n in zip(series.ids, series.lengths) if n < self.lookback]
            if short:
                raise ValueError(f"series {short[:5]} have fewer than lookback = "
                                 f"{self.lookback} rows, so there is no window to forecast from")
            if series.future_names:
                raise ValueError("forecasting past the end needs the future covariates' next "
                                 f"{horizon} rows; use TitansForecaster.predict(X=…)")
            ahead = prepare_series(series, self.scaler, self.calendar, extra_rows=horizon)
            self.datasets["predict"] = [
                {"values": item.values, "observed": item.observed,
                 "covariates": item.covariates, "static": item.static} for item in ahead]

    def _loader(self, name: str) -> DataLoader | list:
        dataset = self.datasets.get(name)
        if dataset is None or len(dataset) == 0:
            return []
        if self.mode == "stream":
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

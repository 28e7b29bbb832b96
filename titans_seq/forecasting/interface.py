"""`ForecastNetwork`: what a forecasting network offers the LightningModule and the estimator,
so that neither asks which network it holds.

A network reads a series as it arrives and forecasts from wherever it has read to:

- :meth:`~ForecastNetwork.open_stream` gives a series' memory before its first row;
- :meth:`~ForecastNetwork.read` lets the memory read what it may of the rows before an origin
  (returning a new stream: the old one is left as it was);
- :meth:`~ForecastNetwork.forecast_from` forecasts ``horizon`` rows from that origin;
- :meth:`~ForecastNetwork.origin_forecasts` gives the forecasts at every origin of a stretch
  (surprise, conformal calibration), each reading only the rows before it.

For training, :meth:`~ForecastNetwork.batch_forecasts` turns one batch of the datamodule (of
the kind its :class:`~datamodules.timeseries.ForecastLayout` asks for) into forecasts, targets
and the mask of what is scored, carrying whatever state the next batch continues from.

Two networks implement it: :class:`~titans_seq.forecasting.LongMemoryForecastNet` (the
memory reads the whole history, ``mode="stream"``) and
:class:`~titans_seq.forecasting.TitansForecastNet` (fixed windows, ``mode="window"``). The
layout gives each its :attr:`~ForecastNetwork.context` and
:attr:`~ForecastNetwork.first_origin`. A network that learns differently at test time (from
the realised errors of its forecasts, say) implements the same methods: :meth:`read` sees every
row before an origin, and may learn from any pair whose future is complete.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from datamodules.timeseries import ForecastLayout, PreparedSeries


def map_state(state: Any, function: Callable[[Tensor], Tensor]) -> Any:
    """A copy of a network state (any nesting of dataclasses and tuples) with ``function``
    applied to each of its tensors."""
    if isinstance(state, Tensor):
        return function(state)
    if isinstance(state, tuple):
        return tuple(map_state(item, function) for item in state)
    if dataclasses.is_dataclass(state) and not isinstance(state, type):
        return dataclasses.replace(state, **{field.name: map_state(getattr(state, field.name),
                                                                   function)
                                             for field in dataclasses.fields(state)})
    return state


def concat_states(states: Sequence[Any]) -> Any:
    """One network state holding the rows of ``states`` one after the other (the first axis
    of every tensor); their other fields (counters such as a chunk offset) must agree."""
    first = states[0]
    if isinstance(first, Tensor):
        return torch.cat(list(states))
    if isinstance(first, tuple):
        return tuple(concat_states(items) for items in zip(*states))
    if dataclasses.is_dataclass(first) and not isinstance(first, type):
        return dataclasses.replace(first, **{
            field.name: concat_states([getattr(state, field.name) for state in states])
            for field in dataclasses.fields(first)})
    if any(state != first for state in states[1:]):
        raise ValueError(f"states that differ in {first!r} cannot share a batch")
    return first


def split_state(state: Any, sizes: Sequence[int]) -> list[Any]:
    """The inverse of :func:`concat_states`: ``state``'s rows as ``len(sizes)`` states of
    ``sizes[i]`` rows."""
    if isinstance(state, Tensor):
        return list(state.split(list(sizes)))
    if isinstance(state, tuple):
        return [tuple(parts) for parts in zip(*(split_state(item, sizes) for item in state))] \
            if state else [() for _ in sizes]
    if dataclasses.is_dataclass(state) and not isinstance(state, type):
        fields = {field.name: split_state(getattr(state, field.name), sizes)
                  for field in dataclasses.fields(state)}
        return [dataclasses.replace(state, **{name: parts[i] for name, parts in fields.items()})
                for i in range(len(sizes))]
    return [state] * len(sizes)


def move_state(state: Any, device: torch.device | str) -> Any:
    """A copy of a network state on ``device``."""
    return map_state(state, lambda tensor: tensor.to(device))


def repeat_state(state: Any, times: int) -> Any:
    """A network state whose rows (the first axis of every tensor) are the state's rows
    repeated ``times`` times, one copy after the other (a batch of forecasts from one state)."""
    return map_state(state, lambda tensor: tensor.repeat(times, *[1] * (tensor.dim() - 1)))


@dataclass(frozen=True)
class ForecastStream:
    """One series' memory as a network has read it: its ``state`` (None for a network without
    memory) and how many of the series' rows it has read."""

    state: Any
    rows_read: int = 0

    def to(self, device: torch.device | str) -> "ForecastStream":
        return ForecastStream(move_state(self.state, device), self.rows_read)


@dataclass
class BatchForecast:
    """A training or evaluation batch, forecast.

    ``forecast`` ``(..., H[, Q])`` (None when the batch was only read: nothing in it is
    scored), ``target`` and ``scored`` (bool) the same shape without quantiles, ``state`` what
    the next batch of the same loop continues from, ``count`` the forecasts in the batch (the
    weight of its loss in an epoch's mean), ``anchor`` a zero-valued term to add to the loss
    (it keeps parameters the batch does not use in the graph, as DDP wants)."""

    forecast: Tensor | None
    target: Tensor | None
    scored: Tensor | None
    state: Any
    count: int = 0
    anchor: Tensor | float = 0.0


class Forecaster(ABC):
    """The streaming half of the interface: what the estimator needs to read series as they
    arrive and forecast from them (a :class:`ForecastNetwork` is one; so is a network wrapped
    with a learner of its errors, :class:`~titans_seq.forecasting.online.ErrorMemory`).

    Implementations give :attr:`layout` (rows read around each origin), :attr:`horizon` and
    :attr:`quantiles` (None for a point forecast).
    """

    layout: ForecastLayout
    horizon: int
    quantiles: tuple[float, ...] | None
    read_unit: int  # rows the memory reads at a time, from the series' first row

    @property
    def context(self) -> int:
        """Rows before an origin that a forecast reads besides the memory (the layout's)."""
        return self.layout.context

    @property
    def first_origin(self) -> int:
        """The first origin of a series that has a forecast (the layout's)."""
        return self.layout.first_origin

    def rows_needed(self, stream: ForecastStream) -> int:
        """The first row that reading on from ``stream`` and forecasting from it read (rows
        before it may be dropped: the memory holds what it needs of them)."""
        return stream.rows_read - self.context

    def rebased(self, stream: ForecastStream, dropped: int) -> ForecastStream:
        """``stream`` for the series without its first ``dropped`` rows (a multiple of
        :attr:`read_unit`, at most :meth:`rows_needed`)."""
        return replace(stream, rows_read=stream.rows_read - dropped)

    @abstractmethod
    def open_stream(self, channels: int) -> ForecastStream:
        """A series' memory before its first row (``channels`` target columns), outside any
        autograd graph (a stream is read and copied, never trained)."""

    @abstractmethod
    def read(self, stream: ForecastStream, series: PreparedSeries, upto: int
             ) -> ForecastStream:
        """The stream after its memory has read what it may of the first ``upto`` rows of
        ``series`` (continuing from ``stream``, which is not changed)."""

    @abstractmethod
    def forecast_from(self, stream: ForecastStream, series: PreparedSeries, origin: int
                      ) -> Tensor:
        """The forecast of the ``horizon`` rows from ``origin`` by a stream that has read up
        to ``origin``: ``(H, C[, Q])``. ``series.covariates`` must reach ``horizon`` rows past
        ``origin``."""

    def read_many(self, streams: Sequence[ForecastStream], series: Sequence[PreparedSeries],
                  upto: Sequence[int]) -> list[ForecastStream]:
        """:meth:`read` for several series at once (``streams[i]`` reads the first
        ``upto[i]`` rows of ``series[i]``); a network that can batch them overrides this."""
        return [self.read(stream, item, rows) for stream, item, rows in zip(streams, series, upto)]

    def forecast_many(self, streams: Sequence[ForecastStream], series: Sequence[PreparedSeries],
                      origins: Sequence[int]) -> list[Tensor]:
        """:meth:`forecast_from` for several series at once; a network that can batch them
        overrides this."""
        return [self.forecast_from(stream, item, origin)
                for stream, item, origin in zip(streams, series, origins)]

    @abstractmethod
    def origin_forecasts(self, series: PreparedSeries, first: int, stop: int | None = None,
                         steps: int | None = None, frozen_from: int | None = None,
                         stream: ForecastStream | None = None) -> Tensor:
        """The forecasts from every origin ``t`` in ``[first, stop)`` (default: to the end),
        each reading only the rows before ``t``, their first ``steps`` rows (default: the
        horizon): ``(O, steps, C[, Q])``; ``first`` is at least :attr:`first_origin`. With
        ``frozen_from``, nothing is learned from the rows from that one on (they are read,
        not written: the ablation "frozen after fit"). ``stream``: continue a stream that
        has read up to ``first`` (default: read the series from its first row)."""


class ForecastNetwork(nn.Module, Forecaster):
    """The interface of a forecasting network (see the module's docstring): the streaming
    methods of :class:`Forecaster`, and those of training."""

    @property
    def memory_shares(self) -> tuple[float, ...]:
        """Shares of the memory path's correction to try after training (none: nothing to
        choose)."""
        return ()

    def set_memory_share(self, share: float) -> None:
        """Keep ``share`` of the memory path's correction (one of :attr:`memory_shares`)."""
        raise ValueError(f"{type(self).__name__} has no memory path to weigh")

    def start_training(self, train: Any, validation: Callable[[], Any]) -> None:
        """Called once when training starts, with the training dataset and a function that
        gives the validation dataset (or None); the default does nothing."""

    # -- training ----------------------------------------------------------------------------
    @abstractmethod
    def batch_forecasts(self, batch: dict[str, Tensor], state: Any, *, training: bool,
                        frozen_from: int | None = None,
                        shares: Sequence[float] | None = None) -> BatchForecast:
        """Forecast one batch of the datamodule. ``state``: what the previous batch of the same
        loop returned; ``frozen_from``: a row after which the memory reads without writing
        (the ablation "frozen after fit"); ``shares``: one forecast per share of the memory
        path (a new leading axis)."""

    @abstractmethod
    def predict_batch(self, batch: dict[str, Tensor]) -> Tensor:
        """The forecasts of a prediction batch (``TimeSeriesDataModule``'s ``predict``
        items): ``(B, H, C[, Q])``."""


def read_streams(net: Forecaster, prepared: Sequence[PreparedSeries],
                 lengths: Sequence[int], streams: Sequence[ForecastStream] | None = None,
                 device: torch.device | str = "cpu") -> list[ForecastStream]:
    """Each series' stream after reading its first ``lengths[i]`` rows (continuing
    ``streams``, which are not changed)."""
    streams = streams or [net.open_stream(item.values.shape[1]) for item in prepared]
    return net.read_many(streams, [item.to(device) for item in prepared], lengths)

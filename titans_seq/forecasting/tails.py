"""Reading on from a fitted forecaster's streams with only the rows they still need, so that
the cost of an update or a forecast does not grow with the history, and keeping at most
``max_history`` rows of each series (the memory holds the rest).

A stream has read the rows before its position; what it reads next, and the forecasts it
makes from there, read only rows from :meth:`~titans_seq.forecasting.interface.Forecaster.
rows_needed` on. Those rows are prepared (scaled, with their calendar features and covariates)
as a series of their own, the stream is moved back by the rows left out (whole units of
:attr:`~titans_seq.forecasting.interface.Forecaster.read_unit`, so the memory's patches keep
their borders) and reads on; the result is the same as reading the whole series.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from datamodules.timeseries import PreparedSeries, SeriesSet

from . import history
from .evaluation import calibration_errors
from .interface import Forecaster, ForecastStream

Prepare = Callable[[SeriesSet], list[PreparedSeries]]  # a part of the series, scaled as fitted


def tail_start(net: Forecaster, streams: Sequence[ForecastStream | None]) -> int:
    """The first row that ``streams`` (of one series; None entries ignored) still read, in
    whole units of the network's :attr:`read_unit`."""
    needed = min(net.rows_needed(stream) for stream in streams if stream is not None)
    return max(0, needed) // net.read_unit * net.read_unit


def read_on(net: Forecaster, prepare: Prepare, series: SeriesSet, indices: Sequence[int],
            before: Sequence[int], streams: Sequence[ForecastStream],
            calibration: Sequence[ForecastStream] | None, device: Any
            ) -> tuple[list[ForecastStream], list[ForecastStream] | None, np.ndarray | None]:
    """Series ``indices[j]`` (of which the streams have read the first ``before[j]`` rows)
    read to their ends by their ``streams[j]`` and, with rolling conformal, by their
    ``calibration[j]`` streams: at the first origin whose error is not yet counted
    (``before − horizon + 1``), each forecasts every origin whose rows are now complete.
    Returns both lists of streams and the absolute scaled errors ``(n, H, C)`` of those
    forecasts (None when none completes). The series are read together
    (:meth:`~titans_seq.forecasting.interface.Forecaster.read_many`)."""
    own = calibration if calibration is not None else [None] * len(indices)
    starts = [tail_start(net, [stream, cal]) for stream, cal in zip(streams, own)]
    part = history.dropped(history.subset(series, list(indices)), starts)
    tails = [item.to(device) for item in prepare(part)]
    rows = part.lengths
    read = net.read_many([net.rebased(s, start) for s, start in zip(streams, starts)],
                         tails, rows)
    streams = [net.rebased(stream, -start) for stream, start in zip(read, starts)]
    if calibration is None:
        return streams, None, None
    calibration = [net.rebased(cal, start) for cal, start in zip(calibration, starts)]
    origins = [b - start - net.horizon + 1 for b, start in zip(before, starts)]
    stops = [n - net.horizon + 1 for n in rows]
    live = [j for j in range(len(indices)) if stops[j] > origins[j]]
    errors = None
    if live:
        errors = calibration_errors(net, [tails[j] for j in live], [origins[j] for j in live],
                                    device, [calibration[j] for j in live])
        read = net.read_many([calibration[j] for j in live], [tails[j] for j in live],
                             [stops[j] for j in live])
        for j, cal in zip(live, read):
            calibration[j] = cal
    return streams, [net.rebased(cal, -start) for cal, start in zip(calibration, starts)], errors


def bounded(net: Forecaster, series: SeriesSet, streams: list[ForecastStream],
            calibration: list[ForecastStream] | None, max_history: int | None
            ) -> tuple[SeriesSet, list[ForecastStream], list[ForecastStream] | None]:
    """Each series without its oldest rows beyond ``max_history`` that its streams no longer
    need (whole read units; the streams moved back by as many)."""
    if max_history is None:
        return series, streams, calibration
    drops = []
    for index, length in enumerate(series.lengths):
        mine = [streams[index], None if calibration is None else calibration[index]]
        drop = min(max(0, length - max_history), tail_start(net, mine))
        drops.append(drop // net.read_unit * net.read_unit)
    if not any(drops):
        return series, streams, calibration
    streams = [net.rebased(stream, drop) for stream, drop in zip(streams, drops)]
    if calibration is not None:
        calibration = [net.rebased(stream, drop) for stream, drop in zip(calibration, drops)]
    return history.dropped(series, drops), streams, calibration

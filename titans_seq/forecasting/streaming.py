"""Per-series streaming of a fitted network, without a Trainer: the memory reads a series as it
arrives and forecasts from wherever the series ends (:class:`TitansForecastNet` block by block,
:class:`LongMemoryForecastNet` patch by patch)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor

from ..blocks import EncoderState
from .long_memory import LongMemoryForecastNet, LongMemoryState
from .network import TitansForecastNet


def move_state(state, device: torch.device | str):
    """A copy of an encoder state (any nesting of dataclasses, tuples, tensors) on ``device``."""
    if isinstance(state, Tensor):
        return state.to(device)
    if isinstance(state, tuple):
        return tuple(move_state(item, device) for item in state)
    if dataclasses.is_dataclass(state) and not isinstance(state, type):
        return dataclasses.replace(state, **{field.name: move_state(getattr(state, field.name),
                                                                    device)
                                             for field in dataclasses.fields(state)})
    return state


@dataclass
class SeriesStream:
    """One series' memory and how many of its rows the memory has read.

    The memory reads whole blocks of ``lookback`` rows, from the start of the series, as long
    as one full lookback window remains after them: that last window is what a forecast reads
    through the head, so the memory never holds the rows the head reads.
    """

    state: EncoderState
    committed: int = 0


@torch.inference_mode()
def absorb(net: TitansForecastNet, stream: SeriesStream, values: Tensor, observed: Tensor,
           covariates: Tensor, static: Tensor, upto: int) -> None:
    """Let the memory read every whole block that ends before the final lookback window of the
    first ``upto`` rows (``values (T, C)``, ``covariates (T', F)``, ``static (S,)``)."""
    lookback = net.lookback
    blocks = max(0, (upto - lookback - stream.committed) // lookback)
    if blocks == 0:
        return
    start, stop = stream.committed, stream.committed + blocks * lookback
    stream.state = net.advance(values[None, start:stop], observed[None, start:stop],
                               covariates[None, start:stop], static[None], stream.state)
    stream.committed = stop


@torch.inference_mode()
def forecast_at(net: TitansForecastNet, stream: SeriesStream, values: Tensor, observed: Tensor,
                covariates: Tensor, static: Tensor, origin: int) -> Tensor:
    """The forecast of the ``horizon`` rows from ``origin`` (the memory must have read the rows
    before ``origin − lookback`` that :func:`absorb` lets it); ``(H, C[, Q])``."""
    start = origin - net.lookback
    window = covariates[start:origin + net.horizon]
    forecast, _ = net(values[None, start:origin], observed[None, start:origin], window[None],
                      static[None], stream.state)
    return forecast[0]


# -- mode="stream": the memory reads every whole patch -----------------------------------------
@dataclass
class LaneStream:
    """One series' lanes (its channels) as a :class:`LongMemoryForecastNet` memory has read
    them: its state (which holds the encoder outputs the next forecast reads) and the rows
    read (whole patches from the first row)."""

    state: LongMemoryState | None
    committed: int = 0


def _lanes(values: Tensor, observed: Tensor, covariates: Tensor, static: Tensor,
           start: int, stop: int):
    """Rows ``[start, stop)`` of a series ``(T, C)`` as lanes ``(C, stop − start)``."""
    channels = values.shape[1]
    return (values[start:stop].T, observed[start:stop].T,
            covariates[None, start:stop].expand(channels, -1, -1),
            static[None].expand(channels, -1))


@torch.inference_mode()
def read_lanes(net: LongMemoryForecastNet, stream: LaneStream, values: Tensor,
               observed: Tensor, covariates: Tensor, static: Tensor, upto: int) -> None:
    """Let the memory read every whole patch of the first ``upto`` rows it has not read."""
    if not net.memory:
        stream.committed = upto - upto % net.patch_len
        return
    stop = upto - upto % net.patch_len
    if stop <= stream.committed:
        return
    lanes = _lanes(values, observed, covariates, static, stream.committed, stop)
    _, stream.state = net.read(*lanes, stream.state)
    stream.committed = stop


@torch.inference_mode()
def lane_forecast(net: LongMemoryForecastNet, stream: LaneStream, values: Tensor,
                  observed: Tensor, covariates: Tensor, static: Tensor, origin: int) -> Tensor:
    """The forecast of the ``horizon`` rows from ``origin`` (the memory must have read the
    whole patches before it: :func:`read_lanes`); ``(H, C[, Q])``."""
    if stream.committed != origin - origin % net.patch_len:
        raise RuntimeError("the memory has not read the rows before this origin")
    channels = values.shape[1]
    start = origin - net.context
    window = values.new_zeros(channels, net.context)
    window_observed = observed.new_zeros(channels, net.context)
    low = max(start, 0)
    window[:, low - start:] = values[low:origin].T
    window_observed[:, low - start:] = observed[low:origin].T
    future = covariates[origin:origin + net.horizon][None, None].expand(channels, 1, -1, -1)
    memory = stream.state.recent.flatten(1)[:, None] if net.memory else None  # (C, 1, K·dim)
    forecast = net.forecast(window[:, None], window_observed[:, None], memory,
                            future if net.n_covariates else None,
                            static[None].expand(channels, -1))[:, 0]  # (C, H[, Q])
    return forecast.transpose(0, 1)


def stream_forecast(net: LongMemoryForecastNet, series: dict[str, Tensor]) -> Tensor:
    """The forecast from the end of one whole series (``values, observed (T, C)``,
    ``covariates (T + H, F)``, ``static (S,)``), its memory read from the first row;
    ``(H, C[, Q])``."""
    values = series["values"]
    stream = LaneStream(net.initial_state(values.shape[1]))
    tensors = (values, series["observed"], series["covariates"], series["static"])
    read_lanes(net, stream, *tensors, values.shape[0])
    return lane_forecast(net, stream, *tensors, values.shape[0])


# -- either network -----------------------------------------------------------------------------
def open_stream(net: TitansForecastNet | LongMemoryForecastNet, channels: int
                ) -> LaneStream | SeriesStream:
    """A series' memory before its first row."""
    if isinstance(net, LongMemoryForecastNet):
        return LaneStream(net.initial_state(channels))
    return SeriesStream(net.initial_state(1))


def read_upto(net, stream, values: Tensor, observed: Tensor, covariates: Tensor,
              static: Tensor, upto: int) -> None:
    """Let the memory read what it may of the first ``upto`` rows (:func:`read_lanes` or
    :func:`absorb`)."""
    if isinstance(net, LongMemoryForecastNet):
        read_lanes(net, stream, values, observed, covariates, static, upto)
    else:
        absorb(net, stream, values, observed, covariates, static, upto)


def forecast_from(net, stream, values: Tensor, observed: Tensor, covariates: Tensor,
                  static: Tensor, origin: int) -> Tensor:
    """The forecast from ``origin`` after :func:`read_upto` the same origin; ``(H, C[, Q])``."""
    if isinstance(net, LongMemoryForecastNet):
        return lane_forecast(net, stream, values, observed, covariates, static, origin)
    return forecast_at(net, stream, values, observed, covariates, static, origin)


# -- forecasts at every origin (surprise, conformal calibration) --------------------------------
@torch.inference_mode()
def origin_forecasts(net, values: Tensor, observed: Tensor, covariates: Tensor,
                     static: Tensor, first: int, stop: int | None = None, steps: int | None = None,
                     block: int = 512) -> Tensor:
    """The forecasts from every origin ``t`` in ``[first, stop)`` (each reading everything
    before ``t``), their first ``steps`` rows (default: the horizon); ``(O, steps, C[, Q])``.
    ``covariates`` must reach ``horizon`` rows past ``stop``. A :class:`LongMemoryForecastNet`
    reads the series once and forecasts ``block`` origins at a time; a
    :class:`TitansForecastNet` goes origin by origin."""
    rows, channels = values.shape
    stop = rows if stop is None else stop
    steps = net.horizon if steps is None else steps
    if not isinstance(net, LongMemoryForecastNet):
        stream = open_stream(net, channels)
        forecasts = []
        for origin in range(first, stop):
            absorb(net, stream, values, observed, covariates, static, origin)
            forecasts.append(forecast_at(net, stream, values, observed, covariates, static,
                                         origin)[:steps])
        return torch.stack(forecasts)
    memory_after = None  # (C, N, K·dim): the encoder outputs after each whole patch
    if net.memory:
        whole = rows - rows % net.patch_len
        memory_after, _ = net.read(*_lanes(values, observed, covariates, static, 0, whole),
                                   net.initial_state(channels))
        start = net.initial_state(channels).recent.flatten(1)[:, None]  # (C, 1, K·dim)
        memory_after = torch.cat([start, memory_after], 1)  # index: patches read
    context, patch = net.context, net.patch_len
    padded = torch.cat([values.new_zeros(context, channels), values]).T  # (C, context + T)
    padded_observed = torch.cat([observed.new_zeros(context, channels), observed]).T
    forecasts = []
    for low in range(first, stop, block):
        origins = torch.arange(low, min(low + block, stop))
        window = padded[:, low:origins[-1] + context].unfold(1, context, 1)  # (C, O, context)
        window_observed = padded_observed[:, low:origins[-1] + context].unfold(1, context, 1)
        memory = memory_after[:, origins // patch] if net.memory else None  # (C, O, K·dim)
        future = None
        if net.n_covariates:
            future = covariates[origins[:, None] + torch.arange(net.horizon)]  # (O, H, F)
            future = future[None].expand(channels, -1, -1, -1)
        forecast = net.forecast(window, window_observed, memory, future,
                                static[None].expand(channels, -1))  # (C, O, H[, Q])
        forecasts.append(forecast[:, :, :steps].transpose(0, 1).transpose(1, 2))  # (O, S, C…)
    return torch.cat(forecasts)


def read_streams(module, series, prepared, streams=None) -> list:
    """Each series' memory after reading its prepared rows (continuing ``streams``)."""
    net, device = module.net, module.device
    streams = streams or [open_stream(net, series.n_channels) for _ in series.values]
    for stream, item, length in zip(streams, prepared, series.lengths):
        read_upto(net, stream, item.values.to(device), item.observed.to(device),
                  item.covariates.to(device), item.static.to(device), length)
    return streams

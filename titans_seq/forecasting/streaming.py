"""Per-series streaming of a fitted :class:`TitansForecastNet`: the memory reads a series block
by block and forecasts from wherever the series ends, without a Trainer."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor

from ..blocks import EncoderState
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

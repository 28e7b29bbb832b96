"""`ErrorMemory`: a test-time regression memory that learns, as rows arrive, from the realised
errors of a network's forecasts.

Once the whole future of the forecast made at origin ``s`` is observed (at origin ``s + H``),
the memory writes the pair (key of the window before ``s`` → the residual ``y[s:s+H] −
forecast(s)``), and every forecast adds what the memory reads at its own window's key. Nothing
is learned from a pair before its future is complete, so the forecast at ``t`` depends on rows
``< t`` only (leak-free by construction), and reading a series in pieces of any size writes the
same pairs in the same order (the same memory, to the rounding of the network's forecasts,
which a long read takes in one batched pass).

The write is the Titans rule (Eqs. 12–14) for a linear memory ``M`` (one per series, shared by
its channels, as channel-independent models share weights): the surprise ``∇ℓ = (M k − v) kᵀ``
of each pair, a momentum ``η`` and a forgetting ``α`` of the weights,

    S_t = η S_{t−1} − (M_{t−1} k − v) g_tᵀ,     M_t = (1 − α) M_{t−1} + S_t,

with the step preconditioned by the keys' running inverse covariance ``P`` (forgotten at rate
``λ`` per row): ``g_t = P k / (λ + kᵀ P k)``. The step is data-dependent — large for a key the
memory has seen little of (a surprise in key space), small for a familiar one — and with
``η = α = 0`` the rule is recursive least squares with exponential forgetting on the residuals:
the memory's learning converges in as many pairs as the key has dimensions, where a plain
gradient step on correlated windows drifts for thousands.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from datamodules.checks import boolean, fraction, real
from datamodules.timeseries import PreparedSeries

from .evaluation import calibration_errors
from .interface import Forecaster, ForecastStream


@dataclass(frozen=True)
class ErrorMemorySettings:
    """How the error memory learns (checked on construction).

    Parameters
    ----------
    forgetting : float
        ``λ`` in (0, 1]: the weight of a pair decays by it each row (0.999: a pair counts half
        after about 700 rows; 1: nothing is forgotten).
    prior : float
        The start ``P₀ = I / (prior · d)``: how strongly the memory starts at zero (no
        correction), against ``d``, the key's size.
    level : bool
        The key holds the window's last value besides the window relative to it (what a
        periodic or level-dependent error needs).
    forecast : bool
        The key holds the network's forecast too, relative to the last value: the memory can
        learn how far to trust the network (down to cancelling it, where drift has made it
        wrong).
    momentum, decay : float
        Titans' ``η`` and ``α`` (Eqs. 13–14); 0 and 0: recursive least squares.
    """

    forgetting: float = 0.999
    prior: float = 1e-2
    level: bool = True
    forecast: bool = True
    momentum: float = 0.0
    decay: float = 0.0

    def __post_init__(self) -> None:
        real("forgetting", self.forgetting, 0.0, 1.0, low_open=True)
        real("prior", self.prior, 0.0, low_open=True)
        boolean("level", self.level)
        boolean("forecast", self.forecast)
        fraction("momentum", self.momentum)
        fraction("decay", self.decay)


BATCHED = 32  # pairs from which a read takes the network's forecasts in one pass
# What fit tries on the validation part. The memory is for drift, so it forgets: a pair
# weighs half after about 70, 700 or 2,300 rows (a validation part just after the training
# rows shows little drift, and would often prefer a memory that forgets nothing).
CANDIDATES = tuple(ErrorMemorySettings(forgetting=forgetting, level=level)
                   for forgetting in (0.99, 0.999, 0.9997) for level in (True, False))


@dataclass(frozen=True)
class ErrorMemoryState:
    """One series' learner: the network's stream at the forecast's origin (``lead``) and at
    the origin of the next pair to write (``lag``), that origin, and the memory: weights
    ``(H, d)``, momentum ``(H, d)``, precision of the keys ``(d, d)``."""

    lead: ForecastStream
    lag: ForecastStream
    next_pair: int
    weights: Tensor
    momentum: Tensor
    precision: Tensor


class ErrorMemory(Forecaster):
    """A :class:`~titans_seq.forecasting.interface.Forecaster`: ``network``'s forecasts plus
    what a test-time regression memory of their errors reads (see the module's docstring).
    ``learn=False`` reads without writing: the pairs that complete are passed over."""

    def __init__(self, network: Forecaster, settings: ErrorMemorySettings,
                 learn: bool = True) -> None:
        self.network, self.settings, self.learn = network, settings, learn
        self.layout, self.horizon = network.layout, network.horizon
        self.quantiles, self.read_unit = network.quantiles, network.read_unit
        self.window = network.layout.lookback  # rows a key reads
        # relative rows, level, forecast, 1
        self.key_size = self.window - 1 + int(settings.level) + \
            self.horizon * int(settings.forecast) + 1

    # -- keys and values -----------------------------------------------------------------
    def _keys(self, series: PreparedSeries, origins: Tensor, forecasts: Tensor) -> Tensor:
        """``(O, C, d)`` float64: at each origin, each channel's window before it relative to
        its last value (rows before the series are zeros), that last value, the network's
        point forecast ``forecasts (O, H, C)`` relative to it, and 1."""
        low, high = int(origins[0]) - self.window, int(origins[-1])  # the rows they read
        values = series.values[max(low, 0):high].T.double()  # (C, ≤ high − low)
        padded = torch.cat([values.new_zeros(values.shape[0], max(-low, 0)), values], 1)
        windows = padded.unfold(1, self.window, 1)[:, origins - origins[0]]  # (C, O, L)
        windows = windows.transpose(0, 1)  # (O, C, L)
        last = windows[..., -1:]
        parts = [(windows - last)[..., :-1]]
        if self.settings.level:
            parts.append(last)
        if self.settings.forecast:
            parts.append(forecasts.transpose(1, 2).double() - last)
        parts.append(torch.ones_like(last))
        return torch.cat(parts, -1)

    def _residuals(self, series: PreparedSeries, origins: Tensor, forecasts: Tensor
                   ) -> tuple[Tensor, Tensor]:
        """``(O, C, H)`` the realised rows minus the network's point forecasts at ``origins``,
        and whether each row was observed."""
        steps = origins[:, None] + torch.arange(self.horizon, device=origins.device)  # (O, H)
        actual = series.values[steps].transpose(1, 2).double()  # (O, C, H)
        seen = series.observed[steps].transpose(1, 2)
        return actual - forecasts.transpose(1, 2).double(), seen

    def _point(self, forecast: Tensor) -> Tensor:
        """``(..., H, C)``: the point forecast (the median of the sorted quantiles, as the
        estimator's)."""
        if not self.quantiles:
            return forecast
        return forecast.sort(-1).values[..., list(self.quantiles).index(0.5)]

    # -- the Forecaster interface ----------------------------------------------------------
    @torch.no_grad()
    def open_stream(self, channels: int) -> ForecastStream:
        stream = self.network.open_stream(channels)
        device = next(self.network.parameters()).device
        d = self.key_size
        weights = torch.zeros(self.horizon, d, dtype=torch.float64, device=device)
        precision = torch.eye(d, dtype=torch.float64, device=device) / (self.settings.prior * d)
        # the first pair: a whole window before it (a key of rows before the series would be
        # made up), and a forecast there
        first = max(self.network.first_origin, self.window)
        return ForecastStream(ErrorMemoryState(stream, stream, first, weights, weights.clone(),
                                               precision))

    @torch.inference_mode()
    def read(self, stream: ForecastStream, series: PreparedSeries, upto: int
             ) -> ForecastStream:
        """The network reads the rows; the memory writes every pair whose future is complete
        among the first ``upto`` rows (origins ``s`` with ``s + H ≤ upto``), in order. The
        network's forecasts at those origins come in one pass when there are many (equal to
        the forecasts one at a time to rounding)."""
        return self.read_many([stream], [series], [upto])[0]

    @torch.inference_mode()
    def read_many(self, streams: Sequence[ForecastStream], series: Sequence[PreparedSeries],
                  upto: Sequence[int]) -> list[ForecastStream]:
        """:meth:`read` for several series: the network reads them, and forecasts their
        pairs' origins, together (:meth:`_pair_forecasts`); each memory writes its own."""
        states = [stream.state for stream in streams]
        leads = self.network.read_many([state.lead for state in states], series, upto)
        pairs = [range(state.next_pair, max(state.next_pair, rows - self.horizon + 1))
                 for state, rows in zip(states, upto)]
        lags, forecasts = self._pair_forecasts(states, series, pairs)
        memories = self._learn(series, pairs, forecasts, [
            (state.weights, state.momentum, state.precision) for state in states])
        return [ForecastStream(replace(state, lead=lead, lag=lag, next_pair=mine.stop,
                                       weights=memory[0], momentum=memory[1],
                                       precision=memory[2]), rows)
                for state, mine, lead, lag, memory, rows
                in zip(states, pairs, leads, lags, memories, upto)]

    def _pair_forecasts(self, states: Sequence[ErrorMemoryState],
                        series: Sequence[PreparedSeries], pairs: Sequence[range]
                        ) -> tuple[list[ForecastStream], list[Tensor | None]]:
        """Each series' lag stream after its ``pairs``' origins and, when learning, the
        network's forecasts there ``(O, H, C[, Q])`` (None without pairs): in one pass for a
        series of many pairs, else origin by origin with the series in step together."""
        lags, forecasts = [state.lag for state in states], [None] * len(states)
        many = [i for i, mine in enumerate(pairs) if len(mine) >= BATCHED or
                (len(mine) and not self.learn)]  # passed over: read, never learned
        few = [i for i, mine in enumerate(pairs) if 0 < len(mine) < BATCHED and self.learn]
        if self.learn:
            for i in many:
                forecasts[i] = self.network.origin_forecasts(
                    series[i], pairs[i].start, pairs[i].stop, stream=lags[i])
        made: dict[int, list[Tensor]] = {i: [] for i in few}
        for step in range(max((len(pairs[i]) for i in few), default=0)):
            active = [i for i in few if step < len(pairs[i])]
            origins = [pairs[i].start + step for i in active]
            items = [series[i] for i in active]
            read = self.network.read_many([lags[i] for i in active], items, origins)
            for i, lag, forecast in zip(active, read,
                                        self.network.forecast_many(read, items, origins)):
                lags[i] = lag
                made[i].append(forecast)
        for i in few:
            forecasts[i] = torch.stack(made[i])
        read = self.network.read_many([lags[i] for i in many], [series[i] for i in many],
                                      [pairs[i].stop for i in many])
        for i, lag in zip(many, read):
            lags[i] = lag
        return lags, forecasts

    def _learn(self, series: Sequence[PreparedSeries], pairs: Sequence[range],
               forecasts: Sequence[Tensor | None], memories: Sequence[tuple[Tensor, ...]]
               ) -> list[tuple[Tensor, ...]]:
        """Each memory after writing its series' pairs (the origins ``pairs[i]``), in order,
        given the network's forecasts there ``(O, H, C[, Q])`` (None: nothing to write; rows
        without an observed value add no error). Series of as many channels and pairs write
        in step, as one batch."""
        result, groups = list(memories), {}
        for i, made in enumerate(forecasts):
            if made is not None and len(pairs[i]):
                groups.setdefault((series[i].values.shape[1], len(pairs[i])), []).append(i)
        for members in groups.values():
            parts = []
            for i in members:
                origins = torch.arange(pairs[i].start, pairs[i].stop,
                                       device=forecasts[i].device)
                point = self._point(forecasts[i])  # (O, H, C)
                parts.append((self._keys(series[i], origins, point),  # (O, C, d)
                              *self._residuals(series[i], origins, point)))  # (O, C, H) × 2
            keys, residuals, seen = (torch.stack(found, 1) for found in zip(*parts))  # (O, S…)
            memory = tuple(torch.stack(found) for found in zip(*(memories[i] for i in members)))
            for key, residual, mask in zip(keys, residuals, seen):
                memory = self._write(key, residual, mask, memory)
            for j, i in enumerate(members):
                result[i] = tuple(tensor[j] for tensor in memory)
        return result

    def _write(self, key: Tensor, residual: Tensor, seen: Tensor,
               memory: tuple[Tensor, ...]) -> tuple[Tensor, Tensor, Tensor]:
        """One Titans write of the channels' pairs (``key (…, C, d)``, ``residual (…, C, H)``,
        rows not ``seen`` adding no error), its step preconditioned by the keys' precision;
        leading axes are series writing in step."""
        weights, momentum, precision = memory  # (…, H, d), (…, H, d), (…, d, d)
        forgetting, s = self.settings.forgetting, self.settings
        error = (key @ weights.mT - residual) * seen  # (…, C, H): the surprise
        spread = precision @ key.mT  # (…, d, C)
        inner = forgetting * torch.eye(key.shape[-2], dtype=key.dtype, device=key.device) \
            + key @ spread
        gain = torch.linalg.solve(inner, spread.mT).mT  # (…, d, C): P k (λ + kᵀ P k)⁻¹
        momentum = s.momentum * momentum - error.mT @ gain.mT  # (…, H, d)
        weights = (1 - s.decay) * weights + momentum
        precision = (precision - gain @ spread.mT) / forgetting
        return weights, momentum, (precision + precision.mT) / 2

    def rows_needed(self, stream: ForecastStream) -> int:
        """The network's needs at both its streams, and the window of the next pair's key."""
        state = stream.state
        return min(self.network.rows_needed(state.lead), self.network.rows_needed(state.lag),
                   state.next_pair - self.window)

    def rebased(self, stream: ForecastStream, dropped: int) -> ForecastStream:
        state = stream.state
        return ForecastStream(replace(state, lead=self.network.rebased(state.lead, dropped),
                                      lag=self.network.rebased(state.lag, dropped),
                                      next_pair=state.next_pair - dropped),
                              stream.rows_read - dropped)

    @torch.inference_mode()
    def forecast_from(self, stream: ForecastStream, series: PreparedSeries, origin: int
                      ) -> Tensor:
        return self.forecast_many([stream], [series], [origin])[0]

    @torch.inference_mode()
    def forecast_many(self, streams: Sequence[ForecastStream], series: Sequence[PreparedSeries],
                      origins: Sequence[int]) -> list[Tensor]:
        """The network's forecasts of the series together, each corrected by its memory."""
        made = self.network.forecast_many([stream.state.lead for stream in streams], series,
                                          origins)  # (H, C[, Q]) each
        return [self._corrected(item, torch.tensor([origin], device=forecast.device),
                                forecast[None], stream.state.weights)[0]
                for stream, item, origin, forecast in zip(streams, series, origins, made)]

    def _corrected(self, series: PreparedSeries, origins: Tensor, forecasts: Tensor,
                   weights: Tensor) -> Tensor:
        """The network's forecasts ``(O, H, C[, Q])`` plus what the memory reads."""
        keys = self._keys(series, origins, self._point(forecasts))  # (O, C, d)
        return self._plus(forecasts, keys @ weights.T)

    def _plus(self, forecasts: Tensor, correction: Tensor) -> Tensor:
        """Forecasts ``(O, H, C[, Q])`` plus a correction ``(O, C, H)`` (every quantile
        shifted alike)."""
        correction = correction.transpose(1, 2).to(forecasts.dtype)  # (O, H, C)
        return forecasts + (correction[..., None] if self.quantiles else correction)

    @torch.inference_mode()
    def origin_forecasts(self, series: PreparedSeries, first: int, stop: int | None = None,
                         steps: int | None = None, frozen_from: int | None = None,
                         stream: ForecastStream | None = None) -> Tensor:
        """The network's forecasts at every origin in one pass, then the memory's recursion:
        at each origin, write the pair completed there, then read."""
        stop = series.values.shape[0] if stop is None else stop
        steps = self.horizon if steps is None else steps
        fresh = stream is None
        stream = self.open_stream(series.values.shape[1]) if fresh else stream
        start = min(first, stream.state.next_pair)
        network = self.network.origin_forecasts(  # (O, H, C[, Q])
            series, start, stop, frozen_from=frozen_from,
            stream=None if fresh else stream.state.lag)
        last_pair = stop if frozen_from is None else frozen_from - self.horizon  # learned
        last_pair = min(last_pair, stop - 1 - self.horizon)
        state = stream.state
        memory = (state.weights, state.momentum, state.precision)
        points = self._point(network)  # (O, H, C)
        origins = torch.arange(start, stop, device=points.device)
        keys = self._keys(series, origins, points)  # (O, C, d)
        learned = max(0, last_pair + 1 - start)  # the origins that are pairs to learn
        residuals, seen = self._residuals(series, origins[:learned], points[:learned])
        corrections = []
        for origin in range(start, stop):
            pair = origin - self.horizon  # complete now: learned before the read
            if state.next_pair <= pair <= last_pair:
                index = pair - start
                memory = self._write(keys[index], residuals[index], seen[index], memory)
            if origin >= first:
                corrections.append(keys[origin - start] @ memory[0].T)  # (C, H)
        return self._plus(network[first - start:], torch.stack(corrections))[:, :steps]


def choose_error_memory(network: Forecaster, prepared: Sequence[PreparedSeries],
                        starts: Sequence[int], device: Any = "cpu"
                        ) -> tuple[ErrorMemorySettings, np.ndarray | None]:
    """The :data:`CANDIDATES` setting of lowest mean squared error over the validation
    origins (each series' origins from ``starts[i]`` on; the first candidate when there are
    none), and its calibration errors (see
    :func:`~titans_seq.forecasting.evaluation.calibration_errors`). Each candidate learns from
    the series' first complete pair on, from the same forecasts of the network (made once).
    The network alone is not a candidate: a short validation part right after the training
    rows rarely shows the drift the memory is for."""
    network, best = _OnceForecasts(network), (CANDIDATES[0], None, float("inf"))
    for settings in CANDIDATES:
        errors = calibration_errors(ErrorMemory(network, settings), prepared, starts, device)
        if errors is None:  # no validation origin
            return best[0], None
        score = float(np.nanmean(errors.astype(np.float64) ** 2))
        if score < best[2]:
            best = (settings, errors, score)
    return best[0], best[1]


class _OnceForecasts:
    """A network whose forecasts at every origin of a series are computed once, however many
    error-memory candidates replay them (every other attribute is the network's)."""

    def __init__(self, network: Forecaster) -> None:
        self.network, self.made = network, {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.network, name)

    def origin_forecasts(self, series, first: int, stop: int | None = None,
                         steps: int | None = None, frozen_from: int | None = None,
                         stream: ForecastStream | None = None):
        if stream is not None:  # a stream's forecasts are made once anyway
            return self.network.origin_forecasts(series, first, stop, steps, frozen_from,
                                                 stream)
        key = (id(series.values), first, stop, steps, frozen_from)
        if key not in self.made:
            self.made[key] = self.network.origin_forecasts(series, first, stop, steps,
                                                           frozen_from)
        return self.made[key]

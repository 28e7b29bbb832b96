"""`LongMemoryForecastNet`: a memory that reads the whole history, a linear map of the recent
rows, and a head that forecasts from both.

Every channel of every series is one univariate *lane* (channel independence, weights shared
by all lanes). A lane is cut into patches of ``patch_len`` rows counted from its first row;
each whole patch is one token written into a Titans encoder, so after ``n`` rows the memory has
read every whole patch of them, however long the series (constant cost per row). A forecast
at origin ``t`` (predicting rows ``[t, t + horizon)``) reads:

- the **linear path**: a linear map of the last ``linear_lookback`` rows, relative to the last
  value (a ridge regression fitted in closed form before training, then trained on);
- the **memory path**: the encoder outputs of the last ``lookback / patch_len`` whole patches
  before ``t`` (each a read of a memory that holds everything the lane showed up to that
  patch; the last ``t mod patch_len`` rows are in the window) and the last ``lookback`` rows,
  scaled by the window's own spread; its output layer starts at zero, so the untrained model
  *is* the linear model and the memory learns what that misses.

Training is decoder-style: one pass over a long segment of a lane gives a forecast at *every*
origin in it (all of them read the same encoder outputs), so an epoch costs one encoder pass
over the series, not one per window (:meth:`LongMemoryForecastNet.segment`). At prediction
time the same network streams (:class:`~titans_seq.forecasting.interface.ForecastNetwork`):
the memory reads a series patch by patch as it arrives, and a forecast reads its state.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch
from torch import Tensor, nn

from datamodules.checks import InvalidParameterError
from datamodules.timeseries import ForecastLayout, LaneSegments, PreparedSeries, segment_targets

from ..blocks import EncoderConfig, EncoderState, TitansEncoder
from ..memory import frozen_memory
from .interface import (BatchForecast, ForecastNetwork, ForecastStream, concat_states,
                        split_state)
from .ridge import ridge_fit

if TYPE_CHECKING:
    from .config import ForecastConfig

MEMORY_SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)  # shares of the memory path tried after training
# Lane rows one batched call reads (series read or forecast together): bounds its memory
LANE_ROWS = 1 << 22


@dataclass
class LongMemoryState:
    """What a lane's memory path carries from one call to the next: the encoder's state and
    its outputs at the last ``memory_tokens`` patches ``(B, K, dim)`` (zeros before the
    first), which the next forecasts read."""

    encoder: EncoderState
    recent: Tensor

    def detach(self) -> "LongMemoryState":
        return LongMemoryState(self.encoder.detach(), self.recent.detach())


class LongMemoryForecastNet(ForecastNetwork):
    """Forecast ``horizon`` rows from a memory of the whole history plus recent windows.

    Parameters
    ----------
    horizon : int
        Rows to forecast.
    lookback : int
        Recent rows the memory path's head reads (at least ``patch_len``).
    linear_lookback : int
        Recent rows the linear path reads (0: no linear path). It starts at zero:
        :meth:`fit_linear` gives it its closed-form start (the module does, when training
        starts).
    patch_len : int
        Rows per memory token.
    n_covariates, n_static : int
        Future-known covariates per row (with each token, and over the horizon in the head) and
        static covariates per series (with every token, and in the head).
    quantiles : sequence of float, optional
        One forecast per quantile (last axis); None gives a point forecast.
    head_hidden : int
        Width of the memory path's head (0: a linear head).
    head_dropout : float
        Dropout before the head's layers.
    memory : bool
        False drops the encoder: the head reads the recent window only (an ablation).
    encoder, encoder_options
        The :class:`~titans_seq.TitansEncoder`: an :class:`~titans_seq.EncoderConfig`, and/or
        its fields as keywords.
    """

    def __init__(self, horizon: int, lookback: int = 96, linear_lookback: int = 720,
                 patch_len: int = 16, n_covariates: int = 0, n_static: int = 0,
                 quantiles: Sequence[float] | None = None, head_hidden: int = 256,
                 head_dropout: float = 0.1, memory: bool = True,
                 encoder: EncoderConfig | None = None, **encoder_options: Any) -> None:
        super().__init__()
        self.layout = ForecastLayout("stream", lookback, horizon, 0, linear_lookback, patch_len)
        self.horizon, self.lookback, self.linear_lookback = horizon, lookback, linear_lookback
        self.patch_len, self.n_covariates, self.n_static = patch_len, n_covariates, n_static
        self.read_unit = patch_len  # the memory reads whole patches
        self.quantiles = tuple(quantiles) if quantiles is not None else None
        self.memory_tokens = lookback // patch_len  # the patches of the recent window
        outputs = len(self.quantiles) if self.quantiles else 1
        self.memory = memory
        if memory:
            self.encoder = TitansEncoder(encoder, **encoder_options)
            dim = self.encoder.dim
            # values, observed mask and covariates of a patch, the static covariates
            self.token_embedding = nn.Linear(2 * patch_len + patch_len * n_covariates
                                             + n_static, dim)
        else:
            self.encoder, dim = None, 0
        head_in = self.memory_tokens * dim + 2 * lookback + horizon * n_covariates + n_static
        layers: list[nn.Module] = [nn.Dropout(head_dropout)]
        if head_hidden:
            layers += [nn.Linear(head_in, head_hidden), nn.GELU(), nn.Dropout(head_dropout)]
        layers.append(nn.Linear(head_hidden or head_in, horizon * outputs))
        self.head = nn.Sequential(*layers)
        nn.init.zeros_(self.head[-1].weight)  # start as the linear model
        nn.init.zeros_(self.head[-1].bias)
        self.linear = nn.Linear(linear_lookback, horizon, bias=False) if linear_lookback \
            else None
        if self.linear is not None:
            nn.init.zeros_(self.linear.weight)
        # Set once the linear path holds its closed-form fit (saved in checkpoints, so a
        # resumed run does not refit it).
        self.register_buffer("linear_fitted", torch.tensor(False))
        # How much of the memory path's correction the forecast adds (chosen on validation
        # after training: 0 falls back to the linear model where the memory does not help).
        self.register_buffer("memory_weight", torch.tensor(1.0))

    @classmethod
    def from_config(cls, config: "ForecastConfig", n_channels: int, n_covariates: int,
                    n_static: int) -> "LongMemoryForecastNet":
        """The network a :class:`~titans_seq.forecasting.ForecastConfig` describes (every
        channel a lane, so ``n_channels`` does not shape it)."""
        layout = config.layout
        net = cls(layout.horizon, lookback=layout.lookback,
                  linear_lookback=layout.linear_lookback, patch_len=layout.patch_len,
                  n_covariates=n_covariates, n_static=n_static,
                  quantiles=config.quantile_levels, head_hidden=config.head_hidden,
                  head_dropout=config.head_dropout, memory=config.memory,
                  encoder=config.encoder)
        if net.linear is not None and not config.train_linear:
            net.linear.requires_grad_(False)
        return net

    @staticmethod
    def check_settings(config: "ForecastConfig") -> None:
        """The settings this network cannot take (before any data is read)."""
        if config.channel_mode != "independent":
            raise InvalidParameterError("mode='stream' reads every channel as its own lane; "
                                        "use channel_mode='independent' (or mode='window')")

    # -- the memory path -------------------------------------------------------------------
    def initial_state(self, lanes: int) -> LongMemoryState | None:
        if not self.memory:
            return None
        encoder = self.encoder.initial_state(lanes)
        weight = self.token_embedding.weight
        recent = weight.new_zeros(lanes, self.memory_tokens, self.encoder.dim)
        return LongMemoryState(encoder, recent)

    def write_patches(self, values: Tensor, observed: Tensor, covariates: Tensor,
                      static: Tensor, state: LongMemoryState | None
                      ) -> tuple[Tensor | None, LongMemoryState | None]:
        """Write whole patches into the memory: ``values, observed (B, N·P)``, ``covariates
        (B, N·P, F)``, ``static (B, S)``. Returns, after each patch, the encoder outputs of the
        last ``memory_tokens`` patches ``(B, N, K·dim)``, and the state."""
        if not self.memory:
            return None, None
        lanes, rows = values.shape
        tokens = rows // self.patch_len
        state = state if state is not None else self.initial_state(lanes)
        weight = observed.to(values.dtype).view(lanes, tokens, self.patch_len)  # (B, N, P)
        patches = values.view(lanes, tokens, self.patch_len)
        # Each patch relative to its own mean: the memory stores shapes, not levels, so a
        # level the training rows never reached is no extrapolation for it (RevIN's idea,
        # per patch, hence causal); the level is the linear path's business.
        count = weight.sum(-1, keepdim=True).clamp_min(1.0)
        mean = (patches * weight).sum(-1, keepdim=True) / count
        pieces = [(patches - mean) * weight, weight]
        if self.n_covariates:
            pieces.append(covariates.reshape(lanes, tokens, -1))  # (B, N, P·F)
        if self.n_static:
            pieces.append(static[:, None].expand(lanes, tokens, self.n_static))
        embedded = self.token_embedding(torch.cat(pieces, -1))  # (B, N, dim)
        outputs, encoder = self.encoder(embedded, state.encoder)
        every = torch.cat([state.recent, outputs], 1)  # (B, K + N, dim)
        recent = every.unfold(1, self.memory_tokens, 1)[:, 1:]  # (B, N, dim, K)
        recent = recent.transpose(-1, -2).flatten(-2)  # (B, N, K·dim), oldest first
        return recent, LongMemoryState(encoder, every[:, -self.memory_tokens:])

    # -- the forecast at given origins ------------------------------------------------------
    def forecast(self, window: Tensor, window_observed: Tensor, memory: Tensor | None,
                 future: Tensor | None, static: Tensor | None = None,
                 memory_weight: Tensor | float | None = None) -> Tensor:
        """Forecasts at ``O`` origins of ``B`` lanes: ``window, window_observed (B, O,
        context)`` the rows before each origin, ``memory (B, O, K·dim)`` the encoder outputs
        the origin reads, ``future (B, O, H, F)`` the horizon's covariates. ``(B, O, H[, Q])``."""
        weight = window_observed.to(window.dtype)
        level = _last_observed(window, window_observed)  # (B, O, 1)
        relative = (window - level) * weight
        recent = relative[..., -self.lookback:]
        count = weight[..., -self.lookback:].sum(-1, keepdim=True).clamp_min(1.0)
        spread = torch.sqrt((recent ** 2).sum(-1, keepdim=True) / count + 1e-4)  # (B, O, 1)
        inputs = [recent / spread, weight[..., -self.lookback:]]
        if memory is not None:
            inputs.insert(0, memory)
        batch, origins = window.shape[:2]
        if self.n_covariates:
            inputs.append(future.flatten(-2))
        if self.n_static:
            inputs.append(static[:, None].expand(batch, origins, self.n_static))
        head = self.head(torch.cat(inputs, -1)).view(batch, origins, self.horizon, -1)
        weight = self.memory_weight if memory_weight is None else memory_weight
        forecast = level[..., None] + weight * spread[..., None] * head  # (B, O, H, Q)
        if self.linear is not None:
            linear = self.linear(relative[..., -self.linear_lookback:])  # (B, O, H)
            forecast = forecast + linear[..., None]
        return forecast if self.quantiles else forecast.squeeze(-1)

    # -- training and evaluation: every origin of a segment ---------------------------------
    def segment(self, values: Tensor, observed: Tensor, covariates: Tensor, static: Tensor,
                tokens: int, state: LongMemoryState | None,
                memory_weights: Sequence[float] | None = None
                ) -> tuple[Tensor, LongMemoryState | None]:
        """Forecasts at every origin of a segment of ``tokens`` patches.

        The segment's patches are rows ``[s, s + tokens·P)`` of each lane; ``values, observed
        (B, context + (tokens + 1)·P + H − 1)`` hold rows ``[s − context, s + (tokens + 1)·P
        + H − 1)`` (zeros and False where a lane has no such row) and ``covariates`` the same
        rows ``(…, F)``. The origins are ``t = s + P + j`` for ``j < tokens·P``: each reads the
        memory after its last whole patch and the ``context`` rows before it. Returns
        ``(B, tokens·P, H[, Q])`` and the state after the segment; with ``memory_weights``,
        ``(W, B, tokens·P, H[, Q])``, one forecast per share of the memory path.
        """
        patch, context, horizon = self.patch_len, self.context, self.horizon
        rows = tokens * patch
        memory, state = self.write_patches(values[:, context:context + rows],
                                           observed[:, context:context + rows],
                                           covariates[:, context:context + rows], static, state)
        if memory is not None:
            memory = memory.repeat_interleave(patch, 1)  # (B, tokens·P, K·dim): per origin
        # windows rows [t − context, t) for t = s + P + j: block positions [P + j, P + j + C)
        window = values[:, patch:patch + rows + context - 1].unfold(1, context, 1)
        window_observed = observed[:, patch:patch + rows + context - 1].unfold(1, context, 1)
        future = None
        if self.n_covariates:
            start = patch + context
            future = covariates[:, start:start + rows + horizon - 1].unfold(1, horizon, 1)
            future = future.transpose(-1, -2)  # (B, tokens·P, H, F)
        if memory_weights is None:
            return self.forecast(window, window_observed, memory, future, static), state
        # one forecast per weight (a new leading axis), from two evaluations of the head
        linear = self.forecast(window, window_observed, memory, future, static, 0.0)
        full = self.forecast(window, window_observed, memory, future, static, 1.0)
        return torch.stack([linear + w * (full - linear) for w in memory_weights]), state

    # -- streaming (the ForecastNetwork interface) ------------------------------------------
    @torch.no_grad()
    def open_stream(self, channels: int) -> ForecastStream:
        return ForecastStream(self.initial_state(channels))

    @torch.inference_mode()
    def read(self, stream: ForecastStream, series: PreparedSeries, upto: int
             ) -> ForecastStream:
        """The memory reads every whole patch of the first ``upto`` rows it has not read."""
        stop = upto - upto % self.patch_len
        if not self.memory:
            return ForecastStream(None, stop)
        if stop <= stream.rows_read:
            return stream
        _, state = self.read_rows(series, stream.rows_read, stop, stream.state)
        return ForecastStream(state, stop)

    def read_rows(self, series: PreparedSeries, start: int, stop: int,
                  state: LongMemoryState | None) -> tuple[Tensor | None, LongMemoryState | None]:
        """The memory writes the whole patches of rows ``[start, stop)`` (``start`` and
        ``stop`` patch borders) continuing ``state``: :meth:`write_patches` on a series' rows,
        differentiable (what fine-tuning at test time takes gradients through)."""
        return self.write_patches(*_lanes(series, start, stop), state)

    @torch.inference_mode()
    def read_many(self, streams: Sequence[ForecastStream], series: Sequence[PreparedSeries],
                  upto: Sequence[int]) -> list[ForecastStream]:
        """:meth:`read` for several series at once: the lanes of the series whose streams read
        the same rows (series of one length, read from one origin) go through the encoder in
        one batch, at most about ``LANE_ROWS`` lane rows a call."""
        stops = [rows - rows % self.patch_len for rows in upto]
        if not self.memory:
            return [ForecastStream(None, stop) for stop in stops]
        result, groups = list(streams), {}
        for index, (stream, stop) in enumerate(zip(streams, stops)):
            if stop > stream.rows_read:
                groups.setdefault((stream.rows_read, stop), []).append(index)
        for (start, stop), members in groups.items():
            lanes = [series[i].values.shape[1] for i in members]
            for batch in _batches([n * (stop - start) for n in lanes], LANE_ROWS):
                chosen = [members[b] for b in batch]
                inputs = [torch.cat(parts) for parts in  # (ΣC, rows[, F]), (ΣC, S)
                          zip(*(_lanes(series[i], start, stop) for i in chosen))]
                state = concat_states([streams[i].state for i in chosen])
                _, state = self.write_patches(*inputs, state)
                parts = split_state(state, [lanes[b] for b in batch])
                for index, part in zip(chosen, parts):
                    result[index] = ForecastStream(part, stop)
        return result

    @torch.inference_mode()
    def forecast_from(self, stream: ForecastStream, series: PreparedSeries, origin: int
                      ) -> Tensor:
        return self.forecast_many([stream], [series], [origin])[0]

    @torch.inference_mode()
    def forecast_many(self, streams: Sequence[ForecastStream], series: Sequence[PreparedSeries],
                      origins: Sequence[int]) -> list[Tensor]:
        """:meth:`forecast_from` for several series in one evaluation of the head (at most
        about ``LANE_ROWS`` window rows a call)."""
        for stream, origin in zip(streams, origins):
            if stream.rows_read != origin - origin % self.patch_len:
                raise RuntimeError("the memory has not read the rows before this origin")
        lanes = [item.values.shape[1] for item in series]
        forecasts = []
        for batch in _batches([n * self.context for n in lanes], LANE_ROWS):
            recent = torch.cat([streams[b].state.recent.flatten(1) for b in batch]) \
                if self.memory else None  # (ΣC, K·dim)
            inputs = [torch.cat(parts) for parts in
                      zip(*(self._origin_inputs(series[b], origins[b]) for b in batch))]
            forecast = self._forecast_lanes(*inputs, recent)  # (H, ΣC[, Q])
            forecasts += forecast.split([lanes[b] for b in batch], 1)
        return forecasts

    def forecast_at(self, series: PreparedSeries, origin: int, recent: Tensor | None
                    ) -> Tensor:
        """The forecast from ``origin`` whose memory path reads the encoder outputs
        ``recent (C, K·dim)`` (those after the last whole patch before ``origin``, oldest
        first; None without memory): ``(H, C[, Q])``, differentiable (:meth:`forecast_from`
        is this under inference mode)."""
        return self._forecast_lanes(*self._origin_inputs(series, origin), recent)

    def _origin_inputs(self, series: PreparedSeries, origin: int
                       ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """What a forecast from ``origin`` reads besides the memory, per lane: the window
        and its mask ``(C, context)`` (zeros and False before the first row), the horizon's
        covariates ``(C, H, F)`` and the static covariates ``(C, S)``."""
        values, observed = series.values, series.observed
        channels, context = values.shape[1], self.context
        start = origin - context
        window = values.new_zeros(channels, context)
        window_observed = observed.new_zeros(channels, context)
        low = max(start, 0)
        window[:, low - start:] = values[low:origin].T
        window_observed[:, low - start:] = observed[low:origin].T
        future = series.covariates[origin:origin + self.horizon][None]
        return (window, window_observed, future.expand(channels, -1, -1),  # (C, H, F)
                series.static[None].expand(channels, -1))

    def _forecast_lanes(self, window: Tensor, window_observed: Tensor, future: Tensor,
                        static: Tensor, recent: Tensor | None) -> Tensor:
        """One forecast per lane from :meth:`_origin_inputs`' tensors and the memory's
        ``recent (C, K·dim)``: ``(H, C[, Q])``."""
        memory = recent[:, None] if recent is not None else None  # (C, 1, K·dim)
        forecast = self.forecast(window[:, None], window_observed[:, None], memory,
                                 future[:, None] if self.n_covariates else None,
                                 static)[:, 0]  # (C, H[, Q])
        return forecast.transpose(0, 1)

    @torch.inference_mode()
    def origin_forecasts(self, series: PreparedSeries, first: int, stop: int | None = None,
                         steps: int | None = None, frozen_from: int | None = None,
                         stream: ForecastStream | None = None, block: int = 512) -> Tensor:
        """Reads the series once (from ``stream`` on) and forecasts ``block`` origins at a
        time."""
        values, observed = series.values, series.observed
        rows, channels = values.shape
        stop = rows if stop is None else stop
        steps = self.horizon if steps is None else steps
        stream = self.open_stream(channels) if stream is None else stream
        if first < stream.rows_read:
            raise ValueError(f"the stream has read {stream.rows_read} rows, past the first "
                             f"origin {first}")
        read, patch = stream.rows_read, self.patch_len  # a patch border
        memory_after = None  # (C, N, K·dim): the encoder outputs after each whole patch
        if self.memory:
            whole = max(read, rows - rows % patch)
            # written up to the frozen row's patch; read only after it
            cut = whole if frozen_from is None else \
                min(whole, max(read, frozen_from - frozen_from % patch))
            state = stream.state
            pieces = [state.recent.flatten(1)[:, None]]  # (C, 1, K·dim): after `read` rows
            for low, high, frozen in ((read, cut, False), (cut, whole, True)):
                if high > low:
                    with frozen_memory(self) if frozen else contextlib.nullcontext():
                        outputs, state = self.read_rows(series, low, high, state)
                    pieces.append(outputs)
            memory_after = torch.cat(pieces, 1)  # index: patches read after `read` rows
        context = self.context
        padded = torch.cat([values.new_zeros(context, channels), values]).T  # (C, context + T)
        padded_observed = torch.cat([observed.new_zeros(context, channels), observed]).T
        forecasts = []
        for low in range(first, stop, block):
            origins = torch.arange(low, min(low + block, stop))
            window = padded[:, low:origins[-1] + context].unfold(1, context, 1)  # (C, O, ctx)
            window_observed = padded_observed[:, low:origins[-1] + context].unfold(1, context, 1)
            memory = memory_after[:, (origins - read) // patch] if self.memory \
                else None  # (C, O, K·dim)
            future = None
            if self.n_covariates:
                future = series.covariates[origins[:, None] + torch.arange(self.horizon)]
                future = future[None].expand(channels, -1, -1, -1)  # (C, O, H, F)
            forecast = self.forecast(window, window_observed, memory, future,
                                     series.static[None].expand(channels, -1))  # (C, O, H…)
            forecasts.append(forecast[:, :, :steps].transpose(0, 1).transpose(1, 2))  # (O, S, C…)
        return torch.cat(forecasts)

    # -- training (the ForecastNetwork interface) -------------------------------------------
    def batch_forecasts(self, batch: dict[str, Tensor], state: Any, *, training: bool,
                        frozen_from: int | None = None,
                        shares: Sequence[float] | None = None) -> BatchForecast:
        """A :class:`~datamodules.timeseries.LaneSegments` item: forecasts at every origin of
        its segment ``(B, O, H[, Q])``, the memory state carried from the lanes' previous
        segment (detached: truncated back-propagation through time). An evaluation segment
        without a scored origin is only read. ``frozen_from`` stops the memory's writes in
        evaluation segments after that row."""
        patch = self.patch_len
        state = None if int(batch["segment"]) == 0 else state
        tokens = batch["scored"].shape[1] // patch
        frozen = frozen_from is not None and not training and \
            int(batch["origin"][-1]) - patch >= frozen_from
        inputs = (batch["values"], batch["observed"], batch["covariates"], batch["static"])
        with frozen_memory(self) if frozen else contextlib.nullcontext():
            if not training and not bool(batch["scored"].any()):
                # nothing to score (the rows before the evaluated part): the memory reads only
                context, rows = self.context, tokens * patch
                _, state = self.write_patches(*(t[:, context:context + rows]
                                                for t in inputs[:3]), inputs[3], state)
                return BatchForecast(None, None, None, state)
            forecast, state = self.segment(*inputs, tokens, state, shares)
        target, scored = segment_targets(batch["values"], batch["observed"], batch["scored"],
                                         self.context, patch, self.horizon)
        anchor = 0.0
        if training and int(batch["segment"]) > 0:
            # The memory's start (M_0, persistent tokens) only acts in a lane's first
            # segment; a zero term keeps it in the graph, as DDP wants every parameter.
            anchor = 0.0 * sum(p.sum() for name, p in self.named_parameters()
                               if "initial_weights" in name or "persistent" in name)
        return BatchForecast(forecast, target, scored,
                             state.detach() if state is not None else None,
                             count=int(scored.any(-1).sum()), anchor=anchor)

    def predict_batch(self, batch: dict[str, Tensor]) -> Tensor:
        """A whole series (``values, observed (T, C)``, ``covariates (T + H, F)``, ``static
        (S,)``), its memory read from the first row: the forecast from its end
        ``(1, H, C[, Q])``."""
        series = PreparedSeries(batch["values"], batch["observed"], batch["covariates"],
                                batch["static"])
        rows, channels = series.values.shape
        stream = self.read(self.open_stream(channels), series, rows)
        return self.forecast_from(stream, series, rows)[None]

    def start_training(self, train: Any, validation: Callable[[], Any]) -> None:
        """Fit the linear path in closed form on the training origins, its penalty chosen on
        the validation origins (once: a resumed run keeps its weights)."""
        if bool(self.linear_fitted):
            return
        if not isinstance(train, LaneSegments):
            raise ValueError("mode='stream' trains on LaneSegments batches; use "
                             "TimeSeriesDataModule(mode='stream')")
        if self.linear is None:
            return
        device = self.linear.weight.device
        windows, targets = train.examples(self.linear_lookback)
        held_out = validation()
        held_out = held_out.examples(self.linear_lookback) \
            if isinstance(held_out, LaneSegments) and held_out.scored else (None, None)
        self.fit_linear(windows.to(device), targets.to(device),
                        *(t.to(device) if t is not None else None for t in held_out))

    @property
    def memory_shares(self) -> tuple[float, ...]:
        return MEMORY_SHARES if self.memory else ()

    def set_memory_share(self, share: float) -> None:
        self.memory_weight.fill_(share)

    # -- the linear path's closed-form start ------------------------------------------------
    @torch.no_grad()
    def fit_linear(self, windows: Tensor, targets: Tensor, val_windows: Tensor | None = None,
                   val_targets: Tensor | None = None) -> float:
        """Ridge regression of the horizon on the window, relative to the last value: ``windows
        (N, linear_lookback)`` and ``targets (N, H)`` complete training examples (scaled
        values). The penalty is the one of lowest error on the validation examples when given
        (as a ridge baseline chooses it), else on the last fifth of the training examples (in
        time order, then refitted on all). Returns the penalty (relative to the Gram
        diagonal)."""
        if self.linear is None or len(windows) == 0:
            return 0.0
        weights, penalty = ridge_fit(windows, targets, val_windows, val_targets)
        self.linear.weight.copy_(weights.T.to(self.linear.weight.dtype))  # (H, L)
        self.linear_fitted.fill_(True)
        return penalty


def _last_observed(window: Tensor, observed: Tensor) -> Tensor:
    """Each row's last observed value (0 where none), ``(..., 1)``."""
    positions = torch.arange(window.shape[-1], device=window.device)
    last = torch.where(observed, positions, -1).amax(-1, keepdim=True)  # (..., 1)
    value = window.gather(-1, last.clamp_min(0))
    return torch.where(last >= 0, value, torch.zeros_like(value))


def _lanes(series: PreparedSeries, start: int, stop: int
           ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Rows ``[start, stop)`` of a series ``(T, C)`` as lanes ``(C, stop − start)``, with their
    covariates ``(C, stop − start, F)`` and static covariates ``(C, S)``."""
    channels = series.values.shape[1]
    return (series.values[start:stop].T, series.observed[start:stop].T,
            series.covariates[None, start:stop].expand(channels, -1, -1),
            series.static[None].expand(channels, -1))


def _batches(sizes: Sequence[int], budget: int) -> list[list[int]]:
    """Consecutive groups of the indices of ``sizes`` whose sizes sum to at most ``budget``
    (an item larger than the budget alone)."""
    groups: list[list[int]] = [[]]
    total = 0
    for index, size in enumerate(sizes):
        if groups[-1] and total + size > budget:
            groups.append([])
            total = 0
        groups[-1].append(index)
        total += size
    return groups if groups[0] else []

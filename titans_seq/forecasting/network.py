"""`TitansForecastNet`: patches of a window → Titans encoder → direct multi-horizon head.

The series is read as a stream of blocks of ``lookback`` rows. Each block is normalised by its
own statistics (RevIN), cut into patches (the tokens) and written into the encoder's memory.
A forecast reads the encoder outputs of the last block's tokens. In training, a window has
``warmup / lookback`` blocks before the forecast block, so the model learns to use what its
memory holds from earlier blocks; at prediction time the memory can hold any amount of history
(:meth:`advance`), which is how a fitted forecaster keeps learning from new data. It is the
``mode="window"`` implementation of :class:`~titans_seq.forecasting.interface.ForecastNetwork`
(the ablation without long memory).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Sequence

import torch
from torch import Tensor, nn

from datamodules.checks import InvalidParameterError, choice, integer
from datamodules.timeseries import ForecastLayout, PreparedSeries

from ..blocks import EncoderConfig, EncoderState, TitansEncoder
from ..memory import frozen_memory
from .interface import BatchForecast, ForecastNetwork, ForecastStream, repeat_state
from .revin import RevIN

if TYPE_CHECKING:
    from .config import ForecastConfig

ChannelMode = Literal["independent", "mixing"]


class TitansForecastNet(ForecastNetwork):
    """Direct multi-horizon forecaster around a :class:`~titans_seq.TitansEncoder`.

    Parameters
    ----------
    n_channels : int
        Target columns ``C``.
    lookback, horizon : int
        Rows a forecast reads and rows it predicts. ``lookback`` is a multiple of ``patch_len``.
    patch_len : int
        Rows per token (non-overlapping patches, PatchTST-style); 1 embeds every step.
    channel_mode : {"independent", "mixing"}
        ``"independent"``: every channel is its own stream of univariate patches with shared
        weights (PatchTST's channel independence); ``"mixing"``: one stream whose tokens hold
        every channel's patch.
    n_covariates : int
        Future-known covariates per row (calendar features, user columns); embedded with each
        token and, over the horizon, fed to the head.
    n_static : int
        Static covariates per series, added to every token.
    quantiles : sequence of float, optional
        Output one forecast per quantile (last axis); None gives a point forecast.
    revin : bool
        Reversible instance normalisation per block.
    linear_skip : bool
        Add a linear map from the last block's (normalised) values to the forecast, beside the
        encoder's head: the encoder then learns what a linear forecast misses (RLinear's
        strong baseline is a special case, reached with the encoder's head at zero).
    warmup : int
        Rows before each training window that the memory reads first (a multiple of
        ``lookback``; the data's, see :class:`~datamodules.timeseries.ForecastLayout`).
    encoder, encoder_options
        The :class:`~titans_seq.TitansEncoder`: an :class:`~titans_seq.EncoderConfig`, and/or
        its fields as keywords.
    """

    def __init__(self, n_channels: int, lookback: int, horizon: int, patch_len: int = 8,
                 channel_mode: ChannelMode = "independent", n_covariates: int = 0,
                 n_static: int = 0, quantiles: Sequence[float] | None = None,
                 revin: bool = True, head_dropout: float = 0.0, linear_skip: bool = False,
                 warmup: int = 0, encoder: EncoderConfig | None = None,
                 **encoder_options: Any) -> None:
        super().__init__()
        n_channels = integer("n_channels", n_channels)
        self.layout = ForecastLayout("window", lookback, horizon, warmup, patch_len=patch_len)
        lookback, horizon = self.layout.lookback, self.layout.horizon
        patch_len = self.layout.patch_len
        _check_patches(lookback, patch_len)
        choice("channel_mode", channel_mode, ("independent", "mixing"))
        self.n_channels, self.lookback, self.horizon = n_channels, lookback, horizon
        self.read_unit = lookback  # the memory reads whole blocks of lookback rows
        self.patch_len, self.channel_mode = patch_len, channel_mode
        self.n_covariates, self.n_static = n_covariates, n_static
        self.quantiles = tuple(quantiles) if quantiles is not None else None
        self.tokens_per_block = lookback // patch_len
        self.encoder = TitansEncoder(encoder, **encoder_options)
        dim = self.encoder.dim
        streams = 1 if channel_mode == "independent" else n_channels
        # values and their observed mask, per patch row and stream
        self.patch_embedding = nn.Linear(2 * patch_len * streams, dim)
        self.covariate_embedding = nn.Linear(patch_len * n_covariates, dim) \
            if n_covariates else None
        self.static_embedding = nn.Linear(n_static, dim) if n_static else None
        self.revin = RevIN(n_channels) if revin else None
        outputs = horizon * streams * (len(self.quantiles) if self.quantiles else 1)
        self.head = nn.Sequential(
            nn.Dropout(head_dropout),
            nn.Linear(self.tokens_per_block * dim + horizon * n_covariates, outputs))
        self.skip = nn.Linear(lookback * streams, outputs) if linear_skip else None

    @classmethod
    def from_config(cls, config: "ForecastConfig", n_channels: int, n_covariates: int,
                    n_static: int) -> "TitansForecastNet":
        """The network a :class:`~titans_seq.forecasting.ForecastConfig` describes."""
        layout = config.layout
        return cls(n_channels, layout.lookback, layout.horizon, patch_len=layout.patch_len,
                   channel_mode=config.channel_mode, n_covariates=n_covariates,
                   n_static=n_static, quantiles=config.quantile_levels, revin=config.revin,
                   head_dropout=config.head_dropout, linear_skip=config.linear_skip,
                   warmup=layout.warmup, encoder=config.encoder)

    @staticmethod
    def check_settings(config: "ForecastConfig") -> None:
        """The settings this network cannot take (before any data is read)."""
        _check_patches(config.layout.lookback, config.layout.patch_len)

    @property
    def streams_per_series(self) -> int:
        """Encoder rows per series: one per channel when channel-independent."""
        return self.n_channels if self.channel_mode == "independent" else 1

    def initial_state(self, batch_size: int) -> EncoderState:
        """The memory before any block, for ``batch_size`` series."""
        return self.encoder.initial_state(batch_size * self.streams_per_series)

    def forward(self, history: Tensor, observed: Tensor | None = None,
                covariates: Tensor | None = None, static: Tensor | None = None,
                state: EncoderState | None = None) -> tuple[Tensor, EncoderState]:
        """Forecast the ``horizon`` rows after ``history``.

        ``history (B, K·lookback, C)`` holds ``K ≥ 1`` blocks (the first ``K − 1`` are warm-up
        for the memory), ``observed (B, K·lookback, C)`` bool, ``covariates
        (B, K·lookback + horizon, F)``, ``static (B, S)``, ``state`` the memory before
        ``history``. Returns ``(B, horizon, C)`` (or ``(B, horizon, C, Q)`` with quantiles) and
        the memory after ``history``.
        """
        batch, rows, _ = history.shape
        outputs, stats, state, last_block = self._encode(history, observed, covariates, static,
                                                         state)
        last = outputs[:, -self.tokens_per_block:].flatten(1)  # (B', N·dim)
        if self.n_covariates:
            future = covariates[:, rows:rows + self.horizon]  # (B, H, F)
            future = future.repeat_interleave(self.streams_per_series, 0)
            last = torch.cat([last, future.flatten(1)], 1)
        forecast = self.head(last)
        if self.skip is not None:
            if self.channel_mode == "independent":
                last_block = last_block.transpose(1, 2).flatten(0, 1)  # (B·C, L)
            forecast = forecast + self.skip(last_block.flatten(1))
        quantiles = len(self.quantiles) if self.quantiles else 1
        if self.channel_mode == "independent":
            forecast = forecast.view(batch, self.n_channels, self.horizon, quantiles)
            forecast = forecast.permute(0, 2, 1, 3)  # (B, H, C, Q)
        else:
            forecast = forecast.view(batch, self.horizon, self.n_channels, quantiles)
        if self.revin is not None:
            last_stats = (stats[0][:, -1], stats[1][:, -1])  # (B, 1, C)
            forecast = self.revin.denormalise(forecast, last_stats)
        return (forecast if self.quantiles else forecast.squeeze(-1)), state

    def advance(self, history: Tensor, observed: Tensor | None = None,
                covariates: Tensor | None = None, static: Tensor | None = None,
                state: EncoderState | None = None) -> EncoderState:
        """Write whole blocks of ``history`` into the memory without forecasting (streaming)."""
        return self._encode(history, observed, covariates, static, state)[2]

    def _encode(self, history: Tensor, observed: Tensor | None, covariates: Tensor | None,
                static: Tensor | None, state: EncoderState | None):
        batch, rows, channels = history.shape
        if channels != self.n_channels:
            raise ValueError(f"history has {channels} channels, the model {self.n_channels}")
        if rows % self.lookback:
            raise ValueError(f"history has {rows} rows, not a multiple of lookback "
                             f"({self.lookback})")
        if observed is None:
            observed = torch.ones_like(history, dtype=torch.bool)
        blocks = rows // self.lookback
        values = history.view(batch, blocks, self.lookback, channels)  # (B, K, L, C)
        mask = observed.view(batch, blocks, self.lookback, channels)
        weight = mask.to(values.dtype)
        if self.revin is not None:
            values, stats = self.revin.normalise(values, mask)  # stats (B, K, 1, C)
        else:
            values, stats = values * weight, None
        last_block = values[:, -1]  # (B, L, C), normalised
        tokens_per_block, patch = self.tokens_per_block, self.patch_len
        # (B, K, L, C) -> (B, K·N, P, C): patches in time order
        values = values.reshape(batch, blocks * tokens_per_block, patch, channels)
        weight = weight.reshape(batch, blocks * tokens_per_block, patch, channels)
        pieces = torch.cat([values, weight], 2)  # (B, K·N, 2P, C)
        if self.channel_mode == "independent":
            pieces = pieces.permute(0, 3, 1, 2)  # (B, C, K·N, 2P)
            pieces = pieces.reshape(batch * channels, blocks * tokens_per_block, 2 * patch)
        else:
            pieces = pieces.flatten(2)  # (B, K·N, 2P·C)
        tokens = self.patch_embedding(pieces)  # (B', K·N, dim)
        repeat = self.streams_per_series
        if self.covariate_embedding is not None:
            past = covariates[:, :rows].reshape(batch, blocks * tokens_per_block,
                                                patch * self.n_covariates)  # (B, K·N, P·F)
            tokens = tokens + self.covariate_embedding(past).repeat_interleave(repeat, 0)
        if self.static_embedding is not None:
            tokens = tokens + self.static_embedding(static).repeat_interleave(repeat, 0)[:, None]
        outputs, state = self.encoder(tokens, state)
        return outputs, stats, state, last_block

    # -- streaming (the ForecastNetwork interface) ------------------------------------------
    @torch.no_grad()
    def open_stream(self, channels: int) -> ForecastStream:
        return ForecastStream(self.initial_state(1))

    @torch.inference_mode()
    def read(self, stream: ForecastStream, series: PreparedSeries, upto: int
             ) -> ForecastStream:
        """The memory reads whole blocks of ``lookback`` rows from the start of the series, as
        long as one full lookback window remains after them: that last window is what a
        forecast reads through the head, so the memory never holds the rows the head reads."""
        lookback = self.lookback
        blocks = max(0, (upto - lookback - stream.rows_read) // lookback)
        if blocks == 0:
            return stream
        start, stop = stream.rows_read, stream.rows_read + blocks * lookback
        state = self.advance(series.values[None, start:stop], series.observed[None, start:stop],
                             series.covariates[None, start:stop], series.static[None],
                             stream.state)
        return ForecastStream(state, stop)

    @torch.inference_mode()
    def forecast_from(self, stream: ForecastStream, series: PreparedSeries, origin: int
                      ) -> Tensor:
        start = origin - self.lookback
        window = series.covariates[start:origin + self.horizon]
        forecast, _ = self(series.values[None, start:origin],
                           series.observed[None, start:origin], window[None],
                           series.static[None], stream.state)
        return forecast[0]

    @torch.inference_mode()
    def origin_forecasts(self, series: PreparedSeries, first: int, stop: int | None = None,
                         steps: int | None = None, frozen_from: int | None = None,
                         stream: ForecastStream | None = None) -> Tensor:
        """The memory reads the series once, in order (from ``stream`` on); the origins that
        read the same memory (whole blocks of ``lookback`` rows) are forecast in one batch."""
        stop = series.values.shape[0] if stop is None else stop
        steps = self.horizon if steps is None else steps
        lookback, horizon = self.lookback, self.horizon
        stream = self.open_stream(series.values.shape[1]) if stream is None else stream
        forecasts, origin = [], first
        while origin < stop:
            if frozen_from is None:
                stream = self.read(stream, series, origin)
            else:  # blocks that end by the frozen row are written, later ones only read
                stream = self.read(stream, series, min(origin, frozen_from + lookback))
                with frozen_memory(self):
                    stream = self.read(stream, series, origin)
            # origins up to the one at which the memory reads its next block
            end = min(stop, stream.rows_read + 2 * lookback)
            origins = torch.arange(origin, end, device=series.values.device)
            rows = origins[:, None] + torch.arange(-lookback, 0, device=origins.device)
            ahead = origins[:, None] + torch.arange(-lookback, horizon, device=origins.device)
            batch = len(origins)
            forecast, _ = self(series.values[rows], series.observed[rows],
                               series.covariates[ahead],
                               series.static[None].expand(batch, -1),
                               repeat_state(stream.state, batch))
            forecasts.append(forecast[:, :steps])
            origin = end
        return torch.cat(forecasts)

    # -- training (the ForecastNetwork interface) -------------------------------------------
    def batch_forecasts(self, batch: dict[str, Tensor], state: Any, *, training: bool,
                        frozen_from: int | None = None,
                        shares: Sequence[float] | None = None) -> BatchForecast:
        """A :class:`~datamodules.timeseries.WindowDataset` batch: each window's forecast
        ``(B, H, C[, Q])``; nothing is carried from one batch to the next."""
        if frozen_from is not None or shares:
            raise ValueError("the fixed-window network's memory reads only each window: it has "
                             "no memory carried past the training rows to freeze, nor a memory "
                             "path to weigh (frozen_from and memory shares are for "
                             "mode='stream')")
        forecast = self.predict_batch(batch)
        return BatchForecast(forecast, batch["target"], batch["target_observed"], None,
                             count=forecast.shape[0])

    def predict_batch(self, batch: dict[str, Tensor]) -> Tensor:
        forecast, _ = self(batch["history"], batch["history_observed"], batch["covariates"],
                           batch["static"])
        return forecast


def _check_patches(lookback: int, patch_len: int) -> None:
    """A window is cut into whole patches."""
    if lookback % patch_len:
        raise InvalidParameterError(f"lookback ({lookback}) must be a multiple of patch_len "
                                    f"({patch_len}) in mode='window'")

"""`ForecastingModule`: the Lightning training of a long-memory or fixed-window forecaster."""

from __future__ import annotations

import contextlib
from typing import Literal, Sequence

import lightning.pytorch as pl
from lightning.fabric.utilities.exceptions import MisconfigurationException
import torch
from torch import Tensor
from torchmetrics import MeanAbsoluteError, MeanSquaredError, MetricCollection

from datamodules.checks import fraction, integer, quantile_levels, real, stream_options
from datamodules.timeseries.streams import LaneSegments, segment_targets

from ..blocks.encoder import MODULE_ENCODER_OPTIONS, Variant
from ..memory import frozen_memory
from ..optim import warmup_cosine_adamw
from ..training import RandomStateInCheckpoints, adopt_shapes, trainer_datamodule
from .long_memory import LongMemoryForecastNet
from .losses import LossName, PinballLoss, forecast_loss, pinball
from .network import ChannelMode, TitansForecastNet
from .streaming import stream_forecast

Mode = Literal["stream", "window"]
MEMORY_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)  # shares of the memory path tried after training


class ForecastingModule(RandomStateInCheckpoints, pl.LightningModule):
    """Multi-horizon forecasting with a Titans encoder.

    Two modes, which the datamodule must share:

    - ``mode="stream"`` (default): a :class:`LongMemoryForecastNet`. The memory reads every
      series from its first row; batches are :class:`~datamodules.timeseries.LaneSegments`
      in time order, the memory state is carried from one segment to the next (detached:
      truncated back-propagation through time) and the loss is taken at every origin of a
      segment. Validation and test forecast every origin of their part with the memory having
      read everything before it (and still learning, as at prediction time).
    - ``mode="window"``: a :class:`TitansForecastNet` on fixed windows
      (:class:`~datamodules.timeseries.WindowDataset`) whose memory reads ``warmup +
      lookback`` rows: the ablation without long memory.

    Parameters
    ----------
    mode : {"stream", "window"}
        As above.
    linear_lookback : int
        ``mode="stream"``: rows of the linear path (its closed-form ridge fit happens when
        training starts, on the training origins).
    segment_tokens : int
        ``mode="stream"``: memory tokens per training segment (the back-propagation length).
    head_hidden : int
        ``mode="stream"``: width of the memory path's head.
    memory : bool
        ``mode="stream"``: False drops the encoder (the head reads the recent rows only): the
        ablation that shows what the memory adds.
    train_linear : bool
        ``mode="stream"``: keep training the linear path after its closed-form fit (False: it
        stays the ridge solution and the memory path learns what it misses).
    n_channels, n_covariates, n_static : int
        Shapes of the data (``TimeSeriesDataModule.n_channels`` and so on). ``n_channels=None``
        takes all three from the datamodule the Trainer runs with (see
        :meth:`configure_model`).
    lookback, horizon, warmup : int
        As in the datamodule: ``warmup`` rows (a multiple of ``lookback``) precede each
        window's lookback and are written into the memory first.
    patch_len, channel_mode, revin, head_dropout, linear_skip
        See :class:`TitansForecastNet`.
    variant, dim, depth, heads, memory_heads, memory_depth, chunk_size, max_lr, window,
    segment_len, persistent_tokens, dropout
        The :class:`~titans_seq.TitansEncoder`.
    max_surprise_norm : float, optional
        Clip every memory write's surprise to this norm (see
        :class:`~titans_seq.NeuralMemory`): a deep memory that reads a long stream diverged
        without it (NaN after 20 epochs on a synthetic recall task). None is the paper's rule.
    loss : {"mse", "mae", "quantile"}
        Training loss; ``"quantile"`` is the pinball loss over ``quantiles`` and makes the
        median the point forecast (0.5 is added when absent).
    lr, weight_decay, warmup_fraction : float
        AdamW with a linear warm-up over ``warmup_fraction`` of the steps, then cosine decay.

    Validation and test log ``{stage}_mse``, ``{stage}_mae`` (torchmetrics, on the point
    forecast, in the datamodule's scaled units) and ``{stage}_pinball`` for quantile losses.
    """

    def __init__(self, n_channels: int | None = None, lookback: int = 96, horizon: int = 96,
                 warmup: int = 0, mode: Mode = "stream", linear_lookback: int = 720,
                 segment_tokens: int = 32, head_hidden: int = 256, memory: bool = True,
                 train_linear: bool = False, n_covariates: int = 0, n_static: int = 0,
                 patch_len: int = 16, channel_mode: ChannelMode = "independent",
                 revin: bool = True, head_dropout: float = 0.0, linear_skip: bool = False,
                 variant: Variant = "lmm",
                 dim: int = 64, depth: int = 2, heads: int = 4, memory_heads: int = 4,
                 memory_depth: int = 2, chunk_size: int = 4, max_lr: float | None = None,
                 window: int = 64, segment_len: int = 16, persistent_tokens: int = 4,
                 dropout: float = 0.1, max_surprise_norm: float | None = 5.0,
                 loss: LossName = "mse",
                 quantiles: list[float] | None = None, lr: float = 1e-3,
                 weight_decay: float = 1e-4, warmup_fraction: float = 0.05) -> None:
        super().__init__()
        mode, lookback, warmup, patch_len = stream_options(mode, lookback, warmup, patch_len,
                                                           channel_mode)
        linear_lookback = integer("linear_lookback", linear_lookback, 0)
        segment_tokens = integer("segment_tokens", segment_tokens)
        head_hidden = integer("head_hidden", head_hidden, 0)
        quantiles = quantile_levels(loss, (0.1, 0.5, 0.9) if quantiles is None else quantiles)
        lr = real("lr", lr, 0.0, low_open=True)
        weight_decay = real("weight_decay", weight_decay, 0.0)
        warmup_fraction = fraction("warmup_fraction", warmup_fraction)
        self.save_hyperparameters()
        self.loss_name, self.quantiles = loss, quantiles
        self.net: TitansForecastNet | LongMemoryForecastNet | None = None
        # mode="stream": each loop's memory state between segments, and the row from which
        # evaluation stops writing to the memory (the "frozen after fit" ablation).
        self._lane_states: dict[str, object] = {}
        self.frozen_from: int | None = None
        if n_channels is not None:
            self._build()
        metrics = MetricCollection({"mse": MeanSquaredError(), "mae": MeanAbsoluteError()})
        self.val_metrics = metrics.clone(prefix="val_")
        self.test_metrics = metrics.clone(prefix="test_")
        if quantiles:
            self.val_pinball, self.test_pinball = PinballLoss(quantiles), PinballLoss(quantiles)

    @property
    def context(self) -> int:
        """Rows before an origin that a forecast reads (besides the memory)."""
        h = self.hparams
        return max(h.lookback, h.linear_lookback) if h.mode == "stream" \
            else h.lookback + h.warmup

    def _build(self) -> None:
        h = self.hparams
        if h.mode == "stream":
            self.net = LongMemoryForecastNet(
                h.horizon, lookback=h.lookback, linear_lookback=h.linear_lookback,
                patch_len=h.patch_len, n_covariates=h.n_covariates, n_static=h.n_static,
                quantiles=self.quantiles, head_hidden=h.head_hidden,
                head_dropout=h.head_dropout, memory=h.memory,
                max_surprise_norm=h.max_surprise_norm,
                **{name: h[name] for name in MODULE_ENCODER_OPTIONS})
            if self.net.linear is not None and not h.train_linear:
                self.net.linear.requires_grad_(False)
            self._stream_start_parameters = [p for n, p in self.net.named_parameters()
                                             if "initial_weights" in n or "persistent" in n]
            return
        self.net = TitansForecastNet(
            h.n_channels, h.lookback, h.horizon, patch_len=h.patch_len,
            channel_mode=h.channel_mode, n_covariates=h.n_covariates, n_static=h.n_static,
            quantiles=self.quantiles, revin=h.revin, head_dropout=h.head_dropout,
            linear_skip=h.linear_skip, max_surprise_norm=h.max_surprise_norm,
            **{name: h[name] for name in MODULE_ENCODER_OPTIONS})

    def configure_model(self) -> None:
        """With ``n_channels=None``, take ``n_channels``, ``n_covariates`` and ``n_static``
        from the Trainer's :class:`~datamodules.TimeSeriesDataModule` (the CLI's way: a config
        names the data once); they are then saved with the hyper-parameters, so
        ``load_from_checkpoint`` rebuilds the same network."""
        if self.net is not None:
            return
        data = trainer_datamodule(self, "n_channels", "pass n_channels, or train with a "
                                  "TimeSeriesDataModule to take it from")
        h = self.hparams
        shared = ["mode", "lookback", "horizon", "warmup"]
        if h.mode == "stream":
            shared += ["patch_len", "linear_lookback", "segment_tokens"]
        for name in shared:
            if getattr(data, name) != h[name]:
                raise ValueError(f"the datamodule's {name} is {getattr(data, name)!r}, the "
                                 f"model's {h[name]!r}; set them equal")
        adopt_shapes(self, dict(n_channels=data.n_channels, n_covariates=data.n_covariates,
                                n_static=data.n_static))
        self._build()

    @property
    def median_index(self) -> int | None:
        return self.quantiles.index(0.5) if self.quantiles else None

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        """The forecast of a batch: ``(B, H, C)`` or ``(B, H, C, Q)``."""
        forecast, _ = self.net(batch["history"], batch["history_observed"],
                               batch["covariates"], batch["static"])
        return forecast

    def point(self, forecast: Tensor) -> Tensor:
        """The point forecast (the median for quantile models), ``(B, H, C)``."""
        return forecast[..., self.median_index] if self.quantiles else forecast

    # -- mode="stream": segments in time order, the state carried ---------------------------
    def _segment(self, batch: dict[str, Tensor], loop: str,
                 memory_weights: Sequence[float] | None = None
                 ) -> tuple[Tensor, Tensor, Tensor] | None:
        """Forecasts ``(B, O, H[, Q])``, targets and scored mask ``(B, O, H)`` of a segment
        (None for an evaluation segment without a scored origin: the memory only reads it).
        ``frozen_from`` (a row) stops the memory's writes in evaluation segments after it."""
        h = self.hparams
        net = self.net
        state = None if int(batch["segment"]) == 0 else self._lane_states.get(loop)
        tokens = batch["scored"].shape[1] // h.patch_len
        frozen = self.frozen_from is not None and loop != "train" and \
            int(batch["origin"][-1]) - h.patch_len >= self.frozen_from
        inputs = (batch["values"], batch["observed"], batch["covariates"], batch["static"])
        with frozen_memory(net) if frozen else contextlib.nullcontext():
            if loop != "train" and not bool(batch["scored"].any()):
                # nothing to score (the rows before the evaluated part): the memory reads only
                context, rows = self.context, tokens * h.patch_len
                _, state = net.read(*(t[:, context:context + rows] for t in inputs[:3]),
                                    inputs[3], state)
                self._lane_states[loop] = state
                return None
            forecast, state = net.segment(*inputs, tokens, state, memory_weights)
        self._lane_states[loop] = state.detach() if state is not None else None
        target, scored = segment_targets(batch["values"], batch["observed"], batch["scored"],
                                         self.context, h.patch_len, h.horizon)
        return forecast, target, scored

    def on_train_start(self) -> None:
        """``mode="stream"``: fit the linear path in closed form on the training origins, its
        penalty chosen on the validation origins (once: a resumed run keeps its weights)."""
        if self.hparams.mode != "stream" or bool(self.net.linear_fitted):
            return
        loader = self.trainer.train_dataloader
        dataset = getattr(loader, "dataset", None)
        if not isinstance(dataset, LaneSegments):
            raise ValueError("mode='stream' trains on LaneSegments batches; use "
                             "TimeSeriesDataModule(mode='stream')")
        lookback = self.hparams.linear_lookback
        windows, targets = dataset.examples(lookback)
        validation = self._validation_lanes()
        held_out = validation.examples(lookback) if validation is not None else (None, None)
        self.net.fit_linear(windows.to(self.device), targets.to(self.device),
                            *(t.to(self.device) if t is not None else None for t in held_out))

    def _validation_lanes(self) -> LaneSegments | None:
        """The validation lanes of this fit: the datamodule's, or the validation loader's."""
        datamodule = self.trainer.datamodule
        dataset = getattr(datamodule, "datasets", {}).get("val") if datamodule else None
        if dataset is None:
            loaders = self._val_loaders(setup=True)
            loader = loaders[0] if isinstance(loaders, (list, tuple)) and loaders else loaders
            dataset = getattr(loader, "dataset", None)
        return dataset if isinstance(dataset, LaneSegments) and dataset.scored else None

    def _val_loaders(self, setup: bool = False):
        """The Trainer's validation loaders, or None when the fit has no validation data."""
        try:
            if setup:
                self.trainer.fit_loop.epoch_loop.val_loop.setup_data()
            return self.trainer.val_dataloaders
        except MisconfigurationException:
            return None

    @torch.no_grad()
    def on_fit_end(self) -> None:
        """``mode="stream"``: choose how much of the memory path's correction to add, on the
        validation origins (with the best weights restored): the share in
        ``MEMORY_WEIGHTS`` of lowest validation MSE (pinball loss for quantile models, whose
        band lives in the memory path). 0 is the linear path alone, so where the
        memory does not help on validation the forecast falls back to the linear model."""
        if self.hparams.mode != "stream" or not self.net.memory:
            return
        loaders = self._val_loaders()
        if not loaders:  # fitted without validation data: nothing to choose
            return
        loader = loaders[0] if isinstance(loaders, (list, tuple)) else loaders
        errors = torch.zeros(len(MEMORY_WEIGHTS), dtype=torch.float64, device=self.device)
        count = torch.zeros((), dtype=torch.float64, device=self.device)
        was_training = self.training
        self.eval()
        for batch in loader:
            batch = {k: v.to(self.device) for k, v in batch.items()}
            segment = self._segment(batch, "calibrate", MEMORY_WEIGHTS)
            if segment is None:
                continue
            forecast, target, scored = segment
            if self.quantiles:  # the pinball loss: the band, not only the median, must fit
                levels = torch.as_tensor(self.quantiles, device=forecast.device)
                loss = pinball(forecast, target[None].expand(forecast.shape[:-1]),
                               levels).sum(-1)
            else:
                loss = (self.point(forecast) - target) ** 2  # (W, B, O, H)
            errors += (loss * scored).flatten(1).sum(1).double()
            count += scored.sum().double()
        self.train(was_training)
        errors = self.trainer.strategy.reduce(errors, reduce_op="sum")
        count = self.trainer.strategy.reduce(count, reduce_op="sum")
        if count > 0:
            self.net.memory_weight.fill_(MEMORY_WEIGHTS[int(torch.argmin(errors))])

    def on_train_epoch_start(self) -> None:
        dataset = getattr(self.trainer.train_dataloader, "dataset", None)
        if isinstance(dataset, LaneSegments):
            dataset.set_epoch(self.current_epoch)  # the lane grouping of this epoch

    def training_step(self, batch: dict[str, Tensor], batch_index: int) -> Tensor:
        if self.hparams.mode == "stream":
            forecast, target, scored = self._segment(batch, "train")
            loss = forecast_loss(self.loss_name, forecast, target, scored, self.quantiles)
            if not bool(scored.any()):
                loss = forecast.sum() * 0.0  # every rank takes a step (DDP)
            if int(batch["segment"]) > 0:
                # The memory's start (M_0, persistent tokens) only acts in a lane's first
                # segment; a zero term keeps it in the graph, as DDP wants every parameter.
                loss = loss + 0.0 * sum(p.sum() for p in self._stream_start_parameters)
            self.log("train_loss", loss, prog_bar=True, batch_size=int(scored.any(-1).sum()))
            return loss
        forecast = self(batch)
        loss = forecast_loss(self.loss_name, forecast, batch["target"],
                             batch["target_observed"], self.quantiles)
        self.log("train_loss", loss, prog_bar=True, batch_size=forecast.shape[0])
        return loss

    def _evaluate(self, batch: dict[str, Tensor], stage: str) -> None:
        if self.hparams.mode == "stream":
            segment = self._segment(batch, stage)
            if segment is None or not bool(segment[2].any()):
                return
            forecast, target, observed = segment
            target = target[observed]
        else:
            forecast = self(batch)
            observed = batch["target_observed"]
            target = batch["target"][observed]
        metrics = getattr(self, f"{stage}_metrics")
        metrics.update(self.point(forecast)[observed], target)
        self.log_dict(metrics, batch_size=forecast.shape[0], prog_bar=stage == "val")
        if self.quantiles:
            pinball = getattr(self, f"{stage}_pinball")
            pinball.update(forecast[observed], target)
            self.log(f"{stage}_pinball", pinball, batch_size=forecast.shape[0])

    def validation_step(self, batch: dict[str, Tensor], batch_index: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_index: int) -> None:
        self._evaluate(batch, "test")

    def predict_step(self, batch: dict[str, Tensor], batch_index: int) -> Tensor:
        """The forecast from each window's origin (``mode="window"``), or from the end of
        each series (``mode="stream"``: one series a batch, ``(1, H, C[, Q])``)."""
        if self.hparams.mode == "stream":
            return stream_forecast(self.net, batch)[None]
        return self(batch)

    def configure_optimizers(self):
        return warmup_cosine_adamw(self, self.hparams.lr, self.hparams.weight_decay,
                                   self.hparams.warmup_fraction)

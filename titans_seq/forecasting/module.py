"""`ForecastingModule`: the Lightning training of a :class:`TitansForecastNet`."""

from __future__ import annotations

import lightning.pytorch as pl
from torch import Tensor
from torchmetrics import MeanAbsoluteError, MeanSquaredError, MetricCollection

from ..blocks.encoder import MODULE_ENCODER_OPTIONS, Variant
from ..optim import warmup_cosine_adamw
from ..training import RandomStateInCheckpoints, adopt_shapes, trainer_datamodule
from .losses import LossName, PinballLoss, forecast_loss
from .network import ChannelMode, TitansForecastNet


class ForecastingModule(RandomStateInCheckpoints, pl.LightningModule):
    """Multi-horizon forecasting with a Titans encoder (batches of
    :class:`~datamodules.timeseries.WindowDataset`).

    Parameters
    ----------
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
    loss : {"mse", "mae", "quantile"}
        Training loss; ``"quantile"`` is the pinball loss over ``quantiles`` and makes the
        median the point forecast (0.5 is added when absent).
    lr, weight_decay, warmup_fraction : float
        AdamW with a linear warm-up over ``warmup_fraction`` of the steps, then cosine decay.

    Validation and test log ``{stage}_mse``, ``{stage}_mae`` (torchmetrics, on the point
    forecast, in the datamodule's scaled units) and ``{stage}_pinball`` for quantile losses.
    """

    def __init__(self, n_channels: int | None = None, lookback: int = 96, horizon: int = 96,
                 warmup: int = 0, n_covariates: int = 0, n_static: int = 0,
                 patch_len: int = 8, channel_mode: ChannelMode = "independent",
                 revin: bool = True, head_dropout: float = 0.0, linear_skip: bool = False,
                 variant: Variant = "lmm",
                 dim: int = 64, depth: int = 2, heads: int = 4, memory_heads: int = 4,
                 memory_depth: int = 2, chunk_size: int = 4, max_lr: float | None = None,
                 window: int = 64, segment_len: int = 16, persistent_tokens: int = 4,
                 dropout: float = 0.1, loss: LossName = "mse",
                 quantiles: list[float] | None = None, lr: float = 1e-3,
                 weight_decay: float = 1e-4, warmup_fraction: float = 0.05) -> None:
        super().__init__()
        if loss not in ("mse", "mae", "quantile"):
            raise ValueError(f"loss must be 'mse', 'mae' or 'quantile', got {loss!r}")
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0 \
                or warmup % lookback:
            raise ValueError(f"warmup must be a multiple of lookback ({lookback}) >= 0, "
                             f"got {warmup!r}")
        if loss == "quantile":
            quantiles = sorted(set(quantiles or [0.1, 0.5, 0.9]) | {0.5})
            if not all(0 < q < 1 for q in quantiles):
                raise ValueError(f"quantiles must lie in (0, 1), got {quantiles}")
        else:
            quantiles = None
        self.save_hyperparameters()
        self.loss_name, self.quantiles = loss, quantiles
        self.net: TitansForecastNet | None = None
        if n_channels is not None:
            self._build()
        metrics = MetricCollection({"mse": MeanSquaredError(), "mae": MeanAbsoluteError()})
        self.val_metrics = metrics.clone(prefix="val_")
        self.test_metrics = metrics.clone(prefix="test_")
        if quantiles:
            self.val_pinball, self.test_pinball = PinballLoss(quantiles), PinballLoss(quantiles)

    def _build(self) -> None:
        h = self.hparams
        self.net = TitansForecastNet(
            h.n_channels, h.lookback, h.horizon, patch_len=h.patch_len,
            channel_mode=h.channel_mode, n_covariates=h.n_covariates, n_static=h.n_static,
            quantiles=self.quantiles, revin=h.revin, head_dropout=h.head_dropout,
            linear_skip=h.linear_skip, **{name: h[name] for name in MODULE_ENCODER_OPTIONS})

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
        for name in ("lookback", "horizon", "warmup"):
            if getattr(data, name) != h[name]:
                raise ValueError(f"the datamodule's {name} is {getattr(data, name)}, the "
                                 f"model's {h[name]}; set them equal")
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

    def training_step(self, batch: dict[str, Tensor], batch_index: int) -> Tensor:
        forecast = self(batch)
        loss = forecast_loss(self.loss_name, forecast, batch["target"],
                             batch["target_observed"], self.quantiles)
        self.log("train_loss", loss, prog_bar=True, batch_size=forecast.shape[0])
        return loss

    def _evaluate(self, batch: dict[str, Tensor], stage: str) -> None:
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
        return self(batch)

    def configure_optimizers(self):
        return warmup_cosine_adamw(self, self.hparams.lr, self.hparams.weight_decay,
                                   self.hparams.warmup_fraction)

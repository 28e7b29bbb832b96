"""`ForecastingModule`: the Lightning training of a forecasting network."""

from __future__ import annotations

from typing import Any, Sequence

import lightning.pytorch as pl
from lightning.fabric.utilities.exceptions import MisconfigurationException
import torch
from torch import Tensor
from torchmetrics import MeanAbsoluteError, MeanSquaredError, MetricCollection

from datamodules.checks import integer

from ..optim import warmup_cosine_adamw
from ..training import RandomStateInCheckpoints, adopt_shapes, trainer_datamodule
from .config import ForecastConfig
from .interface import BatchForecast, ForecastNetwork
from .losses import PinballLoss, forecast_loss, pinball


class ForecastingModule(RandomStateInCheckpoints, pl.LightningModule):
    """Multi-horizon forecasting with a Titans encoder.

    The network is the one ``config`` describes (its layout's ``mode`` picks it; see
    :class:`~titans_seq.forecasting.ForecastConfig`), and the datamodule must lay the data out
    alike (``TimeSeriesDataModule.layout == config.layout``, checked at fit):

    - ``mode="stream"`` (default): a :class:`LongMemoryForecastNet`. The memory reads every
      series from its first row; batches are :class:`~datamodules.timeseries.LaneSegments`
      in time order, the memory state is carried from one segment to the next (detached:
      truncated back-propagation through time) and the loss is taken at every origin of a
      segment. Validation and test forecast every origin of their part with the memory having
      read everything before it (and still learning, as at prediction time). Training starts
      with the linear path's closed-form ridge fit, and ends by choosing, on validation, how
      much of the memory path's correction to keep.
    - ``mode="window"``: a :class:`TitansForecastNet` on fixed windows
      (:class:`~datamodules.timeseries.WindowDataset`) whose memory reads ``warmup +
      lookback`` rows: the ablation without long memory.

    Parameters
    ----------
    config : ForecastConfig or dict, optional
        The network and its training (a dict of its fields, nested for ``layout`` and
        ``encoder``, as checkpoints hold it); None: the defaults.
    n_channels, n_covariates, n_static : int
        Shapes of the data (``TimeSeriesDataModule.n_channels`` and so on). ``n_channels=None``
        takes all three from the datamodule the Trainer runs with (see
        :meth:`configure_model`).
    options
        Settings that replace the config's, named flat (``horizon=48, dim=32``; see
        :meth:`ForecastConfig.with_`): ``ForecastingModule(n_channels=7, horizon=48)`` is
        ``ForecastingModule(ForecastConfig().with_(horizon=48), n_channels=7)``.

    Attributes
    ----------
    frozen_from : int, optional
        A row after which evaluation reads without writing to the memory (the ablation
        "memory frozen after fit"; ``mode="stream"``).

    Validation and test log ``{stage}_mse``, ``{stage}_mae`` (torchmetrics, on the point
    forecast, in the datamodule's scaled units) and ``{stage}_pinball`` for quantile losses.
    """

    def __init__(self, config: ForecastConfig | None = None, n_channels: int | None = None,
                 n_covariates: int = 0, n_static: int = 0, **options: Any) -> None:
        super().__init__()
        self.config = ForecastConfig.coerce(config)
        if options:
            self.config = self.config.with_(**options)
        n_channels = integer("n_channels", n_channels, optional=True)
        n_covariates = integer("n_covariates", n_covariates, 0)
        n_static = integer("n_static", n_static, 0)
        # Plain values (checkpoints load with torch.load(weights_only=True)); the options are
        # in the config.
        config, options = self.config.to_dict(), {}
        self.save_hyperparameters()
        self.quantiles = self.config.quantile_levels
        self.net: ForecastNetwork | None = None
        # Each loop's state between batches (mode="stream": the lanes' memory between
        # segments), and the row from which evaluation stops writing to the memory.
        self._carried: dict[str, Any] = {}
        self.frozen_from: int | None = None
        if n_channels is not None:
            self._build()
        metrics = MetricCollection({"mse": MeanSquaredError(), "mae": MeanAbsoluteError()})
        self.val_metrics = metrics.clone(prefix="val_")
        self.test_metrics = metrics.clone(prefix="test_")
        if self.quantiles:
            self.val_pinball = PinballLoss(self.quantiles)
            self.test_pinball = PinballLoss(self.quantiles)

    @property
    def context(self) -> int:
        """Rows before an origin that a forecast reads (besides the memory)."""
        return self.config.layout.context

    def _build(self) -> None:
        h = self.hparams
        self.net = self.config.network(h.n_channels, h.n_covariates, h.n_static)

    def configure_model(self) -> None:
        """With ``n_channels=None``, take ``n_channels``, ``n_covariates`` and ``n_static``
        from the Trainer's :class:`~datamodules.TimeSeriesDataModule` (the CLI's way: a config
        names the data once); they are then saved with the hyper-parameters, so
        ``load_from_checkpoint`` rebuilds the same network."""
        if self.net is not None:
            return
        data = trainer_datamodule(self, "n_channels", "pass n_channels, or train with a "
                                  "TimeSeriesDataModule to take it from")
        mismatch = self.config.layout.mismatch(data.layout)
        if mismatch:
            name, mine, theirs = mismatch
            raise ValueError(f"the datamodule's {name} is {theirs!r}, the model's {mine!r}; "
                             "set them equal")
        adopt_shapes(self, dict(n_channels=data.n_channels, n_covariates=data.n_covariates,
                                n_static=data.n_static))
        self._build()

    @property
    def median_index(self) -> int | None:
        return self.quantiles.index(0.5) if self.quantiles else None

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        """The forecasts of a prediction batch: ``(B, H, C)`` or ``(B, H, C, Q)``."""
        return self.net.predict_batch(batch)

    def point(self, forecast: Tensor) -> Tensor:
        """The point forecast (the median for quantile models), ``(..., H, C)``."""
        return forecast[..., self.median_index] if self.quantiles else forecast

    def _forecasts(self, batch: dict[str, Tensor], loop: str,
                   shares: Sequence[float] | None = None) -> BatchForecast:
        """The network's forecasts of a batch, continuing the loop's carried state."""
        training = loop == "train"
        result = self.net.batch_forecasts(batch, self._carried.get(loop), training=training,
                                          frozen_from=None if training else self.frozen_from,
                                          shares=shares)
        self._carried[loop] = result.state
        return result

    # -- the training's start and end ------------------------------------------------------
    def on_train_start(self) -> None:
        """The network's start of training (``mode="stream"``: the linear path's closed-form
        fit on the training origins, its penalty chosen on the validation origins)."""
        dataset = getattr(self.trainer.train_dataloader, "dataset", None)
        self.net.start_training(dataset, self._validation_dataset)

    def _validation_dataset(self) -> Any:
        """The validation dataset of this fit: the datamodule's, or the validation loader's."""
        datamodule = self.trainer.datamodule
        dataset = getattr(datamodule, "datasets", {}).get("val") if datamodule else None
        if dataset is None:
            loaders = self._val_loaders(setup=True)
            loader = loaders[0] if isinstance(loaders, (list, tuple)) and loaders else loaders
            dataset = getattr(loader, "dataset", None)
        return dataset

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
        """Choose how much of the memory path's correction to add (``mode="stream"``), on the
        validation origins (with the best weights restored): the share of lowest validation
        MSE (pinball loss for quantile models, whose band lives in the memory path). 0 is the
        linear path alone, so where the memory does not help on validation the forecast falls
        back to the linear model."""
        shares = self.net.memory_shares
        loaders = self._val_loaders() if shares else None
        if not loaders:  # nothing to choose, or fitted without validation data
            return
        loader = loaders[0] if isinstance(loaders, (list, tuple)) else loaders
        errors = torch.zeros(len(shares), dtype=torch.float64, device=self.device)
        count = torch.zeros((), dtype=torch.float64, device=self.device)
        was_training = self.training
        self.eval()
        for batch in loader:
            batch = {k: v.to(self.device) for k, v in batch.items()}
            result = self._forecasts(batch, "calibrate", shares)
            if result.forecast is None:
                continue
            forecast, target, scored = result.forecast, result.target, result.scored
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
            self.net.set_memory_share(shares[int(torch.argmin(errors))])

    def on_train_epoch_start(self) -> None:
        dataset = getattr(self.trainer.train_dataloader, "dataset", None)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(self.current_epoch)  # the lane grouping of this epoch

    # -- the steps -------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Tensor], batch_index: int) -> Tensor:
        result = self._forecasts(batch, "train")
        loss = forecast_loss(self.config.loss, result.forecast, result.target, result.scored,
                             self.quantiles)
        if not bool(result.scored.any()):
            loss = result.forecast.sum() * 0.0  # every rank takes a step (DDP)
        loss = loss + result.anchor
        self.log("train_loss", loss, prog_bar=True, batch_size=result.count)
        return loss

    def _evaluate(self, batch: dict[str, Tensor], stage: str) -> None:
        result = self._forecasts(batch, stage)
        if result.forecast is None or not bool(result.scored.any()):
            return
        forecast, observed = result.forecast, result.scored
        target = result.target[observed]
        metrics = getattr(self, f"{stage}_metrics")
        metrics.update(self.point(forecast)[observed], target)
        self.log_dict(metrics, batch_size=forecast.shape[0], prog_bar=stage == "val")
        if self.quantiles:
            pinball_metric = getattr(self, f"{stage}_pinball")
            pinball_metric.update(forecast[observed], target)
            self.log(f"{stage}_pinball", pinball_metric, batch_size=forecast.shape[0])

    def validation_step(self, batch: dict[str, Tensor], batch_index: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_index: int) -> None:
        self._evaluate(batch, "test")

    def predict_step(self, batch: dict[str, Tensor], batch_index: int) -> Tensor:
        """The forecast from each window's origin (``mode="window"``), or from the end of
        each series (``mode="stream"``: one series a batch, ``(1, H, C[, Q])``)."""
        return self.net.predict_batch(batch)

    def configure_optimizers(self):
        return warmup_cosine_adamw(self, self.config.lr, self.config.weight_decay,
                                   self.config.warmup_fraction)

"""`ForecastingModule`: the Lightning training of a forecasting network."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Sequence

import lightning.pytorch as pl
from lightning.fabric.utilities.exceptions import MisconfigurationException
import torch
from torch import Tensor
from torchmetrics import MeanAbsoluteError, MeanSquaredError, MetricCollection

from datamodules.checks import integer
from datamodules.timeseries import PreparedSeries

from ..optim import warmup_cosine_adamw
from ..training import RandomStateInCheckpoints, adopt_shapes, trainer_datamodule
from .config import ForecastConfig
from .evaluation import calibration_errors
from .interface import BatchForecast, Forecaster, ForecastNetwork
from .losses import PinballLoss, forecast_loss, pinball
from .online import ErrorMemory, ErrorMemorySettings, choose_error_memory


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

    With ``config.learn_errors`` (the default), training ends by choosing the settings of a
    test-time regression memory of the network's errors on the validation part
    (:attr:`error_memory`, saved in checkpoints), and :meth:`forecaster` is the network with
    it. A datamodule with ``test_online=True`` gives the test part as whole series, and the
    test loop then forecasts every test origin as the series arrive, learning from each
    forecast's realised errors once its rows are in (the online protocol's metric).

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
        "memory frozen after fit"; ``mode="stream"``, and the error memory of an online test).
    error_memory : ErrorMemorySettings or None
        The error memory's settings, chosen after training (None: not chosen yet, or
        ``config.learn_errors=False``).

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
        self.error_memory: ErrorMemorySettings | None = None
        self._chosen = False  # whether the choices after training were made (or loaded)
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

    # -- what forecasts as series arrive -----------------------------------------------------
    def forecaster(self, learn: bool = True) -> Forecaster:
        """The network, with its error memory when one was chosen (``learn=False``: the error
        memory reads without learning)."""
        if self.error_memory is None:
            return self.net
        return ErrorMemory(self.net, self.error_memory, learn)

    @torch.no_grad()
    def choose_error_memory(self, prepared: Sequence[PreparedSeries], starts: Sequence[int]
                            ) -> Any:
        """Choose :attr:`error_memory` on the origins of each series from ``starts[i]`` on (the
        validation part) when ``config.learn_errors``, and return the calibration errors
        ``(n, H, C)`` of :meth:`forecaster` there (None where there is no such origin)."""
        was_training = self.training
        self.eval()
        try:
            if self.config.learn_errors:
                self.error_memory, errors = choose_error_memory(self.net, prepared, starts,
                                                                self.device)
            else:
                self.error_memory, errors = None, calibration_errors(self.net, prepared,
                                                                     starts, self.device)
        finally:
            self.train(was_training)
        self._chosen = True
        return errors

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

    def on_fit_end(self) -> None:
        """The choices made on validation after training (with the best weights restored):
        the memory path's share (:meth:`choose_memory_share`), then the error memory (on the
        datamodule's series, when the Trainer has a
        :class:`~datamodules.TimeSeriesDataModule`)."""
        self.choose_memory_share()
        self._choose_error_memory_from_datamodule()

    def on_test_start(self) -> None:
        """A model restored from a checkpoint saved during training (before the choices made
        at its end) makes them first, on the datamodule's validation part."""
        data = getattr(self.trainer, "datamodule", None)
        if not self._chosen and hasattr(data, "val_dataloader"):
            self.choose_memory_share(data.val_dataloader())
            self._choose_error_memory_from_datamodule()

    def _choose_error_memory_from_datamodule(self) -> None:
        if not self.config.learn_errors:  # nothing to choose (and no errors wanted here)
            self.error_memory, self._chosen = None, True
            return
        data = getattr(self.trainer, "datamodule", None)
        if data is None or not hasattr(data, "series_until") or not data.prepared:
            return  # plain loaders: the caller chooses (TitansForecaster.fit does)
        # the series up to the end of their validation parts: the test rows are not seen
        series = data.series_until("val")
        starts = [data.borders_of(int(item.values.shape[0]))[0] for item in data.prepared]
        self.choose_error_memory(series, starts)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["after_training"] = {
            "chosen": self._chosen,
            "error_memory": None if self.error_memory is None else asdict(self.error_memory)}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        after = checkpoint.get("after_training", {})
        self._chosen = bool(after.get("chosen", False))
        memory = after.get("error_memory")
        self.error_memory = None if memory is None else ErrorMemorySettings(**memory)

    @torch.no_grad()
    def choices_after_training(self, data: Any) -> Any:
        """The choices made after training — the memory path's share, then the error
        memory — on the validation part of ``data`` (a set-up
        :class:`~datamodules.TimeSeriesDataModule`), unless this module made them at the end
        of its fit; and the calibration errors ``(n, H, C)`` of :meth:`forecaster` on the
        validation origins (None where there is none). The test rows are never read."""
        series = data.series_until("val")
        starts = [data.borders_of(int(item.values.shape[0]))[0] for item in data.prepared]
        if not self._chosen:
            self.choose_memory_share(data.val_dataloader())
            return self.choose_error_memory(series, starts)
        return calibration_errors(self.forecaster(), series, starts, self.device)

    def choose_memory_share(self, loaders: Any = None) -> None:
        """Choose how much of the memory path's correction to add (``mode="stream"``), on the
        validation origins (``loaders``; default: the Trainer's validation loaders): the share
        of lowest validation MSE (pinball loss for quantile models, whose band lives in the
        memory path). 0 is the linear path alone, so where the memory does not help on
        validation the forecast falls back to the linear model."""
        shares = self.net.memory_shares
        if shares and loaders is None:
            loaders = self._val_loaders()
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
        if self._trainer is not None:  # every rank's origins (outside a Trainer: these)
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
        if "origins" in batch:  # a whole series, evaluated online
            return self._evaluate_online(batch, stage)
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

    @torch.no_grad()
    def _evaluate_online(self, batch: dict[str, Tensor], stage: str) -> None:
        """Score the forecasts at every origin ``[first, stop)`` of a whole series
        (:class:`~datamodules.timeseries.parts.OnlineTestSeries`) made as it arrives: by
        :meth:`forecaster`, whose memories learn from every row before each origin (and
        from every forecast whose rows are all in), except after :attr:`frozen_from`."""
        series = PreparedSeries(batch["values"], batch["observed"], batch["covariates"],
                                batch["static"])
        first, stop = (int(origin) for origin in batch["origins"])
        forecast = self.forecaster().origin_forecasts(series, first, stop,
                                                      frozen_from=self.frozen_from)
        steps = torch.arange(first, stop, device=self.device)[:, None] \
            + torch.arange(self.config.layout.horizon, device=self.device)  # (O, H)
        target, observed = series.values[steps], series.observed[steps]  # (O, H, C)
        # every process forecasts every origin (the memories read in order); each scores
        # its share of them
        share = slice(self.trainer.global_rank, None, self.trainer.world_size)
        forecast, target, observed = forecast[share], target[share], observed[share]
        metrics = getattr(self, f"{stage}_metrics")
        metrics.update(self.point(forecast)[observed], target[observed])
        self.log_dict(metrics, batch_size=forecast.shape[0])
        if self.quantiles:
            pinball_metric = getattr(self, f"{stage}_pinball")
            pinball_metric.update(forecast[observed], target[observed])
            self.log(f"{stage}_pinball", pinball_metric, batch_size=forecast.shape[0])

    def validation_step(self, batch: dict[str, Tensor], batch_index: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_index: int) -> None:
        self._evaluate(batch, "test")

    def predict_step(self, batch: dict[str, Tensor], batch_index: int) -> Tensor:
        """The forecasts of a predict batch, scaled as the data are: from each window's
        origin (``mode="window"``, ``(B, H, C[, Q])``), or from the end of a whole series
        (``mode="stream"``: one series a batch, ``(1, H, C[, Q])``), by the network alone
        (without the error memory, which :meth:`forecaster` adds).
        ``TimeSeriesDataModule``'s predict stage forecasts from the end of each series;
        :class:`~titans_seq.writers.PredictionWriter` writes the forecasts in the data's
        units (``titans-seq predict --output FILE``)."""
        return self.net.predict_batch(batch)

    def configure_optimizers(self):
        return warmup_cosine_adamw(self, self.config.lr, self.config.weight_decay,
                                   self.config.warmup_fraction)

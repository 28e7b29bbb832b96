"""Forecasting with the Titans memory: network, losses, Lightning module, estimator."""

from .estimator import BacktestResult, TitansForecaster
from .losses import PinballLoss, forecast_loss, pinball
from .module import ForecastingModule
from .long_memory import LongMemoryForecastNet
from .network import TitansForecastNet
from .revin import RevIN

__all__ = ["BacktestResult", "ForecastingModule", "LongMemoryForecastNet", "PinballLoss", "RevIN",
           "TitansForecaster",
           "TitansForecastNet", "forecast_loss", "pinball"]

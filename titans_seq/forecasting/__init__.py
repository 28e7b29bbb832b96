"""Forecasting with the Titans memory: the layout and config, the network interface and its
two networks, losses, the Lightning module, the estimator."""

from .config import ForecastConfig
from .estimator import BacktestResult, TitansForecaster
from .interface import BatchForecast, ForecastNetwork, ForecastStream
from .long_memory import LongMemoryForecastNet
from .losses import PinballLoss, forecast_loss, pinball
from .module import ForecastingModule
from .network import TitansForecastNet
from .revin import RevIN

__all__ = ["BacktestResult", "BatchForecast", "ForecastConfig", "ForecastNetwork",
           "ForecastStream", "ForecastingModule", "LongMemoryForecastNet", "PinballLoss",
           "RevIN", "TitansForecastNet", "TitansForecaster", "forecast_loss", "pinball"]

"""Lightning datamodules of titans-seq and the example datasets the package embeds."""

from .datasets import load_etth1
from .timeseries import TimeSeriesDataModule, read_series

__all__ = ["TimeSeriesDataModule", "load_etth1", "read_series"]

"""Time-series input for forecasting: reading, splits, scaling, covariates, lazy windows."""

from .covariates import align_covariates, calendar_features, calendar_names, check_complete
from .datamodule import TimeSeriesDataModule, split_borders
from .layout import ForecastLayout
from .parts import forecast_datasets, part_origins, predict_dataset
from .frames import SeriesSet, Stream, read_series, read_stream, read_table
from .preparation import SeriesScaler, moments, prepare_series, safe_std, varies
from .streams import LaneSegments, segment_targets
from .windows import PreparedSeries, WindowDataset

__all__ = ["ForecastLayout", "LaneSegments", "PreparedSeries", "SeriesScaler", "SeriesSet",
           "Stream", "TimeSeriesDataModule", "WindowDataset", "align_covariates",
           "calendar_features", "calendar_names", "check_complete", "forecast_datasets",
           "moments", "part_origins", "predict_dataset", "prepare_series", "read_series",
           "read_stream", "read_table", "safe_std", "segment_targets", "split_borders",
           "varies"]

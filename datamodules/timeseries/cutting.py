"""A series as the caller gave it, without its last rows: what a cross-validation fits on at
each cutoff (each series of a long table loses the same number of rows from its end)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .frames import _datetime_column, _time_column, _to_pandas, read_table
from .times import _as_times


def without_last(data: Any, drop: int, *, time_col: str | None = None,
                 id_col: str | None = None, name: str = "y") -> Any:
    """``data`` (array, pandas or polars table or Series, CSV/Parquet path) without the last
    ``drop`` rows of each series: an array stays an array, anything else becomes a pandas
    frame (a Series a one-column frame read as one). A wide table's rows are in time order
    (the reader refuses others); a long table's rows are counted in time order within each
    series, whatever the table's order."""
    if isinstance(data, (str, Path)):
        data = read_table(data)
    data, _ = _to_pandas(data, name)
    if isinstance(data, np.ndarray):
        return data[:max(0, len(data) - drop)]
    id_name = id_col or "unique_id"
    if id_name not in data.columns:
        return data.iloc[:max(0, len(data) - drop)]
    time_name = _time_column(data, time_col, name) or _datetime_column(data, name)
    if time_name is None:  # the reader says what is missing
        return data
    times = pd.Series(_as_times(data[time_name], name, time_name), index=data.index)
    from_end = times.groupby(data[id_name], sort=False).rank(method="first", ascending=False)
    return data[from_end.to_numpy() > drop]


def covariates_without_last(X: Any, drop: int, rows: int, name: str = "X") -> Any:
    """Covariates ``X`` for the series cut by :func:`without_last`: an array of ``rows`` rows
    (one per row of the series) loses its last ``drop``; a table is matched by time, so it is
    kept whole."""
    if X is None:
        return None
    if isinstance(X, (str, Path)):
        return X
    frame, container = _to_pandas(X, name)
    if container == "numpy" and frame.shape[0] == rows:
        return frame[:rows - drop]
    return X

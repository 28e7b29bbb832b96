"""Reading forecasting input into one canonical form: a :class:`SeriesSet`.

Accepted input (see :func:`read_series`):

- a **wide** table: a time column (or a ``DatetimeIndex``) and numeric columns, one series
  whose channels are the columns; pandas or polars;
- a **long** table: ``unique_id``, ``ds`` and one or more target columns (``y``), several series
  stacked; pandas or polars;
- a numpy array ``(T,)`` or ``(T, C)``: one series without timestamps;
- a path to a CSV (``.csv``, ``.csv.gz``, ``.tsv``) or Parquet file holding a wide or long table.

Everything is checked here once, with errors that name the offending column, row or date and
say how to fix it: the estimators and the datamodule only ever see a valid :class:`SeriesSet`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import pandas as pd

from .times import _frequency, _untimed_start, _wall_clock, _zoned_times

Missing = Literal["error", "mask"]
TIME_COLUMNS = ("ds", "date", "datetime", "timestamp", "time")


@dataclass
class SeriesSet:
    """Series of equal channel count, each with its own length.

    Attributes
    ----------
    ids : list
        One identifier per series (the wide layout and arrays have one series, id ``0``).
    values : list of ndarray
        ``(T_i, C)`` float64 targets; NaN only where ``missing="mask"`` allowed it.
    times : list of ndarray or None
        ``(T_i,)`` ``datetime64[ns]`` timestamps, regular at ``freq``; None for arrays.
    future : list of ndarray or None
        ``(T_i, F)`` future-known covariates aligned with ``values``.
    static : ndarray or None
        ``(N, S)`` static covariates, one row per series.
    """

    ids: list
    values: list[np.ndarray]
    times: list[np.ndarray] | None = None
    future: list[np.ndarray] | None = None
    static: np.ndarray | None = None
    target_names: list[str] = field(default_factory=list)
    future_names: list[str] = field(default_factory=list)
    static_names: list[str] = field(default_factory=list)
    freq: Any = None  # a pandas offset
    layout: Literal["wide", "long", "array"] = "array"
    container: Literal["pandas", "polars", "numpy"] = "numpy"
    time_col: str | None = None
    id_col: str | None = None
    time_index: bool = False  # wide pandas input whose time was the index
    tz: str | None = None  # time zone of the input timestamps (kept internally in UTC)
    first_position: int = 0  # an untimed table's index at its first row (rows follow by 1)
    one_dimensional: bool = False  # an array (T,) or a pandas/polars Series

    @property
    def n_series(self) -> int:
        return len(self.values)

    @property
    def n_channels(self) -> int:
        return self.values[0].shape[1]

    @property
    def lengths(self) -> list[int]:
        return [len(v) for v in self.values]

    def output_times(self, times: np.ndarray) -> pd.DatetimeIndex:
        """Timestamps as the caller gave them: back in the input's time zone."""
        index = pd.DatetimeIndex(times)
        return index.tz_localize("UTC").tz_convert(self.tz) if self.tz else index

    def wall_clock(self, times: np.ndarray) -> pd.DatetimeIndex:
        """Timestamps as local wall-clock times (what calendar features read): in the input's
        time zone when it had one."""
        return pd.DatetimeIndex(_wall_clock(self.output_times(times)))

    def future_times(self, series: int, steps: int, after: int | None = None) -> np.ndarray:
        """The ``steps`` timestamps that follow row ``after`` (default: the last) of a series:
        a daily or longer step keeps the local time of day across daylight-saving changes."""
        if self.times is None:
            raise ValueError("this data has no timestamps, so future timestamps are unknown")
        last = pd.Timestamp(self.times[series][-1 if after is None else after])
        if self.tz:
            last = last.tz_localize("UTC").tz_convert(self.tz)
        latest = pd.Timestamp.max.floor("s")
        try:
            times = pd.date_range(last, periods=steps + 1, freq=self.freq)[1:]
            if self.tz:
                times = times.tz_convert("UTC").tz_localize(None)
        except (OverflowError, pd.errors.OutOfBoundsDatetime):
            times = None
        if times is None or len(times) != steps or (steps and times[-1] > latest):
            raise ValueError(f"the {steps} timestamps after {last} pass the latest time "
                             f"titans-seq keeps timestamps to ({latest.date()}); forecast fewer "
                             "rows or shift the dates")
        return times.as_unit("ns").to_numpy(dtype="datetime64[ns]")


def read_series(data: Any, *, target: str | Sequence[str] | None = None,
                time_col: str | None = None, id_col: str | None = None,
                future_covariates: Sequence[str] = (), static_covariates: Any = None,
                missing: Missing = "error", name: str = "y") -> SeriesSet:
    """Read ``data`` (wide or long pandas/polars table, array, CSV/Parquet path) into a
    :class:`SeriesSet`.

    Parameters
    ----------
    data
        The series; see the module docstring for the layouts.
    target : str or list of str, optional
        Target columns. Default: ``y`` for long tables (other columns are read only when
        named as covariates); for wide tables every column that is not the time or a
        covariate, each of which must then hold real numbers (a text, category or complex
        column is refused by name, never dropped).
    time_col : str, optional
        Time column. Default: the index of a pandas frame with a ``DatetimeIndex``, else the
        first of ``ds``, ``date``, ``datetime``, ``timestamp``, ``time`` that exists, else
        the table's one column of a datetime dtype.
    id_col : str, optional
        Series identifier of a long table. A table is long when it has this column (default
        name ``unique_id``).
    future_covariates : list of str
        Columns of ``data`` known in advance (prices, holidays, …).
    static_covariates : list of str or DataFrame, optional
        For long tables: columns of ``data`` constant within each series, or a table with the
        id column and one row per series.
    missing : {"error", "mask"}
        NaN in a target: ``"error"`` raises naming the rows; ``"mask"`` keeps them as missing
        observations (they are left out of the loss and zeroed in the input).
    name : str
        How errors refer to ``data``.
    """
    if missing not in ("error", "mask"):
        raise ValueError(f"missing must be 'error' or 'mask', got {missing!r}")
    if isinstance(data, (str, Path)):
        data, container = read_table(data), "pandas"
    else:
        data, container = _to_pandas(data, name)
    if isinstance(data, np.ndarray):
        if future_covariates or static_covariates is not None:
            raise ValueError("an array has no named covariate columns; pass covariates as a "
                             "separate X array to the estimator")
        return _from_array(data, missing, name)
    one_dimensional = bool(data.attrs.get("titans_series", False))
    if data.empty or len(data.columns) == 0:
        raise ValueError(f"{name} is empty: it needs at least one row and one column")
    if isinstance(data.columns, pd.MultiIndex):
        raise ValueError(f"{name} has multi-level columns; flatten them to one name per column "
                         "(e.g. frame.columns = ['_'.join(map(str, c)) for c in frame.columns])")
    repeated = data.columns[data.columns.duplicated()]
    if len(repeated):
        raise ValueError(f"{name} has several columns named {repeated[0]!r}; give each column "
                         "its own name")
    future_covariates = list(future_covariates)
    id_name = id_col or "unique_id"
    if id_name in data.columns:
        series = _from_long(data, id_name, target, time_col, future_covariates,
                            static_covariates, name)
    else:
        if id_col is not None:
            raise ValueError(f"{name} has no id column {id_col!r}; columns are "
                             f"{list(map(str, data.columns))}")
        if static_covariates is not None:
            raise ValueError("static covariates describe several series: pass a long table "
                             "(unique_id, ds, y) to use them")
        series = _from_wide(data, target, time_col, future_covariates, name)
    series.container = container
    series.one_dimensional = one_dimensional
    _check_values(series, missing, name)
    return series


def read_table(path: str | Path) -> pd.DataFrame:
    """A CSV (plain or gzipped; ``.tsv`` tab-separated) or Parquet file as a pandas frame."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no such file: {str(path)!r}")
    suffixes = "".join(path.suffixes).lower()
    parquet = ".parquet" in suffixes or suffixes.endswith(".pq")
    if not parquet and not any(kind in suffixes for kind in (".csv", ".tsv", ".txt")):
        raise ValueError(f"unknown file type {path.name!r}: expected .csv, .csv.gz, .tsv or "
                         ".parquet")
    separator = "\t" if ".tsv" in suffixes else ","
    try:
        if parquet:
            import polars as pl
            return _to_pandas(pl.read_parquet(path), str(path))[0]
        frame = pd.read_csv(path, sep=separator)
    except Exception as error:  # the reader's own message, with the file named
        raise ValueError(f"could not read {str(path)!r} as a table: {error}") from error
    _check_separator(frame, path, separator)
    return frame


def _check_separator(frame: pd.DataFrame, path: Path, separator: str) -> None:
    """A file read as one column whose name holds another separator was written with that
    one (a ';'-separated CSV, say): refuse it with the separator named."""
    if frame.shape[1] != 1:
        return
    header = str(frame.columns[0])
    for other, described in ((";", "';'"), ("\t", "a tab"), ("|", "'|'"), (",", "','")):
        if other != separator and other in header:
            raise ValueError(f"{str(path)!r} reads as one column named {header[:60]!r}: its "
                             f"fields are separated by {described}, not "
                             f"{'a tab' if separator == chr(9) else repr(separator)}; save it "
                             f"comma-separated (tab-separated as .tsv), or read it with "
                             f"pandas.read_csv(path, sep={other!r}) and pass the frame")


def _to_pandas(data: Any, name: str) -> tuple[Any, str]:
    """pandas/polars/numpy input as a pandas frame (or an ndarray), and its container name."""
    if isinstance(data, pd.DataFrame):
        return data, "pandas"
    if isinstance(data, pd.Series):
        frame = data.to_frame(name=data.name if data.name is not None else "y")
        frame.attrs["titans_series"] = True
        return frame, "pandas"
    module = type(data).__module__.split(".")[0]
    if module == "polars":
        import polars as pl
        if isinstance(data, pl.LazyFrame):
            data = data.collect()
        if isinstance(data, pl.Series):
            data = data.to_frame()
        # column by column: to_pandas() would need pyarrow, which we do not depend on
        return pd.DataFrame({c: _polars_column(data[c]) for c in data.columns}), "polars"
    if isinstance(data, (list, tuple)):
        data = np.asarray(data)
    if isinstance(data, np.ndarray):
        return data, "numpy"
    raise TypeError(f"{name} must be a pandas or polars DataFrame, a numpy array or a path to a "
                    f"CSV/Parquet file, got {type(data).__name__}")


def _polars_column(column: Any) -> Any:
    """A polars column as numpy values, or as pandas times in their zone (numpy has none)."""
    zone = getattr(column.dtype, "time_zone", None)
    if zone:
        utc = column.dt.convert_time_zone("UTC").dt.replace_time_zone(None).to_numpy()
        return pd.DatetimeIndex(utc).tz_localize("UTC").tz_convert(zone)
    return column.to_numpy()


def _from_array(array: np.ndarray, missing: Missing, name: str) -> SeriesSet:
    if not is_real_dtype(array.dtype):
        raise TypeError(f"{name} must hold real numbers, got an array of dtype {array.dtype}"
                        + ("; forecast the real and imaginary parts as two columns"
                           if np.issubdtype(array.dtype, np.complexfloating) else ""))
    if array.ndim not in (1, 2):
        raise ValueError(f"{name} must be (T,) or (T, C), got shape {array.shape}; for "
                         "several series pass a long table (unique_id, ds, y)")
    if array.size == 0:
        raise ValueError(f"{name} is empty (shape {array.shape})")
    values = array.astype(np.float64).reshape(array.shape[0], -1)  # (T,) -> (T, 1)
    series = SeriesSet(ids=[0], values=[values],
                       target_names=[f"y{i}" for i in range(values.shape[1])]
                       if values.shape[1] > 1 else ["y"], one_dimensional=array.ndim == 1)
    _check_values(series, missing, name)
    return series


def _time_column(frame: pd.DataFrame, time_col: str | None, name: str) -> str | None:
    if time_col is not None:
        if time_col not in frame.columns:
            raise ValueError(f"{name} has no time column {time_col!r}; columns are "
                             f"{list(map(str, frame.columns))}")
        return time_col
    found = next((c for c in TIME_COLUMNS if c in frame.columns), None)
    if found is not None and pd.api.types.is_numeric_dtype(frame[found].dtype):
        raise ValueError(f"{name}: column {found!r} holds numbers, not timestamps; convert it "
                         "to datetimes, or rename it if it is a value to forecast")
    return found


def is_real_dtype(dtype: Any) -> bool:
    """Whether a column or array of ``dtype`` holds real numbers (bools, ints, floats, and
    pandas' nullable versions of them; not complex numbers, text, categories or times)."""
    return (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)) \
        and not pd.api.types.is_complex_dtype(dtype)


def _not_real(frame: pd.DataFrame, column: Any, name: str, what: str) -> TypeError:
    dtype = frame[column].dtype
    hint = "convert it with pd.to_numeric"
    if pd.api.types.is_complex_dtype(dtype):
        hint = "forecast its real and imaginary parts as two columns"
    elif pd.api.types.is_datetime64_any_dtype(dtype):
        hint = "it holds times; name the time column with time_col=…"
    elif pd.api.types.is_string_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
        hint = ("it holds text; if it is numbers stored as text, convert it with "
                "pd.to_numeric; if it names series, y is a long table: pass id_col="
                f"{column!r} (and time_col=…, target=…)")
    return TypeError(f"{name}: {what} column {column!r} must hold real numbers, got {dtype}; "
                     f"{hint}")


def _numeric(frame: pd.DataFrame, columns: Sequence[str], name: str, what: str) -> np.ndarray:
    for column in columns:
        if column not in frame.columns:
            raise ValueError(f"{name} has no {what} column {column!r}; columns are "
                             f"{list(map(str, frame.columns))}")
        if not is_real_dtype(frame[column].dtype):
            raise _not_real(frame, column, name, what)
    return frame[list(columns)].to_numpy(dtype=np.float64, na_value=np.nan)


def _datetime_column(frame: pd.DataFrame, name: str) -> Any:
    """The one column of a datetime dtype, if the frame has exactly one (else None)."""
    found = [c for c in frame.columns if pd.api.types.is_datetime64_any_dtype(frame[c].dtype)]
    if len(found) > 1:
        raise ValueError(f"{name} has several datetime columns {found}; say which is the time "
                         "with time_col=…")
    return found[0] if found else None


def _from_wide(frame: pd.DataFrame, target: str | Sequence[str] | None, time_col: str | None,
               future_covariates: list[str], name: str) -> SeriesSet:
    time_index = time_col is None and isinstance(frame.index, pd.DatetimeIndex)
    time_name = None if time_index else _time_column(frame, time_col, name)
    if time_name is None and not time_index:
        time_name = _datetime_column(frame, name)
    first_position = 0
    if time_name is None and not time_index:
        first_position = _untimed_start(frame.index, name)
    if target is None:
        target = [c for c in frame.columns if c != time_name and c not in future_covariates]
        if not target:
            raise ValueError(f"{name} has no column to forecast besides its time column; "
                             f"columns are {list(map(str, frame.columns))}")
        for column in target:  # every other column is forecast: none is dropped unsaid
            if not is_real_dtype(frame[column].dtype):
                raise _not_real(frame, column, name, "target")
    target = [target] if isinstance(target, str) else list(target)
    values = _numeric(frame, target, name, "target")
    future = _numeric(frame, future_covariates, name, "covariate") if future_covariates else None
    times = None
    tz = None
    if time_index:
        times, tz = _zoned_times(frame.index, name, "index")
    elif time_name is not None:
        times, tz = _zoned_times(frame[time_name], name, time_name)
    series = SeriesSet(ids=[0], values=[values], future=None if future is None else [future],
                       target_names=list(target),
                       future_names=[str(c) for c in future_covariates], layout="wide",
                       time_col=time_name, time_index=time_index, tz=tz,
                       first_position=first_position)
    if times is not None:
        series.times = [times]
        series.freq = _frequency(times, name, "", tz)
    return series


def _from_long(frame: pd.DataFrame, id_col: str, target: str | Sequence[str] | None,
               time_col: str | None, future_covariates: list[str], static_covariates: Any,
               name: str) -> SeriesSet:
    time_name = _time_column(frame, time_col, name) or _datetime_column(frame, name)
    if time_name is None:
        raise ValueError(f"{name} looks long (it has {id_col!r}) but has no time column; name "
                         "it with time_col=… (default 'ds')")
    target = ["y"] if target is None else [target] if isinstance(target, str) else list(target)
    if frame[id_col].isna().any():
        raise ValueError(f"{name}: the id column {id_col!r} has missing values")
    if frame[id_col].map(type).nunique() > 1:
        kinds = sorted({type(v).__name__ for v in frame[id_col]})
        raise TypeError(f"{name}: the id column {id_col!r} mixes {kinds}; use one type for "
                        "the series ids (e.g. all str)")
    times, tz = _zoned_times(frame[time_name], name, time_name)
    frame = frame.assign(**{time_name: times})
    frame = frame.sort_values([id_col, time_name], kind="stable")
    duplicated = frame.duplicated([id_col, time_name])
    if duplicated.any():
        row = frame[duplicated].iloc[0]
        raise ValueError(f"{name}: series {row[id_col]!r} has two rows at {row[time_name]}; "
                         "keep one row per (id, time)")
    groups = [(key, part) for key, part in frame.groupby(id_col, sort=False)]
    series = SeriesSet(ids=[key for key, _ in groups], values=[], times=[],
                       future=[] if future_covariates else None,
                       target_names=list(target),
                       future_names=[str(c) for c in future_covariates], layout="long",
                       time_col=time_name, id_col=id_col, tz=tz)
    frequencies = set()
    for key, part in groups:
        series.values.append(_numeric(part, target, name, "target"))
        times = part[time_name].to_numpy(dtype="datetime64[ns]")
        series.times.append(times)
        frequencies.add(_frequency(times, name, f" (series {key!r})", tz))
        if future_covariates:
            series.future.append(_numeric(part, future_covariates, name, "covariate"))
    frequencies.discard(None)
    if len(frequencies) > 1:
        raise ValueError(f"{name}: the series have different frequencies "
                         f"{sorted(map(str, frequencies))}; resample them to one")
    series.freq = frequencies.pop() if frequencies else None
    if static_covariates is not None:
        series.static, series.static_names = _static(frame, groups, id_col, static_covariates,
                                                     name)
    return series


def _static(frame: pd.DataFrame, groups: list, id_col: str, static: Any,
            name: str) -> tuple[np.ndarray, list[str]]:
    if isinstance(static, (list, tuple)):
        columns = list(static)
        rows = []
        for key, part in groups:
            block = _numeric(part, columns, name, "static covariate")
            if not np.isfinite(block).all():
                raise ValueError(f"{name}: static covariates {columns} are NaN or infinite in "
                                 f"series {key!r}")
            if not (block == block[:1]).all():
                raise ValueError(f"{name}: static covariates {columns} vary within series "
                                 f"{key!r}; a static covariate has one value per series")
            rows.append(block[0])
        return np.stack(rows), [str(c) for c in columns]
    table, _ = _to_pandas(static, "static_covariates")
    if not isinstance(table, pd.DataFrame) or id_col not in table.columns:
        raise ValueError(f"static_covariates must be column names or a table with the id "
                         f"column {id_col!r} and one row per series")
    if table[id_col].duplicated().any():
        raise ValueError("static_covariates has several rows for one series; keep one per id")
    columns = [c for c in table.columns if c != id_col]
    table = table.set_index(id_col)
    absent = [key for key, _ in groups if key not in table.index]
    if absent:
        raise ValueError(f"static_covariates has no row for series {absent[:5]}; add them")
    values = _numeric(table.loc[[key for key, _ in groups]].reset_index(), columns,
                      "static_covariates", "static covariate")
    return values, [str(c) for c in columns]


def _check_values(series: SeriesSet, missing: Missing, name: str) -> None:
    for index, values in enumerate(series.values):
        where = "" if series.n_series == 1 else f" (series {series.ids[index]!r})"
        if np.isinf(values).any():
            row = int(np.flatnonzero(np.isinf(values).any(axis=1))[0])
            raise ValueError(f"{name}{where} has an infinite value at row {_row(series, index, row)}"
                             "; replace it with a finite value or NaN")
        nan_rows = np.flatnonzero(np.isnan(values).any(axis=1))
        if len(nan_rows) and missing == "error":
            shown = ", ".join(str(_row(series, index, r)) for r in nan_rows[:5])
            raise ValueError(f"{name}{where} has NaN in the target at rows {shown}"
                             f"{' …' if len(nan_rows) > 5 else ''} ({len(nan_rows)} rows); fill "
                             "them, or pass missing='mask' to leave them out of the loss")
        if len(nan_rows) == len(values):
            raise ValueError(f"{name}{where} has no observed value")
        if series.future is not None and not np.isfinite(series.future[index]).all():
            row = int(np.flatnonzero(~np.isfinite(series.future[index]).all(axis=1))[0])
            raise ValueError(f"{name}{where}: a future covariate is NaN or infinite at row "
                             f"{_row(series, index, row)}; covariates must be complete")
    if series.static is not None and not np.isfinite(series.static).all():
        raise ValueError("static covariates must be finite")


def _row(series: SeriesSet, index: int, row: int) -> str:
    if series.times is None:
        return str(row)
    return f"{row} ({pd.Timestamp(series.times[index][row])})"


@dataclass
class Stream:
    """Rows of a stream in the order given (no regular time index required): ``values (T, C)``
    float64, finite; the column names; the timestamps when the input had a time column, as
    local wall-clock times (what time-of-day features read) when they had a time zone."""

    values: np.ndarray
    names: list
    times: np.ndarray | None = None
    container: str = "numpy"


def read_stream(data: Any, *, time_col: str | None = None, name: str = "y") -> Stream:
    """A stream for a streaming detector: an array ``(T,)``/``(T, C)`` or a pandas/polars table
    (a time column or index, ignored but for the output, and real-valued columns). Rows are
    read in the order given: repeated or out-of-step timestamps are kept as they are. NaN and
    infinite values are refused with the row and column named."""
    frame, container = _to_pandas(data, name)
    times = None
    if isinstance(frame, np.ndarray):
        if not is_real_dtype(frame.dtype):
            raise TypeError(f"{name} must hold real numbers, got an array of dtype "
                            f"{frame.dtype}")
        if frame.ndim not in (1, 2):
            raise ValueError(f"{name} must be (T,) or (T, C), got shape {frame.shape}")
        if frame.size == 0:
            raise ValueError(f"{name} is empty (shape {frame.shape}); pass at least one row")
        values = frame.astype(np.float64).reshape(frame.shape[0], -1)
        names = list(range(values.shape[1]))
    else:
        if isinstance(frame.columns, pd.MultiIndex) or frame.columns.duplicated().any():
            raise ValueError(f"{name} needs one plain name per column")
        time_name = None if isinstance(frame.index, pd.DatetimeIndex) and time_col is None \
            else (_time_column(frame, time_col, name) or _datetime_column(frame, name))
        if isinstance(frame.index, pd.DatetimeIndex) and time_name is None:
            times = _wall_clock(frame.index)
        elif time_name is not None:
            times = _wall_clock(pd.DatetimeIndex(pd.to_datetime(frame[time_name])))
        names = [c for c in frame.columns if c != time_name]
        if not names:
            raise ValueError(f"{name} has no value column besides its time column")
        values = _numeric(frame, names, name, "value")
    if values.size == 0:
        raise ValueError(f"{name} is empty (shape {values.shape}); pass at least one row")
    bad = ~np.isfinite(values)
    if bad.any():
        row, column = map(int, np.argwhere(bad)[0])
        raise ValueError(f"{name} has a NaN or infinite value at row {row}, column "
                         f"{names[column]!r}; a detector reads every row: fill or drop it")
    return Stream(values, names, times, container)

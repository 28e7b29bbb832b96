"""Shared checks of the input contract: a refusal is a ValueError/TypeError raised by our own
code (not a traceback from inside torch, pandas, numpy or Lightning) whose message says what
is wrong."""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any, Callable

import hypothesis.strategies as st
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
OUR_CODE = (ROOT / "datamodules", ROOT / "titans_seq")


def outcome(call: Callable[[], Any]) -> tuple[Any, BaseException | None]:
    """``(result, None)`` or ``(None, error)``; the error must keep the contract."""
    try:
        return call(), None
    except (ValueError, TypeError) as error:
        raiser = Path(traceback.extract_tb(error.__traceback__)[-1].filename).resolve()
        assert any(raiser.is_relative_to(root) for root in OUR_CODE), \
            f"{type(error).__name__} raised inside {raiser}, not by titans-seq: {error}"
        assert len(str(error)) > 20, f"a message too terse to act on: {error!r}"
        return None, error


# -- generated tables ------------------------------------------------------------------------
NAMES = st.sampled_from(["y", "load", "OT", "a b", "é", "x-1", "0", 0, 7, "target", "value",
                         "cutoff", "Unnamed: 0"])
KINDS = st.sampled_from(["float", "float", "int", "bool", "nan", "inf", "text-number", "text",
                         "category", "complex", "datetime"])
TIME_NAMES = st.sampled_from(["ds", "date", "when", "ts", None])
TIME_KINDS = st.sampled_from(["regular", "regular", "regular", "strings", "shuffled",
                              "repeated", "irregular", "zoned-daily", "zoned-hourly"])
# the index of a table without a time column
INDEX_KINDS = st.sampled_from(["default", "default", "offset", "text", "float", "shuffled",
                               "period"])
# c and b of c · y + b for the real columns
SCALES = st.sampled_from([(1.0, 0.0), (1.0, 0.0), (1e-200, 0.0), (1e-14, 0.0), (1e12, 0.0),
                          (1e250, 0.0), (1.0, 1e9), (5.0, -1e6)])
REAL_KINDS = {"float", "int", "bool", "nan", "inf"}


def column(kind: str, rows: int, rng: np.random.Generator) -> Any:
    values = rng.normal(size=rows)
    if kind == "int":
        return rng.integers(-5, 5, rows)
    if kind == "bool":
        return rng.random(rows) > 0.5
    if kind in ("nan", "inf") and rows:
        values[rng.integers(rows)] = np.nan if kind == "nan" else np.inf
    if kind == "text-number":
        return [f"{v:.2f}" for v in values]
    if kind == "text":
        return [f"s{int(v > 0)}" for v in values]
    if kind == "category":
        return pd.Categorical([f"c{int(v > 0)}" for v in values])
    if kind == "complex":
        return values + 1j * values
    if kind == "datetime":
        return pd.date_range("2020-01-01", periods=rows, freq="D")
    return values


def times(kind: str, rows: int, rng: np.random.Generator) -> Any:
    if kind == "zoned-daily":  # across the daylight-saving change of 2024-03-31
        return pd.date_range("2024-03-20", periods=rows, freq="D", tz="Europe/Berlin")
    if kind == "zoned-hourly":  # across the hour that does not exist on 2024-03-10
        return pd.date_range("2024-03-09 12:00", periods=rows, freq="h", tz="America/New_York")
    stamps = pd.date_range("2024-01-01", periods=rows, freq="h")
    if kind == "strings":
        return stamps.strftime("%Y-%m-%d %H:%M").tolist()
    if kind == "shuffled" and rows > 2:
        return stamps[rng.permutation(rows)]
    if kind == "repeated" and rows > 2:
        return stamps[np.r_[0, np.arange(rows - 1)]]
    if kind == "irregular" and rows > 3:
        return stamps.delete(rows // 2).append(stamps[-1:] + pd.Timedelta("1h"))
    return stamps


def index(kind: str, rows: int, rng: np.random.Generator) -> pd.Index:
    if kind == "offset":  # a slice of a larger table
        return pd.RangeIndex(1000, 1000 + rows)
    if kind == "text":
        return pd.Index([f"r{i}" for i in range(rows)])
    if kind == "float":
        return pd.Index(np.arange(rows) * 0.5)
    if kind == "shuffled" and rows > 2:
        return pd.Index(rng.permutation(rows))
    if kind == "period":
        return pd.period_range("2020-01", periods=rows, freq="M")
    return pd.RangeIndex(rows)


@st.composite
def tables(draw, min_rows: int = 0, max_rows: int = 40):
    """A wide pandas table: its value columns (name, kind, at a scale and offset), time
    column (name, kind) or, without one, the kind of its index."""
    rows = draw(st.integers(min_rows, max_rows))
    names = draw(st.lists(NAMES, min_size=1, max_size=3, unique_by=str))
    kinds = [draw(KINDS) for _ in names]
    time_name, time_kind = draw(TIME_NAMES), draw(TIME_KINDS)
    index_kind, (scale, offset) = draw(INDEX_KINDS), draw(SCALES)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    columns = {}
    for name, kind in zip(names, kinds):
        values = column(kind, rows, rng)
        if kind in ("float", "nan", "inf"):
            values = scale * values + offset
        columns[name] = values
    frame = pd.DataFrame(columns, index=pd.RangeIndex(rows))
    if time_name is not None and time_name not in frame.columns:
        frame.insert(0, time_name, times(time_kind, rows, rng))
    elif time_name is None:
        frame.index = index(index_kind, rows, rng)
    return frame


def real_columns(frame: pd.DataFrame, time_col: Any) -> list:
    """The columns a forecaster must forecast: every real-valued one besides the time."""
    return [c for c in frame.columns if c != time_col
            and (pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c]))
            and not pd.api.types.is_complex_dtype(frame[c])]

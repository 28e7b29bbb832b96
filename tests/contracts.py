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
                              "repeated", "irregular"])
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


@st.composite
def tables(draw, min_rows: int = 0, max_rows: int = 40):
    """A wide pandas table: its value columns (name, kind) and time column (name, kind)."""
    rows = draw(st.integers(min_rows, max_rows))
    names = draw(st.lists(NAMES, min_size=1, max_size=3, unique_by=str))
    kinds = [draw(KINDS) for _ in names]
    time_name, time_kind = draw(TIME_NAMES), draw(TIME_KINDS)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    frame = pd.DataFrame({name: column(kind, rows, rng) for name, kind in zip(names, kinds)},
                         index=pd.RangeIndex(rows))
    if time_name is not None and time_name not in frame.columns:
        frame.insert(0, time_name, times(time_kind, rows, rng))
    return frame


def real_columns(frame: pd.DataFrame, time_col: Any) -> list:
    """The columns a forecaster must forecast: every real-valued one besides the time."""
    return [c for c in frame.columns if c != time_col
            and (pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c]))
            and not pd.api.types.is_complex_dtype(frame[c])]

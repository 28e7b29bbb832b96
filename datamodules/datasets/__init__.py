"""Example datasets embedded in the package (loaders in the style of ``sklearn.datasets``).

- :func:`load_etth1`: ETTh1, hourly electricity-transformer loads and oil temperature
  (CC BY-ND 4.0, verbatim; Zhou et al., *Informer*, AAAI 2021). See ``data/ETTh1.NOTICE.md``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

ETTH1_CITATION = ("Zhou et al., Informer: Beyond Efficient Transformer for Long Sequence "
                  "Time-Series Forecasting, AAAI 2021 (ETDataset, CC BY-ND 4.0)")


def etth1_path() -> Path:
    """Path of the embedded, unmodified ``ETTh1.csv.gz``."""
    return Path(str(resources.files(__package__).joinpath("data", "ETTh1.csv.gz")))


def load_etth1(as_frame: Literal["pandas", "polars", "numpy"] = "pandas") -> Any:
    """ETTh1: 17,420 hourly rows of ``date`` and 7 numeric columns (``OT`` is the usual target).

    Parameters
    ----------
    as_frame : {"pandas", "polars", "numpy"}
        A pandas frame with a ``date`` column, the same as a polars frame, or a float64
        array ``(17420, 7)`` of the numeric columns.
    """
    frame = pd.read_csv(etth1_path(), parse_dates=["date"])
    if as_frame == "pandas":
        return frame
    if as_frame == "polars":
        import polars as pl
        return pl.DataFrame({c: frame[c].to_numpy() for c in frame.columns})
    if as_frame == "numpy":
        return frame.drop(columns="date").to_numpy(dtype=np.float64)
    raise ValueError(f"as_frame must be 'pandas', 'polars' or 'numpy', got {as_frame!r}")


__all__ = ["ETTH1_CITATION", "etth1_path", "load_etth1"]

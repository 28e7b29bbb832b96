"""Example datasets embedded in the package (loaders in the style of ``sklearn.datasets``).

- :func:`load_etth1`: ETTh1, hourly electricity-transformer loads and oil temperature
  (CC BY-ND 4.0, verbatim; Zhou et al., *Informer*, AAAI 2021). See ``data/ETTh1.NOTICE.md``.
- :func:`load_etth2`: ETTh2, the same measurements at a second station, whose level and spread
  drift far from those of its first months (the online-forecasting benchmark's file; same
  licence and source, ``data/ETTh2.NOTICE.md``).
- :func:`load_nontata_promoters`: the Genomic Benchmarks human non-TATA promoter set, official
  test split, 9,034 sequences of 251 nt (Apache-2.0; Grešová et al., BMC Genomic Data 2023).
  See ``data/human_nontata_promoters.NOTICE.md``.
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


def etth2_path() -> Path:
    """Path of the embedded, unmodified ``ETTh2.csv.gz``."""
    return Path(str(resources.files(__package__).joinpath("data", "ETTh2.csv.gz")))


def load_etth1(as_frame: Literal["pandas", "polars", "numpy"] = "pandas") -> Any:
    """ETTh1: 17,420 hourly rows of ``date`` and 7 numeric columns (``OT`` is the usual target).

    Parameters
    ----------
    as_frame : {"pandas", "polars", "numpy"}
        A pandas frame with a ``date`` column, the same as a polars frame, or a float64
        array ``(17420, 7)`` of the numeric columns.
    """
    return _ett(etth1_path(), as_frame)


def load_etth2(as_frame: Literal["pandas", "polars", "numpy"] = "pandas") -> Any:
    """ETTh2: 17,420 hourly rows of ``date`` and 7 numeric columns, laid out as
    :func:`load_etth1`'s."""
    return _ett(etth2_path(), as_frame)


def _ett(path: Path, as_frame: str) -> Any:
    frame = pd.read_csv(path, parse_dates=["date"])
    if as_frame == "pandas":
        return frame
    if as_frame == "polars":
        import polars as pl
        return pl.DataFrame({c: frame[c].to_numpy() for c in frame.columns})
    if as_frame == "numpy":
        return frame.drop(columns="date").to_numpy(dtype=np.float64)
    raise ValueError(f"as_frame must be 'pandas', 'polars' or 'numpy', got {as_frame!r}")


PROMOTERS_CITATION = ("Grešová et al., Genomic benchmarks: a collection of datasets for genomic "
                      "sequence classification, BMC Genomic Data 24, 25 (2023) (Apache-2.0)")


def nontata_promoters_path() -> Path:
    """Path of the embedded ``human_nontata_promoters.csv.gz`` (``sequence,label,split``)."""
    return Path(str(resources.files(__package__).joinpath("data",
                                                          "human_nontata_promoters.csv.gz")))


def load_nontata_promoters(as_frame: Literal["pandas", "polars", "lists"] = "pandas") -> Any:
    """Human non-TATA promoters: 9,034 DNA sequences of 251 nt, label 1 = promoter (4,915),
    0 = not (4,119).

    This is the official *test* split of Genomic Benchmarks only: accuracies from a sub-split
    of it compare side by side, not with published tables (those train on the 27,097-sequence
    train split).

    Parameters
    ----------
    as_frame : {"pandas", "polars", "lists"}
        A pandas or polars frame with ``sequence`` and ``label`` columns, or a tuple
        ``(sequences: list[str], labels: ndarray[int64])``.
    """
    frame = pd.read_csv(nontata_promoters_path(), usecols=["sequence", "label"])
    if as_frame == "pandas":
        return frame
    if as_frame == "polars":
        import polars as pl
        return pl.DataFrame({c: frame[c].to_numpy() for c in frame.columns})
    if as_frame == "lists":
        return frame["sequence"].tolist(), frame["label"].to_numpy(dtype=np.int64)
    raise ValueError(f"as_frame must be 'pandas', 'polars' or 'lists', got {as_frame!r}")


EMBEDDED = {"etth1": etth1_path, "etth2": etth2_path, "nontata_promoters": nontata_promoters_path}


def resolve_embedded(source: Any) -> Any:
    """``source``, or the path of the embedded dataset it names (``"etth1"``, ``"etth2"``,
    ``"nontata_promoters"``) when it is such a name and no file of that name exists: configs
    can then say ``data: etth1`` and run from any folder."""
    if isinstance(source, str) and source in EMBEDDED and not Path(source).exists():
        return EMBEDDED[source]()
    return source


__all__ = ["EMBEDDED", "ETTH1_CITATION", "PROMOTERS_CITATION", "etth1_path", "etth2_path",
           "load_etth1", "load_etth2", "load_nontata_promoters", "nontata_promoters_path",
           "resolve_embedded"]

"""Refusals name the real problem: the row or date of a NaN covariate (at fit and in the
horizon at predict), too few rows, the separator of a CSV that is not comma-separated; a FASTA
file with a byte-order mark is read, and duplicate FASTA ids with a label table are refused by
id."""

import gzip

import numpy as np
import pandas as pd
import pytest

from datamodules import read_dna
from titans_seq import TitansForecaster

TINY = dict(horizon=4, lookback=8, linear_lookback=8, patch_len=4, dim=8, max_epochs=1,
            random_state=0)
TIMES = pd.date_range("2024-01-01", periods=124, freq="h")


def series(rows=120):
    return pd.DataFrame({"date": TIMES[:rows], "load": np.sin(np.arange(rows) / 5)})


def covariates(nan_at=None):
    values = np.cos(np.arange(124) / 7)
    if nan_at is not None:
        values[nan_at] = np.nan
    return pd.DataFrame({"date": TIMES, "price": values})


def test_a_nan_covariate_is_named_by_row_and_by_date():
    x = covariates()["price"].to_numpy()[:, None].copy()
    x[50] = np.nan
    with pytest.raises(ValueError, match="first at row 50 in column 'x0'"):
        TitansForecaster(**TINY).fit(series()["load"].to_numpy(), X=x[:120])
    with pytest.raises(ValueError, match="first at 2024-01-03 02:00:00 in column 'price'"):
        TitansForecaster(**TINY).fit(series(), X=covariates(nan_at=50).iloc[:120])
    model = TitansForecaster(**TINY).fit(series(), X=covariates().iloc[:120])
    with pytest.raises(ValueError, match="first at 2024-01-06 01:00:00 in column 'price'"):
        model.predict(X=covariates(nan_at=121).iloc[120:])


def test_a_one_row_fit_says_too_few_rows():
    with pytest.raises(ValueError, match="too few rows"):
        TitansForecaster(**TINY).fit(series(1))


def test_a_semicolon_separated_csv_names_its_separator(tmp_path):
    path = tmp_path / "semicolons.csv"
    series().assign(temp=1.0).to_csv(path, sep=";", index=False)
    with pytest.raises(ValueError, match="separated by ';'.*sep=';'"):
        TitansForecaster(**TINY).fit(path)


@pytest.mark.parametrize("compressed", [False, True])
def test_a_fasta_file_with_a_byte_order_mark_is_read(tmp_path, compressed):
    path = tmp_path / ("bom.fa.gz" if compressed else "bom.fa")
    opener = gzip.open if compressed else open
    with opener(path, "wt", encoding="utf-8-sig") as handle:
        handle.write(">first\nACGT\n>second\nTTGA\n")
    records = read_dna(path)
    assert records.sequences == ["ACGT", "TTGA"] and records.names == ["first", "second"]


def test_duplicate_fasta_ids_with_a_label_table_are_refused_by_id(tmp_path):
    fasta, labels = tmp_path / "reads.fa", tmp_path / "labels.csv"
    fasta.write_text(">a\nACGT\n>b\nGGCC\n>a\nTTGA\n")
    pd.DataFrame({"id": ["a", "b"], "label": [1, 0]}).to_csv(labels, index=False)
    with pytest.raises(ValueError, match="record id 'a' appears more than once"):
        read_dna(fasta, labels=labels)
    assert read_dna(fasta, labels=[1, 0, 1]).labels == [1, 0, 1]  # one label per record

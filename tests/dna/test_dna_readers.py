"""`read_dna` / `read_genomic_benchmark` on real files of every supported layout."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

from datamodules.dna import DNARecords, read_dna, read_genomic_benchmark

FASTA = ">r1 label=pos len=8\nacgtACGT\n>r2 label=neg\nAAAA\nCCRN\n>r3 desc label=pos\nGGGG\n"
FASTQ = "@q1 label=a\nACGT\n+\nIIII\n@q2 label=b\nNNAC\n+q2 label=b\n!!!!\n"


def _write(path: Path, text: str) -> Path:
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["x.fa", "x.fasta", "x.fna", "x.fas", "x.fa.gz"])
def test_fasta_plain_and_gzipped(tmp_path, name):
    records = read_dna(_write(tmp_path / name, FASTA))
    assert isinstance(records, DNARecords) and len(records) == 3
    assert records.names == ["r1", "r2", "r3"]
    assert records.sequences == ["ACGTACGT", "AAAACCNN", "GGGG"]  # soft mask, IUPAC, wrapped
    assert records.labels is None


@pytest.mark.parametrize("name", ["x.fq", "x.fastq.gz"])
def test_fastq_with_header_regex(tmp_path, name):
    records = read_dna(_write(tmp_path / name, FASTQ), label_from_header=r"label=(\w+)")
    assert records.sequences == ["ACGT", "NNAC"] and records.labels == ["a", "b"]
    assert records.names == ["q1", "q2"]


def test_gzip_content_detected_and_file_format_override(tmp_path):
    path = tmp_path / "reads.dat"
    path.write_bytes(gzip.compress(FASTQ.encode()))
    with pytest.raises(ValueError, match="file_format="):
        read_dna(path)
    assert read_dna(path, file_format="fastq").names == ["q1", "q2"]


def test_header_regex_and_callable(tmp_path):
    path = _write(tmp_path / "x.fa", FASTA)
    assert read_dna(path, label_from_header=r"label=(\w+)").labels == ["pos", "neg", "pos"]
    lengths = read_dna(path, label_from_header=lambda header: len(header.split()))
    assert lengths.labels == [3, 2, 3]
    with pytest.raises(ValueError, match=r"1 of 3 header\(s\), e.g. \['r2 label=neg'\]"):
        read_dna(path, label_from_header=r"label=(pos)")
    with pytest.raises(ValueError, match="exactly one capture group"):
        read_dna(path, label_from_header=r"label=\w+")
    with pytest.raises(ValueError, match="not both"):
        read_dna(path, labels={"r1": 0}, label_from_header=r"label=(\w+)")


def test_side_table_labels_csv_tsv_dataframes_and_dict(tmp_path):
    fasta = _write(tmp_path / "x.fa", FASTA)
    pl.DataFrame({"id": ["r3", "r1", "r2", "extra"], "label": [1, 0, 1, 5]}).write_csv(
        tmp_path / "labels.csv")
    pl.DataFrame({"name": ["r1", "r2", "r3"], "label": ["a", "b", "c"]}).write_csv(
        tmp_path / "labels.tsv", separator="\t")
    assert read_dna(fasta, labels=tmp_path / "labels.csv").labels == [0, 1, 1]
    assert read_dna(fasta, labels=str(tmp_path / "labels.tsv")).labels == ["a", "b", "c"]
    frame = pd.DataFrame({"id": ["r1", "r2", "r3"], "label": [2, 3, 4]})
    assert read_dna(fasta, labels=frame).labels == [2, 3, 4]
    assert read_dna(fasta, labels=pl.from_dict({"id": ["r1", "r2", "r3"],
                                                "label": [4, 3, 2]})).labels == [4, 3, 2]
    assert read_dna(fasta, labels={"r1": "x", "r2": "y", "r3": "x"}).labels == ["x", "y", "x"]
    assert read_dna(fasta, labels=np.array([1, 0, 1])).labels == [1, 0, 1]


def test_side_table_missing_ids_and_bad_columns(tmp_path):
    fasta = _write(tmp_path / "x.fa", FASTA)
    with pytest.raises(ValueError, match=r"2 record id\(s\) have no label.*\['r2', 'r3'\]"):
        read_dna(fasta, labels={"r1": 0})
    with pytest.raises(ValueError, match="needs columns 'id'"):
        read_dna(fasta, labels=pd.DataFrame({"record": ["r1"], "label": [0]}))
    with pytest.raises(ValueError, match="3 records"):
        read_dna(fasta, labels=[0, 1])
    with pytest.raises(ValueError, match="two labels"):
        read_dna(fasta, labels=pd.DataFrame({"id": ["r1", "r1"], "label": [0, 1]}))


def test_one_file_per_class(tmp_path):
    _write(tmp_path / "pos.fa", ">a\nACGT\n>b\nCCCC\n")
    _write(tmp_path / "neg.fq.gz", "@c\nGGGG\n+\nIIII\n")
    records = read_dna({"pos": tmp_path / "pos.fa", "neg": tmp_path / "neg.fq.gz"})
    assert records.sequences == ["ACGT", "CCCC", "GGGG"]
    assert records.labels == ["pos", "pos", "neg"] and records.names == ["a", "b", "c"]
    assert read_dna({1: str(tmp_path / "pos.fa")}).labels == [1, 1]


@pytest.mark.parametrize("name", ["t.csv", "t.csv.gz", "t.tsv", "t.parquet"])
def test_tables(tmp_path, name):
    frame = pl.DataFrame({"id": ["a", "b", "c"], "seq": ["acgt", "GGNN", "TTYA"],
                          "y": [1, 0, 1]})
    path = tmp_path / name
    if name.endswith(".parquet"):
        frame.write_parquet(path)
    elif name.endswith(".gz"):
        path.write_bytes(gzip.compress(frame.write_csv().encode()))
    else:
        frame.write_csv(path, separator="\t" if name.endswith(".tsv") else ",")
    records = read_dna(path, sequence_col="seq", label_col="y")
    assert records.sequences == ["ACGT", "GGNN", "TTNA"]
    assert records.labels == [1, 0, 1] and records.names == ["a", "b", "c"]
    with pytest.raises(ValueError, match=r"no sequence column 'sequence'.*\['id', 'seq', 'y'\]"):
        read_dna(path)
    assert read_dna(path, sequence_col="seq").labels is None  # no 'label' column


def test_dataframes_and_missing_values():
    pandas_frame = pd.DataFrame({"sequence": ["ACGT", "GGCC"], "label": ["x", "y"]})
    records = read_dna(pandas_frame)
    assert records.labels == ["x", "y"] and records.names == ["row0", "row1"]
    assert read_dna(pl.DataFrame({"sequence": ["AC"], "label": [3]})).labels == [3]
    with pytest.raises(ValueError, match=r"column 'label': 1 missing label.*rows \[1\]"):
        read_dna(pd.DataFrame({"sequence": ["AC", "GG"], "label": [1, np.nan]}))
    with pytest.raises(ValueError, match="sequence 'row1' is missing"):
        read_dna(pd.DataFrame({"sequence": ["AC", None], "label": [1, 2]}))
    with pytest.raises(ValueError, match="sequence 'row0' has 'X' at position 1"):
        read_dna(pl.DataFrame({"sequence": ["AXC"]}))
    with pytest.raises(ValueError, match="labels of a table come from its 'label' column"):
        read_dna(pandas_frame, labels=[0, 1])


def test_lists_and_label_checks():
    records = read_dna(["acgu", "GGRA"], labels=np.array([0, 1]), rna=True)
    assert records.sequences == ["ACGT", "GGNA"] and records.names == ["seq0", "seq1"]
    assert records.labels == [0, 1] and type(records.labels[0]) is int
    assert read_dna(("AC",)).labels is None
    with pytest.raises(ValueError, match="2 labels for 3 sequences"):
        read_dna(["A", "C", "G"], labels=[0, 1])
    with pytest.raises(ValueError, match="missing label"):
        read_dna(["A", "C"], labels=[0, None])
    with pytest.raises(ValueError, match="'seq1' has the IUPAC ambiguity code 'R' at "
                                         "position 2; use ambiguity='n'"):
        read_dna(["ACGT", "GGRA"], ambiguity="error")
    with pytest.raises(ValueError, match="'seq0' is empty"):
        read_dna([""])
    with pytest.raises(ValueError, match="no sequences"):
        read_dna([])
    with pytest.raises(TypeError, match="cannot read DNA from a int"):
        read_dna(5)


def test_genomic_benchmarks_layout(tmp_path):
    for split, per_class in (("train", 3), ("test", 2)):
        for label in ("positive", "negative"):
            (tmp_path / "gb" / split / label).mkdir(parents=True)
            for i in range(per_class):
                (tmp_path / "gb" / split / label / f"{i}.txt").write_text(
                    ("ACGT" if label == "positive" else "ttgg") + "\n")
    train = read_dna(tmp_path / "gb" / "train")
    assert len(train) == 6 and train.labels == ["negative"] * 3 + ["positive"] * 3
    assert train.sequences[0] == "TTGG" and train.names[:3] == ["0", "1", "2"]
    both = read_genomic_benchmark(tmp_path / "gb")
    assert set(both) == {"train", "test"} and len(both["test"]) == 4
    with pytest.raises(ValueError, match="read_genomic_benchmark"):
        read_dna(tmp_path / "gb")
    with pytest.raises(ValueError, match="lacks train/, test/; the root"):
        read_genomic_benchmark(tmp_path / "gb" / "train")
    (tmp_path / "gb" / "test").rename(tmp_path / "gb" / "valid")
    with pytest.raises(ValueError, match="lacks test/;"):
        read_genomic_benchmark(tmp_path / "gb")


def test_malformed_and_missing_files(tmp_path):
    with pytest.raises(ValueError, match="file or folder not found.*pass a list"):
        read_dna("ACGT")
    with pytest.raises(ValueError, match="no FASTA records"):
        read_dna(_write(tmp_path / "empty.fa", ""))
    with pytest.raises(ValueError, match="line 2 starts with 'ACGT' instead of '>'"):
        read_dna(_write(tmp_path / "bad.fa", "\nACGT\n>r\nAC\n"))
    with pytest.raises(ValueError, match="malformed FASTQ.*differs.*quality line as long"):
        read_dna(_write(tmp_path / "bad.fq", "@r\nACGT\n+\nIII\n"))
    with pytest.raises(ValueError, match="malformed FASTQ"):
        read_dna(_write(tmp_path / "noplus.fq", "@r\nACGT\nIIII\n"))
    with pytest.raises(ValueError, match=r"bad2.fa: sequence 'r2' has '-' at position 1"):
        read_dna(_write(tmp_path / "bad2.fa", ">r1\nAC\n>r2\nA-C\n"))
    with pytest.raises(ValueError, match="'r2' is empty"):
        read_dna(_write(tmp_path / "empty_record.fa", ">r1\nAC\n>r2\n"))
    with pytest.raises(ValueError, match="cannot tell the format.*file_format"):
        read_dna(_write(tmp_path / "x.json", "{}"))
    with pytest.raises(ValueError, match="file_format must be one of"):
        read_dna(tmp_path / "x.json", file_format="json")

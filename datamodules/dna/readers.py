"""Reading DNA sequences and their labels from every common layout into :class:`DNARecords`.

:func:`read_dna` accepts lists of strings, FASTA/FASTQ files (optionally gzipped, parsed with
Biopython's fast low-level parsers), one file per class, CSV/TSV/Parquet tables, pandas/polars
DataFrames and Genomic Benchmarks folders (:func:`read_genomic_benchmark` for a whole root).
Names default to ``seq{i}`` for lists and ``row{i}`` (the 0-based data row) for tables without
an ``id``/``name`` column.

Every sequence is normalised with :func:`~datamodules.dna.alphabet.normalize_sequence`; errors
name the file, the record and what to change.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Mapping

import numpy as np
import pandas as pd
import polars as pl
from Bio.SeqIO.FastaIO import SimpleFastaParser
from Bio.SeqIO.QualityIO import FastqGeneralIterator

from ..checks import boolean, choice

from .alphabet import AMBIGUITY, normalize_sequence

__all__ = ["DNARecords", "read_dna", "read_genomic_benchmark"]

FASTA_SUFFIXES = (".fa", ".fasta", ".fna", ".fas")
FASTQ_SUFFIXES = (".fq", ".fastq")
TABLE_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet"}
FORMATS = ("fasta", "fastq", "csv", "tsv", "parquet")
NAME_COLUMNS = ("id", "name")
Ambiguity = Literal["n", "error"]


@dataclass
class DNARecords:
    """Normalised sequences with their names and (optional) labels.

    Attributes
    ----------
    sequences : list of str
        Upper-case sequences over ``A C G T N``.
    labels : list or None
        One label per sequence, as given (ints or strings), or None when unlabelled.
    names : list of str
        Record ids (FASTA/FASTQ), the id/name column, file stems, or ``seq{i}`` / ``row{i}``.
    """

    sequences: list[str]
    labels: list | None
    names: list[str]

    def __len__(self) -> int:
        return len(self.sequences)


def _scalar(value: Any) -> Any:
    """numpy scalars → Python scalars, so labels compare and sort like the caller's values."""
    return value.item() if isinstance(value, np.generic) else value


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _check_labels(labels: list, where: str) -> list:
    labels = [_scalar(v) for v in labels]
    missing = [i for i, v in enumerate(labels) if _is_missing(v)]
    if missing:
        raise ValueError(f"{where}: {len(missing)} missing label(s) (None/NaN), first at "
                         f"0-based rows {missing[:5]}; drop those records or fill their labels")
    return labels


def _normalise_all(sequences: list, names: list[str], ambiguity: Ambiguity, rna: bool,
                   where: str) -> list[str]:
    out = []
    for sequence, name in zip(sequences, names):
        if _is_missing(sequence):
            raise ValueError(f"{where}: sequence {name!r} is missing (None/NaN); drop that "
                             f"record or fill it")
        try:
            out.append(normalize_sequence(sequence, ambiguity=ambiguity, rna=rna, name=name))
        except (ValueError, TypeError) as error:
            raise type(error)(f"{where}: {error}") from None
    if not out:
        raise ValueError(f"{where}: no sequences found; check the file or list is not empty")
    return out


# -- FASTA / FASTQ ----------------------------------------------------------------------------
def _open_text(path: Path):
    with open(path, "rb") as handle:  # gzip by content, so a missing .gz suffix still works
        is_gzip = handle.read(2) == b"\x1f\x8b"
    # utf-8-sig: a byte-order mark (as some Windows editors write) is not part of the text
    return gzip.open(path, "rt", encoding="utf-8-sig") if is_gzip \
        else open(path, "r", encoding="utf-8-sig")


def _detect_format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    suffix = suffixes[-1] if suffixes else ""
    if suffix in FASTA_SUFFIXES:
        return "fasta"
    if suffix in FASTQ_SUFFIXES:
        return "fastq"
    if suffix in TABLE_SUFFIXES:
        return TABLE_SUFFIXES[suffix]
    raise ValueError(f"cannot tell the format of {str(path)!r} from its suffix {suffix!r}; "
                     f"known: FASTA {' '.join(FASTA_SUFFIXES)}, FASTQ {' '.join(FASTQ_SUFFIXES)}, "
                     f".csv .tsv .parquet (each optionally .gz); or pass file_format= one of "
                     f"{', '.join(FORMATS)}")


def _fasta_records(path: Path) -> Iterator[tuple[str, str]]:
    with _open_text(path) as handle:
        # SimpleFastaParser silently skips text before the first '>': check it ourselves.
        for number, line in enumerate(handle, start=1):
            if line.strip():
                if not line.startswith(">"):
                    raise ValueError(f"{path}: not a FASTA file, line {number} starts with "
                                     f"{line.strip()[:20]!r} instead of '>'; FASTQ needs a "
                                     f".fq/.fastq name or file_format='fastq'")
                break
        handle.seek(0)
        yield from SimpleFastaParser(handle)


def _fastq_records(path: Path) -> Iterator[tuple[str, str]]:
    with _open_text(path) as handle:
        try:
            for title, sequence, _quality in FastqGeneralIterator(handle):
                yield title, sequence
        except ValueError as error:
            raise ValueError(f"{path}: malformed FASTQ ({error}); each record is 4 lines: "
                             f"'@id', the sequence, '+', and a quality line as long as the "
                             f"sequence") from None


def _labels_from_header(headers: list[str], rule: str | Callable[[str], Any], where: str
                        ) -> list:
    if callable(rule):
        labels = [_scalar(rule(header)) for header in headers]
        missing = [h for h, v in zip(headers, labels) if _is_missing(v)]
        if missing:
            raise ValueError(f"{where}: label_from_header returned None for {len(missing)} "
                             f"header(s), e.g. {missing[:3]}; it must return a label for every "
                             f"record")
        return labels
    if not isinstance(rule, str):
        raise TypeError(f"label_from_header must be a regex str or a callable, got "
                        f"{type(rule).__name__}")
    try:
        pattern = re.compile(rule)
    except re.error as error:
        raise ValueError(f"label_from_header {rule!r} is not a valid regex ({error})") from None
    if pattern.groups != 1:
        raise ValueError(f"label_from_header {rule!r} must have exactly one capture group (the "
                         f"label), e.g. r'label=(\\w+)'; it has {pattern.groups}")
    matches = [pattern.search(header) for header in headers]
    unmatched = [h for h, m in zip(headers, matches) if m is None or m.group(1) is None]
    if unmatched:
        raise ValueError(f"{where}: label_from_header {rule!r} matches no label in "
                         f"{len(unmatched)} of {len(headers)} header(s), e.g. {unmatched[:3]}; "
                         f"fix the regex or the headers")
    return [match.group(1) for match in matches]


def _columns(frame: pd.DataFrame | pl.DataFrame) -> list[str]:
    return [str(c) for c in frame.columns]


def _column(frame: pd.DataFrame | pl.DataFrame, column: str) -> list:
    """One column as Python values (pandas is read directly: polars needs pyarrow for it)."""
    return frame[column].to_list() if isinstance(frame, pl.DataFrame) else frame[column].tolist()


def _names(values: list) -> list[str]:
    return [f"row{i}" if _is_missing(v) else str(_scalar(v)) for i, v in enumerate(values)]


def _label_table(labels: Any) -> dict:
    """A side table (path, DataFrame or dict) → {record id: label}."""
    if isinstance(labels, Mapping):
        return {str(key): _scalar(value) for key, value in labels.items()}
    if isinstance(labels, (str, Path)):
        frame = _read_table(Path(labels), None)
    elif isinstance(labels, (pd.DataFrame, pl.DataFrame)):
        frame = labels
    else:
        raise TypeError(f"labels for a FASTA/FASTQ file must be a side table (CSV/TSV/Parquet "
                        f"path, DataFrame or dict id → label) or a list of the same length, "
                        f"got {type(labels).__name__}")
    columns = _columns(frame)
    key = next((c for c in NAME_COLUMNS if c in columns), None)
    if key is None or "label" not in columns:
        raise ValueError(f"the label table needs columns 'id' (or 'name') and 'label', it has "
                         f"{columns}; rename them")
    table: dict = {}
    for name, label in zip(_names(_column(frame, key)), _column(frame, "label")):
        label = _scalar(label)
        if name in table and table[name] != label:
            raise ValueError(f"the label table gives id {name!r} two labels, {table[name]!r} "
                             f"and {label!r}; keep one row per id")
        table[name] = label
    return table


def _read_fastx(path: Path, file_format: str, labels: Any, label_from_header: Any,
                ambiguity: Ambiguity, rna: bool) -> DNARecords:
    where = str(path)
    if labels is not None and label_from_header is not None:
        raise ValueError("give labels= or label_from_header=, not both")
    reader = _fasta_records if file_format == "fasta" else _fastq_records
    headers, raw = [], []
    try:
        for title, sequence in reader(path):
            headers.append(title)
            raw.append(sequence)
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not a text {file_format.upper()} file (byte {error.start} "
                         f"is not text); is it a binary or compressed file of another "
                         f"kind?") from None
    except (EOFError, gzip.BadGzipFile, OSError) as error:
        raise ValueError(f"{path}: cannot read it as gzip-compressed {file_format.upper()} "
                         f"({error}); is the file complete?") from None
    if not raw:
        raise ValueError(f"{path}: no {file_format.upper()} records found (empty file?); "
                         f"check the path and file_format")
    # the record id is the first word of the header, as in Biopython's SeqRecord.id
    names = [title.split(None, 1)[0] if title.strip() else f"seq{i}"
             for i, title in enumerate(headers)]
    sequences = _normalise_all(raw, names, ambiguity, rna, where)
    if label_from_header is not None:
        found = _labels_from_header(headers, label_from_header, where)
    elif labels is None:
        found = None
    elif isinstance(labels, (list, tuple, np.ndarray, pd.Series, pl.Series)):
        found = list(labels)
        if len(found) != len(sequences):
            raise ValueError(f"{where}: {len(found)} labels for {len(sequences)} records; give "
                             f"one label per record, or a side table id → label")
    else:
        table = _label_table(labels)
        seen: set[str] = set()
        repeated = [name for name in names if name in seen or seen.add(name)]
        if repeated:
            raise ValueError(f"{where}: record id {repeated[0]!r} appears more than once, so a "
                             f"label table (id → label) cannot tell its records apart; give "
                             f"each record its own id, or one label per record as a list")
        missing = [name for name in names if name not in table]
        if missing:
            raise ValueError(f"{where}: {len(missing)} record id(s) have no label in the label "
                             f"table, e.g. {missing[:5]}; ids are the first word of each header")
        found = [table[name] for name in names]
    return DNARecords(sequences, None if found is None else _check_labels(found, where), names)


# -- tables -----------------------------------------------------------------------------------
def _read_table(path: Path, file_format: str | None) -> pl.DataFrame:
    file_format = file_format or _detect_format(path)
    try:
        return _read_table_as(path, file_format)
    except ValueError:
        raise
    except Exception as error:  # polars' own errors, with the file named
        raise ValueError(f"{path}: could not read it as {file_format.upper()} ({error})"
                         ) from None


def _read_table_as(path: Path, file_format: str) -> pl.DataFrame:
    if file_format == "parquet":
        return pl.read_parquet(path)
    if file_format in ("csv", "tsv"):
        # polars reads gzip-compressed CSV itself
        return pl.read_csv(path, separator="\t" if file_format == "tsv" else ",",
                           infer_schema_length=10000)
    raise ValueError(f"{path}: a label/sequence table must be CSV, TSV or Parquet, got "
                     f"format {file_format!r}")


def _read_frame(frame: pd.DataFrame | pl.DataFrame, sequence_col: str, label_col: str,
                ambiguity: Ambiguity, rna: bool, where: str) -> DNARecords:
    columns = _columns(frame)
    if sequence_col not in columns:
        raise ValueError(f"{where}: no sequence column {sequence_col!r}; the columns are "
                         f"{columns}; pass sequence_col= one of them")
    if len(frame) == 0:
        raise ValueError(f"{where}: the table has no rows")
    key = next((c for c in NAME_COLUMNS if c in columns), None)
    names = (_names(_column(frame, key)) if key is not None
             else [f"row{i}" for i in range(len(frame))])
    sequences = _normalise_all(_column(frame, sequence_col), names, ambiguity, rna, where)
    labels = (_check_labels(_column(frame, label_col), f"{where}, column {label_col!r}")
              if label_col in columns else None)
    return DNARecords(sequences, labels, names)


# -- Genomic Benchmarks -----------------------------------------------------------------------
def _read_benchmark_split(folder: Path, ambiguity: Ambiguity, rna: bool) -> DNARecords:
    classes = sorted(p for p in folder.iterdir() if p.is_dir())
    if not classes:
        raise ValueError(f"{folder}: a Genomic Benchmarks split folder has one sub-folder per "
                         f"class with one .txt file per sequence; none found")
    raw, names, labels = [], [], []
    for class_dir in classes:
        files = sorted(class_dir.glob("*.txt"))
        if not files:
            raise ValueError(f"{class_dir}: class folder has no .txt sequence files")
        for file in files:
            raw.append("".join(file.read_text().split()))
            names.append(file.stem)
            labels.append(class_dir.name)
    return DNARecords(_normalise_all(raw, names, ambiguity, rna, str(folder)), labels, names)


def read_genomic_benchmark(folder: str | Path, *, ambiguity: Ambiguity = "n",
                           rna: bool = False) -> dict[str, DNARecords]:
    """Read a Genomic Benchmarks dataset root: ``{"train": DNARecords, "test": DNARecords}``.

    The root holds ``train/`` and ``test/``, each with one folder per class of ``*.txt`` files
    (one sequence per file). Labels are the class folder names, names the file stems.
    """
    if not isinstance(folder, (str, Path)):
        raise TypeError(f"folder must be a path, got {type(folder).__name__}")
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder; give the Genomic Benchmarks dataset root "
                         f"that holds train/ and test/")
    missing = [split for split in ("train", "test") if not (root / split).is_dir()]
    if missing:
        raise ValueError(f"{root} lacks {', '.join(m + '/' for m in missing)}; the root of a "
                         f"Genomic Benchmarks dataset holds train/ and test/ (for a single "
                         f"split folder use read_dna(folder))")
    return {split: _read_benchmark_split(root / split, ambiguity, rna)
            for split in ("train", "test")}


# -- the entry point --------------------------------------------------------------------------
def read_dna(source: Any, *, labels: Any = None,
             label_from_header: str | Callable[[str], Any] | None = None,
             sequence_col: str = "sequence", label_col: str = "label",
             file_format: str | None = None, ambiguity: Ambiguity = "n",
             rna: bool = False) -> DNARecords:
    """Read DNA sequences (and labels) from any supported source.

    Parameters
    ----------
    source
        A list/tuple/ndarray/Series of str; a FASTA/FASTQ path (optionally gzipped); a dict
        ``{class_label: FASTA/FASTQ path}``; a CSV/TSV/Parquet path; a pandas or polars
        DataFrame; or a Genomic Benchmarks split folder (``<split>/<class>/*.txt``).
    labels
        For a list source: one label per sequence. For a FASTA/FASTQ file: a side table
        mapping the record id (first whitespace-separated word of the header) to its label —
        a CSV/TSV/Parquet path or DataFrame with columns ``id`` (or ``name``) and ``label``,
        or a dict — or a list with one label per record. Every record needs a label. Not used
        for tables (use ``label_col``), per-class dicts or benchmark folders.
    label_from_header
        For FASTA/FASTQ: a regex with exactly one capture group, searched (``re.search``) in
        the full header line without ``>``/``@``; the group is the label, e.g.
        ``r"label=(\\w+)"``. Or a callable header → label.
    sequence_col, label_col : str
        Table columns; the label column is optional (absent → unlabelled). A column ``id`` or
        ``name``, when present, gives the record names.
    file_format : {"fasta", "fastq", "csv", "tsv", "parquet"}, optional
        Overrides detection from the file suffix.
    ambiguity, rna
        Passed to :func:`~datamodules.dna.alphabet.normalize_sequence`.

    Returns
    -------
    DNARecords
        Labels are kept as given (ints or strings).
    """
    choice("ambiguity", ambiguity, AMBIGUITY)
    boolean("rna", rna)
    if file_format is not None:
        choice("file_format", file_format, FORMATS)

    def own_labels(where: str) -> None:
        if labels is not None or label_from_header is not None:
            raise ValueError(f"the labels of {where}; drop labels= / label_from_header=")
    if isinstance(source, (pd.DataFrame, pl.DataFrame)):
        own_labels(f"a table come from its {label_col!r} column (label_col=)")
        return _read_frame(source, sequence_col, label_col, ambiguity, rna, "the DataFrame")
    if isinstance(source, Mapping):
        own_labels("a dict {class_label: file} are its keys")
        if not source:
            raise ValueError("the dict {class_label: file} is empty")
        parts = {label: read_dna(path, file_format=file_format, ambiguity=ambiguity, rna=rna)
                 for label, path in source.items()}
        return DNARecords([s for part in parts.values() for s in part.sequences],
                          [_scalar(label) for label, part in parts.items() for _ in part.names],
                          [n for part in parts.values() for n in part.names])
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            hint = (" (to read sequences from memory pass a list, e.g. read_dna(['ACGT']))"
                    if isinstance(source, str) and "/" not in source else "")
            raise ValueError(f"file or folder not found: {str(path)!r}{hint}")
        if path.is_dir():
            if (path / "train").is_dir() and (path / "test").is_dir():
                raise ValueError(f"{path} is a Genomic Benchmarks root with train/ and test/; "
                                 f"use read_genomic_benchmark(path) or read_dna(path / 'train')")
            own_labels("a Genomic Benchmarks folder are its class folder names")
            return _read_benchmark_split(path, ambiguity, rna)
        fmt = file_format or _detect_format(path)
        if fmt in ("fasta", "fastq"):
            return _read_fastx(path, fmt, labels, label_from_header, ambiguity, rna)
        own_labels(f"a table come from its {label_col!r} column (label_col=)")
        return _read_frame(_read_table(path, fmt), sequence_col, label_col, ambiguity, rna,
                           str(path))
    if isinstance(source, (list, tuple, np.ndarray, pd.Series, pl.Series)):
        raw = source.to_list() if isinstance(source, pl.Series) else list(source)
        if isinstance(source, np.ndarray) and source.ndim != 1:
            raise ValueError(f"an array of sequences must be 1-D, got shape {source.shape}")
        if label_from_header is not None:
            raise ValueError("label_from_header needs FASTA/FASTQ headers; for a list pass "
                             "labels= with one label per sequence")
        found = None
        if labels is not None:
            if isinstance(labels, (str, bytes, Mapping)) or not hasattr(labels, "__len__"):
                raise TypeError(f"labels for a list of sequences must be a list/array of the "
                                f"same length, got {type(labels).__name__}")
            found = _check_labels(list(labels), "labels")
            if len(found) != len(raw):
                raise ValueError(f"{len(found)} labels for {len(raw)} sequences; give one label "
                                 f"per sequence")
        names = [f"seq{i}" for i in range(len(raw))]
        return DNARecords(_normalise_all(raw, names, ambiguity, rna, "the sequence list"),
                          found, names)
    raise TypeError(f"cannot read DNA from a {type(source).__name__}; give a list of str, a "
                    f"FASTA/FASTQ/CSV/TSV/Parquet path, a DataFrame, a dict "
                    f"{{class_label: path}} or a Genomic Benchmarks folder")

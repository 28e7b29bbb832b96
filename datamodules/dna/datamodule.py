"""`DNADataModule`: labelled DNA sequences for Lightning, from any :func:`read_dna` source.

Batches are ``{"inputs", "mask", "label"}``: ``inputs`` is int64 ``(B, T)`` token ids (char,
kmer) or float32 ``(B, T, 4)`` one-hot, ``mask`` is bool ``(B, T)`` with True = valid, and
``label`` is int64 ``(B,)`` class indices into ``classes_`` (-1 when unlabelled). ``T`` is
the longest sequence of the batch, cropped to ``max_length`` (or exactly ``max_length`` with
``padding="max_length"``).

Padding is always at the END of each row. A causal/recurrent reader (the Titans memory) must
therefore take its output at the last valid position, ``mask.sum(1) - 1``, or pool with the
mask, and must not let padding positions write into memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Sequence

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import polars
import torch
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, Dataset, get_worker_info

from ..checks import (InvalidParameterError, boolean, choice, crop_options, fraction,
                      integer)
from ..datasets import resolve_embedded
from ..loaders import RoleLoaders
from ..sampling import training_sampler
from .alphabet import AMBIGUITY, normalize_sequence, reverse_complement
from .readers import DNARecords, _detect_format, read_dna, read_genomic_benchmark
from .tokenizers import TOKENIZERS, DNATokenizer, KmerTokenizer, make_tokenizer, pad_rows

__all__ = ["DNACollator", "DNADataModule", "DNADataset", "can_stratify", "collate_dna",
           "stratified_split"]

Crop = Literal["right", "left", "center"]


class DNADataset(Dataset):
    """Normalised sequences with integer labels, encoded on access.

    Parameters
    ----------
    sequences : sequence of str
        DNA sequences (normalised again here, with IUPAC codes → N, so raw strings work too).
    labels : ndarray or None
        Integer class index per sequence, or None (then ``"label"`` is -1).
    tokenizer : DNATokenizer
        Encodes each (possibly reverse-complemented) string.
    rc_augment : float
        Probability of reverse-complementing a sequence, on the string before encoding.
    seed : int
        Seed of the augmentation draws. In a DataLoader worker the draws are seeded from
        ``(seed, worker seed)``, so they are reproducible given the loader's generator.
    names : sequence of str, optional
        The records' names (what a prediction writer labels each sequence's row with);
        None: ``seq{i}``.
    """

    def __init__(self, sequences: Sequence[str], labels: np.ndarray | None,
                 tokenizer: DNATokenizer, *, rc_augment: float = 0.0, seed: int = 0,
                 names: Sequence[str] | None = None) -> None:
        if isinstance(sequences, str) or not hasattr(sequences, "__len__"):
            raise TypeError("sequences must be a list of str, got "
                            f"{type(sequences).__name__}; wrap a single sequence in a list")
        if not isinstance(tokenizer, DNATokenizer):
            raise TypeError(f"tokenizer must be a DNATokenizer (e.g. make_tokenizer('char')), "
                            f"got {type(tokenizer).__name__}")
        rc_augment = fraction("rc_augment", rc_augment, one=True)
        self.sequences = [normalize_sequence(s, name=f"seq{i}") for i, s in enumerate(sequences)]
        if labels is not None:
            labels = np.asarray(labels)
            if labels.shape != (len(self.sequences),) or not np.issubdtype(labels.dtype,
                                                                            np.integer):
                raise ValueError(f"labels must be integer class indices of shape "
                                 f"({len(self.sequences)},), got {labels.dtype} "
                                 f"{labels.shape}; map labels to indices first")
            labels = labels.astype(np.int64)
        self.labels = labels
        self.names = None if names is None else [str(name) for name in names]
        if self.names is not None and len(self.names) != len(self.sequences):
            raise ValueError(f"names has {len(self.names)} entries for "
                             f"{len(self.sequences)} sequences; give one name per sequence")
        self.tokenizer, self.rc_augment, self.seed = tokenizer, float(rc_augment), int(seed)
        self._generator: np.random.Generator | None = None
        self._generator_key: Any = "unset"

    def __len__(self) -> int:
        return len(self.sequences)

    def name(self, index: int) -> str:
        """The name of sequence ``index`` (``seq{index}`` when none was given)."""
        return f"seq{index}" if self.names is None else self.names[index]

    def _rng(self) -> np.random.Generator:
        # Each worker process holds a copy of the dataset; re-seed whenever the worker (or a
        # new epoch's worker seed) changes, so draws do not repeat across workers.
        info = get_worker_info()
        key = None if info is None else (info.id, info.seed)
        if key != self._generator_key:
            entropy = [self.seed] if info is None else [self.seed, info.seed]
            self._generator = np.random.default_rng(np.random.SeedSequence(entropy))
            self._generator_key = key
        return self._generator

    def __getitem__(self, index: int) -> dict[str, Any]:
        sequence = self.sequences[index]
        if self.rc_augment > 0 and self._rng().random() < self.rc_augment:
            sequence = reverse_complement(sequence)
        label = -1 if self.labels is None else self.labels[index]
        return {"inputs": self.tokenizer.encode(sequence), "label": np.int64(label)}


class DNACollator:
    """A DataLoader ``collate_fn`` that pads :class:`DNADataset` items into one batch; its
    options are checked once, here (picklable, so it works with worker processes).

    Batches are ``inputs`` (B, T) int64 or (B, T, C) float32, ``mask`` (B, T) bool with
    True = valid and padding at the end of each row, ``label`` (B,) int64 (-1 = unlabelled).
    """

    def __init__(self, pad_id: int, max_length: int | None = None, crop: Crop = "right",
                 padding: Literal["dynamic", "max_length"] = "dynamic") -> None:
        self.pad_id = integer("pad_id", pad_id, None)
        self.max_length, self.crop, self.padding = crop_options(max_length, crop, padding)

    def __call__(self, items: list[dict]) -> dict[str, torch.Tensor]:
        if not isinstance(items, (list, tuple)) or not items:
            raise ValueError("collate_dna needs a non-empty list of dataset items")
        if any(not isinstance(item, dict) or "inputs" not in item for item in items):
            raise TypeError("collate_dna items must be dicts with an 'inputs' array "
                            "(DNADataset items)")
        inputs, mask = pad_rows([item["inputs"] for item in items], self.pad_id,
                                self.max_length, self.crop, self.padding)
        labels = torch.tensor([int(item.get("label", -1)) for item in items],
                              dtype=torch.long)
        return {"inputs": inputs, "mask": mask, "label": labels}


def collate_dna(items: list[dict], *, pad_id: int, max_length: int | None = None,
                crop: Crop = "right", padding: Literal["dynamic", "max_length"] = "dynamic"
                ) -> dict[str, torch.Tensor]:
    """Pad a list of :class:`DNADataset` items into one batch (see :class:`DNACollator`,
    the ``collate_fn`` to give a DataLoader)."""
    return DNACollator(pad_id, max_length, crop, padding)(items)


def can_stratify(y: np.ndarray, fraction: float) -> bool:
    """Whether ``fraction`` of the labels ``y`` (class indices) can be held out stratified:
    every class has 2 members or more, and both parts have a row of each class."""
    counts = np.bincount(y)
    counts = counts[counts > 0]
    held = int(np.ceil(fraction * len(y)))
    return fraction > 0 and counts.min() >= 2 and len(counts) <= held <= len(y) - len(counts)


def stratified_split(index: np.ndarray, y: np.ndarray, fraction: float, seed: int | None,
                     part: str, classes: list) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``index`` split into (kept, held out), ``fraction`` of them held out with the class
    shares of ``y[index]`` (class indices into ``classes``), in an order fixed by ``seed``.
    The one split of the DNA datamodule and of ``TitansClassifier``'s early-stopping part."""
    counts = np.bincount(y[index], minlength=len(classes))
    for c in np.flatnonzero((counts > 0) & (counts < 2)):
        raise ValueError(f"class {classes[c]!r} has only {counts[c]} sequence(s) to split "
                         f"into train and {part}; a stratified split needs >= 2 per class: "
                         f"add examples, drop the class, or set {part}_fraction=0")
    try:
        return train_test_split(index, test_size=fraction, stratify=y[index],
                                random_state=seed)
    except ValueError as error:
        raise ValueError(f"cannot split {len(index)} sequences of {len(classes)} classes with "
                         f"{part}_fraction={fraction}: {error}; use a larger {part}_fraction "
                         "or more data") from None


def _is_fastx(source: Any) -> bool:
    """Whether ``source`` is a FASTA/FASTQ path (the sources that side labels apply to)."""
    if not isinstance(source, (str, Path)):
        return False
    try:
        return _detect_format(Path(source)) in ("fasta", "fastq")
    except ValueError:
        return False


def _is_sequence_list(source: Any) -> bool:
    return isinstance(source, (list, tuple, np.ndarray, pd.Series, polars.Series))


def _is_benchmark_root(source: Any) -> bool:
    return isinstance(source, (str, Path)) and (Path(source) / "train").is_dir() \
        and (Path(source) / "test").is_dir()


class DNADataModule(RoleLoaders, pl.LightningDataModule):
    """DNA sequences for classification (labelled) or self-supervised pre-training
    (``labelled=False``): reading, splits, batches.

    Parameters
    ----------
    train
        Any :func:`read_dna` source, the name of an embedded dataset
        (``"nontata_promoters"``), or a Genomic Benchmarks root with ``train/`` and
        ``test/`` (its ``test/`` is then the test set). Needs labels unless
        ``labelled=False``.
    test, predict
        Optional further sources; ``test`` needs labels seen in ``train``; ``predict``
        labels are ignored.
    labels, label_from_header, sequence_col, label_col
        How labels are read (see :func:`read_dna`). A side table / dict / regex applies to
        every FASTA/FASTQ source; a plain list of labels applies to ``train`` only.
    labelled : bool
        False: sequences for pre-training (:class:`~titans_seq.PretrainingModule`), labels
        not needed: batches carry ``label`` −1 and there are no classes. Labels the source
        has still stratify the splits, so ``test_fraction`` and ``val_fraction`` hold out
        exactly the sequences a labelled datamodule with the same seed holds out (pre-training
        never sees the classifier's test part); without labels the splits are random
        (seeded).
    val_fraction : float
        Fraction of the training part held out for validation (stratified, seeded).
    test_fraction : float
        Fraction of ``train`` held out first as a test set when no ``test`` is given.
    tokenizer : {"char", "onehot", "kmer"}
        Encoding (``k`` is the k-mer length).
    max_length : int, optional
        Crop longer sequences to this many tokens (``crop`` says which end is cut).
        Reverse-complement augmentation happens on the whole string first, so with
        ``crop="right"``/``"left"`` an augmented example shows the other end of the sequence.
    padding : {"dynamic", "max_length"}
        Pad each batch to its longest row, or to exactly ``max_length`` (fixed shapes).
    ambiguity, rna
        Normalisation policy (see :func:`normalize_sequence`).
    rc_augment : float
        Probability of reverse-complementing a training sequence (not val/test/predict).
    batch_size, num_workers, seed
        DataLoader settings; ``seed`` fixes the splits, the shuffling and the augmentation.

    Notes
    -----
    Each row of a batch is padded at its END (``mask`` True = valid): a model must read its
    last valid position (``mask.sum(1) - 1``) or pool with the mask.
    """

    def __init__(self, train: Any = None, test: Any = None, predict: Any = None, *,
                 labels: Any = None, label_from_header: str | None = None,
                 sequence_col: str = "sequence", label_col: str = "label",
                 labelled: bool = True, val_fraction: float = 0.1, test_fraction: float = 0.0,
                 tokenizer: Literal["char", "onehot", "kmer"] = "char", k: int = 6,
                 max_length: int | None = None, crop: Crop = "right",
                 padding: Literal["dynamic", "max_length"] = "dynamic",
                 ambiguity: Literal["n", "error"] = "n", rna: bool = False,
                 rc_augment: float = 0.0, batch_size: int = 64, num_workers: int = 0,
                 seed: int = 0) -> None:
        super().__init__()
        val_fraction = fraction("val_fraction", val_fraction)
        test_fraction = fraction("test_fraction", test_fraction)
        if val_fraction + test_fraction >= 1:
            raise InvalidParameterError("val_fraction + test_fraction must leave sequences "
                                        "for training")
        if test_fraction > 0 and (test is not None or _is_benchmark_root(train)):
            raise InvalidParameterError("test_fraction splits a test set off train, but a "
                                        "test set is already given; set test_fraction=0")
        choice("tokenizer", tokenizer, TOKENIZERS)
        k = KmerTokenizer(k).k  # validates k (1..8) whichever tokenizer is chosen
        max_length, crop, padding = crop_options(max_length, crop, padding)
        choice("ambiguity", ambiguity, AMBIGUITY)
        rc_augment = fraction("rc_augment", rc_augment, one=True)
        batch_size, num_workers = integer("batch_size", batch_size), integer("num_workers",
                                                                             num_workers, 0)
        seed = integer("seed", seed, 0)
        self.labelled = boolean("labelled", labelled)
        self.train, self.test, self.predict = train, test, predict
        self.labels, self.label_from_header = labels, label_from_header
        self.sequence_col, self.label_col = sequence_col, label_col
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.tokenizer, self.k, self.max_length, self.crop = tokenizer, k, max_length, crop
        self.padding = padding
        self.ambiguity, self.rna, self.rc_augment = ambiguity, rna, rc_augment
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        # Only plain values go into hparams (DataFrames, lists and dicts stay out of YAML).
        plain = (str, int, float, bool, type(None))
        self.save_hyperparameters(ignore=[name for name, value in (
            ("train", train), ("test", test), ("predict", predict), ("labels", labels),
            ("label_from_header", label_from_header)) if not isinstance(value, plain)])
        self._classes: np.ndarray | None = None
        self._tokenizer: DNATokenizer | None = None
        self.datasets: dict[str, DNADataset] = {}

    # -- properties -----------------------------------------------------------------------
    @property
    def classes_(self) -> np.ndarray:
        """Sorted unique training labels; index ``i`` is class ``i`` of the batches."""
        if self._classes is None:
            raise ValueError("the classes are known after setup() (or load_state_dict from a "
                             "checkpoint); call setup('fit') first")
        return self._classes

    @property
    def n_classes(self) -> int:
        if not self.labelled:
            raise ValueError("this DNADataModule is unlabelled (labelled=False, for "
                             "pre-training): it has no classes; set labelled=True to classify")
        return len(self.classes_)

    @property
    def tokenizer_(self) -> DNATokenizer:
        if self._tokenizer is None:
            self._tokenizer = make_tokenizer(self.tokenizer, self.k)
        return self._tokenizer

    @property
    def vocab_size(self) -> int | None:
        return self.tokenizer_.vocab_size

    @property
    def n_features(self) -> int:
        return self.tokenizer_.n_features

    # -- reading and splitting -------------------------------------------------------------
    def _read(self, source: Any, *, labels: Any, label_from_header: Any) -> DNARecords:
        source = resolve_embedded(source)
        sources = tuple(resolve_embedded(s) for s in (self.train, self.test, self.predict))
        if not _is_fastx(source) and not _is_sequence_list(source) \
                and any(_is_fastx(other) for other in sources):
            # Side labels and header rules are for the FASTA/FASTQ sources; a table beside
            # them carries its own label column.
            labels, label_from_header = None, None
        return read_dna(source, labels=labels, label_from_header=label_from_header,
                        sequence_col=self.sequence_col, label_col=self.label_col,
                        ambiguity=self.ambiguity, rna=self.rna)

    def _side_labels(self) -> Any:
        """``labels`` that apply to every source (a table/dict, not a per-train list)."""
        per_item = isinstance(self.labels, (list, tuple, np.ndarray, pd.Series, polars.Series))
        return None if per_item else self.labels

    def _indices(self, records: DNARecords, role: str) -> np.ndarray:
        if not self.labelled and (records.labels is None or role != "training"):
            return np.zeros(len(records), dtype=np.int64)
        if records.labels is None:
            raise ValueError(f"the {role} data has no labels; give labels= (a list or an "
                             f"id → label table), label_from_header=, or a {self.label_col!r} "
                             f"column (label_col=)")
        lookup = {label: i for i, label in enumerate(self.classes_.tolist())}
        unseen = sorted({label for label in records.labels if label not in lookup}, key=str)
        if unseen:
            raise ValueError(f"the {role} data has label(s) {unseen[:5]} that are not among the "
                             f"classes {self.classes_.tolist()} (of the training data or the "
                             f"checkpoint); fix the labels or add training examples of them")
        return np.array([lookup[label] for label in records.labels], dtype=np.int64)

    def _split(self, index: np.ndarray, y: np.ndarray, fraction: float, part: str
               ) -> tuple[np.ndarray, np.ndarray]:
        return stratified_split(index, y, fraction, self.seed, part,
                                self.classes_.tolist())

    def _setup_train(self) -> None:
        side = self._side_labels()
        if _is_benchmark_root(self.train):
            parts = read_genomic_benchmark(self.train, ambiguity=self.ambiguity, rna=self.rna)
            if self.test is not None:
                raise ValueError("train is a Genomic Benchmarks root whose test/ folder is the "
                                 "test set; drop test= or pass train=<root>/train")
            if self.labels is not None or self.label_from_header is not None:
                raise ValueError("the labels of a Genomic Benchmarks root are its class folder "
                                 "names; drop labels= / label_from_header=")
            train, test = parts["train"], parts["test"]
        else:
            train = self._read(self.train, labels=self.labels,
                               label_from_header=self.label_from_header)
            test = None if self.test is None else self._read(
                self.test, labels=side, label_from_header=self.label_from_header)
        if not self.labelled and train.labels is None:
            self._classes = np.array(["unlabelled"])  # one class: random splits
        else:
            if train.labels is None:
                self._indices(train, "training")  # raises with the fix
            types = {type(label) for label in train.labels}
            if len(types) > 1 and not types <= {int, float}:
                raise ValueError(f"training labels mix types "
                                 f"{sorted(t.__name__ for t in types)}; use all strings or all "
                                 f"numbers")
            if self._classes is None:
                self._classes = np.array(sorted(set(train.labels)))
        y = self._indices(train, "training")
        index = np.arange(len(train))
        parts_index = {}
        if self.test_fraction > 0:
            index, parts_index["test"] = self._split(index, y, self.test_fraction, "test")
        if self.val_fraction > 0:
            index, parts_index["val"] = self._split(index, y, self.val_fraction, "val")
        parts_index["train"] = index
        tokenizer = self.tokenizer_
        for role, chosen in parts_index.items():
            chosen = np.sort(chosen)  # keep file order inside each part
            self.datasets[role] = DNADataset(
                [train.sequences[i] for i in chosen], y[chosen] if self.labelled else None,
                tokenizer,
                rc_augment=self.rc_augment if role == "train" else 0.0, seed=self.seed)
        if test is not None:
            self.datasets["test"] = DNADataset(
                test.sequences, self._indices(test, "test") if self.labelled else None,
                tokenizer, seed=self.seed)

    def setup(self, stage: str | None = None) -> None:
        """Read and split the data once; later calls only add what a new stage needs."""
        needs_train = stage != "predict" or self._classes is None
        if self.train is not None and needs_train and "train" not in self.datasets:
            self._setup_train()
        elif self.train is None and self.test is not None and "test" not in self.datasets \
                and stage in (None, "test"):
            if self._classes is None:
                raise ValueError("the test labels need the classes: give train= or restore "
                                 "them with load_state_dict (a checkpoint)")
            test = self._read(self.test, labels=self._side_labels(),
                              label_from_header=self.label_from_header)
            self.datasets["test"] = DNADataset(test.sequences, self._indices(test, "test"),
                                               self.tokenizer_, seed=self.seed)
        if self.predict is not None and stage in (None, "predict") \
                and "predict" not in self.datasets:
            records = self._read(self.predict, labels=None, label_from_header=None)
            self.datasets["predict"] = DNADataset(records.sequences, None, self.tokenizer_,
                                                  names=records.names)
        required = {"fit": "train", "validate": "val", "test": "test", "predict": "predict"}
        if stage in required and required[stage] not in self.datasets:
            source = {"train": "train=", "val": "train= with val_fraction > 0",
                      "test": "test= (or test_fraction > 0, or a Genomic Benchmarks root)",
                      "predict": "predict="}[required[stage]]
            raise ValueError(f"stage {stage!r} needs {source} in DNADataModule")

    # -- loaders ----------------------------------------------------------------------------
    def _loader(self, role: str) -> DataLoader | list:
        dataset = self.datasets.get(role)
        if dataset is None or len(dataset) == 0:
            return []
        collate = DNACollator(self.tokenizer_.pad_id, self.max_length, self.crop,
                              self.padding)
        # The order depends only on (seed, epoch): resuming from a checkpoint repeats it.
        sampler = training_sampler(dataset, True, self.seed) if role == "train" else None
        return DataLoader(dataset, batch_size=self.batch_size, sampler=sampler,
                          collate_fn=collate, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)


    # -- the classes travel with checkpoints --------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        classes = None if self._classes is None else self._classes.tolist()
        return {"classes": classes, "tokenizer": self.tokenizer, "k": self.k}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not isinstance(state_dict, dict):
            raise TypeError(f"state_dict must be a dict, got {type(state_dict).__name__}")
        saved = (state_dict.get("tokenizer", self.tokenizer), state_dict.get("k", self.k))
        if saved[0] != self.tokenizer or (saved[0] == "kmer" and saved[1] != self.k):
            raise ValueError(f"the checkpoint was made with tokenizer={saved[0]!r}, k={saved[1]}"
                             f", this DNADataModule has tokenizer={self.tokenizer!r}, "
                             f"k={self.k}; create it with the checkpoint's settings")
        classes = state_dict.get("classes")
        if classes is not None:
            if self.datasets and self._classes is not None and \
                    self._classes.tolist() != list(classes):
                raise ValueError(f"the checkpoint's classes {list(classes)} differ from those of "
                                 f"the data already set up, {self._classes.tolist()}; use the "
                                 f"data the checkpoint was trained on")
            self._classes = np.array(classes)

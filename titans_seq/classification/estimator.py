"""`TitansClassifier`: a scikit-learn classifier of DNA strings and numeric sequences."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from sklearn.base import ClassifierMixin, clone
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data
from torch.utils.data import Dataset

from datamodules.checks import boolean, choice, crop_options, fraction, integer, real
from datamodules.dna import (DNACollator, DNADataset, can_stratify, make_tokenizer,
                             normalize_sequence, stratified_split)
from datamodules.dna.alphabet import AMBIGUITY
from datamodules.timeseries.frames import is_real_dtype

from ..base import TitansEstimator
from .module import ClassificationModule

PREDICT_BATCH = 256


class TitansClassifier(ClassifierMixin, TitansEstimator):
    """Sequence classifier with a Titans encoder (scikit-learn API).

    ``X`` is either DNA — a list, tuple, 1-D array or Series of strings, of any lengths — or
    numeric sequences: an array ``(n, L)`` is ``n`` univariate series of length ``L`` (so any
    2-D feature matrix is accepted), ``(n, L, C)`` is ``n`` series of ``C`` channels. Numeric
    channels are standardised with the training data's per-channel mean and std.

    Parameters
    ----------
    variant, dim, depth, heads, memory_depth, chunk_size, dropout, bidirectional
        The :class:`~titans_seq.TitansEncoder` (``"lmm"``: the memory alone, the paper's DNA
        model).
    readout : {"mean", "last"}
        Mean over valid positions, or the last valid position (causal encoders).
    stem_kernel : int
        A causal convolution of this width across channels before the encoder (0: none), so
        each token carries a short motif.
    max_surprise_norm : float, optional
        Clip each memory write's surprise to this norm (stability of deep memories; see
        :class:`ClassificationModule`); None is the paper's unclipped update.
    tokenizer : {"char", "onehot", "kmer"}
        DNA tokens: one per base, one-hot channels, or non-overlapping ``k``-mers.
    k : int
        k-mer length (``tokenizer="kmer"``).
    max_length, crop, padding
        Crop DNA longer than ``max_length`` tokens: ``"right"`` keeps the first tokens,
        ``"left"`` the last, ``"center"`` the middle. Shorter sequences are padded (at the end,
        masked) to the batch's longest, or to exactly ``max_length`` with
        ``padding="max_length"``.
    ambiguity : {"n", "error"}
        IUPAC ambiguity codes (R, Y, …) read as N, or refused.
    rna : bool
        Read U as T.
    rc_augment : float
        Probability of training on a sequence's reverse complement instead.
    rc_average : bool
        Average each prediction with the prediction for the reverse complement (char and
        one-hot tokens).
    max_epochs, batch_size, lr, weight_decay, patience, val_fraction
        Training: AdamW with warm-up and cosine decay; ``val_fraction`` of the data held out,
        stratified, for early stopping on the validation loss (best weights kept). When the data
        are too small for a stratified hold-out (a class with fewer than 2 members, or fewer
        held-out rows than classes) or ``val_fraction=0``, all data train for ``max_epochs``.
    random_state : int or numpy RandomState, optional
        Seed of initialisation, split, shuffling and augmentation; the caller's torch random
        state (CPU and GPUs) is left untouched.
    verbose : bool
        Progress bar during fit.
    accelerator, devices, trainer_kwargs
        Passed to the Lightning Trainer (``devices=1``: no surprise multi-GPU;
        ``gradient_clip_val=1.0`` unless ``trainer_kwargs`` says otherwise). The fitted module
        is moved to the CPU, where ``predict`` runs without a Trainer.

    Attributes
    ----------
    classes_ : ndarray
        The class labels, sorted.
    module_ : ClassificationModule
        The trained network (CPU).
    input_kind_ : {"dna", "numeric"}
        What ``fit`` was given.
    n_features_in_ : int
        Numeric input only: the sequence length ``L`` (scikit-learn's feature count).
    n_channels_ : int
        Numeric input only: ``C``.
    channel_mean_, channel_std_ : ndarray
        Numeric input only: the standardisation of each channel.
    """

    def __init__(self, variant: Literal["lmm", "mac", "mag", "mal"] = "lmm", dim: int = 64,
                 depth: int = 2, heads: int = 4, memory_depth: int = 2, chunk_size: int = 16,
                 dropout: float = 0.1, bidirectional: bool = False,
                 readout: Literal["mean", "last"] = "mean", stem_kernel: int = 0,
                 max_surprise_norm: float | None = 5.0,
                 tokenizer: Literal["char", "onehot", "kmer"] = "char", k: int = 6,
                 max_length: int | None = None,
                 crop: Literal["right", "left", "center"] = "right",
                 padding: Literal["dynamic", "max_length"] = "dynamic",
                 ambiguity: Literal["n", "error"] = "n", rna: bool = False,
                 rc_augment: float = 0.0, rc_average: bool = False, max_epochs: int = 10,
                 batch_size: int = 64, lr: float = 1e-3, weight_decay: float = 1e-2,
                 patience: int = 3, val_fraction: float = 0.1,
                 random_state: int | None = None, verbose: bool = False,
                 accelerator: str = "auto", devices: int | str = 1,
                 trainer_kwargs: dict | None = None) -> None:
        self.variant, self.dim, self.depth, self.heads = variant, dim, depth, heads
        self.memory_depth, self.chunk_size, self.dropout = memory_depth, chunk_size, dropout
        self.bidirectional, self.readout, self.stem_kernel = bidirectional, readout, stem_kernel
        self.max_surprise_norm = max_surprise_norm
        self.tokenizer, self.k, self.max_length, self.crop = tokenizer, k, max_length, crop
        self.padding = padding
        self.ambiguity, self.rna = ambiguity, rna
        self.rc_augment, self.rc_average = rc_augment, rc_average
        self.max_epochs, self.batch_size, self.lr = max_epochs, batch_size, lr
        self.weight_decay, self.patience, self.val_fraction = weight_decay, patience, val_fraction
        self.random_state, self.verbose = random_state, verbose
        self.accelerator, self.devices, self.trainer_kwargs = accelerator, devices, trainer_kwargs

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags

    # -- fit ---------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any) -> "TitansClassifier":
        """Train on sequences ``X`` with labels ``y`` (any hashable class labels). A failed
        fit leaves the classifier as it was."""
        params = self._check_params()
        fitted: dict[str, Any] = {}
        if _is_dna(X):
            if y is None:
                raise ValueError(f"{type(self).__name__} requires y to be passed, but the "
                                 "target y is None")
            sequences = self._normalise(X)
            y = column_or_1d(y, warn=True)
            if len(y) != len(sequences):
                raise ValueError(f"X has {len(sequences)} sequences but y has {len(y)} labels; "
                                 "pass one label per sequence")
            kind = "dna"
        else:
            for name, unused in (("rc_augment", self.rc_augment > 0),
                                 ("rc_average", self.rc_average),
                                 ("max_length", self.max_length is not None)):
                if unused:
                    raise ValueError(f"{name} applies to DNA strings, and X is numeric; leave "
                                     f"{name} at its default for numeric sequences")
            # scikit-learn's checks record n_features_in_ on the estimator they are given:
            # a clone holds them until the fit has succeeded.
            scratch = clone(self)
            X, y = validate_data(scratch, X, y, allow_nd=True, dtype=[np.float64, np.float32])
            fitted.update({name: value for name, value in vars(scratch).items()
                           if name in ("n_features_in_", "feature_names_in_")})
            X = _sequences_3d(X)
            std = X.std(axis=(0, 1))
            fitted.update(n_channels_=X.shape[2], channel_mean_=X.mean(axis=(0, 1)),
                          channel_std_=np.where(std > 0, std, 1.0))
            sequences = _standardise(X, fitted["channel_mean_"], fitted["channel_std_"])
            kind = "numeric"
        check_classification_targets(y)
        classes, label_index = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"y has only one class ({classes.tolist()[0]!r}); a classifier "
                             "can't train "
                             "when only one class is present: pass examples of at least two")
        seed = params["seed"]
        rows = np.arange(len(label_index))
        train_rows, val_rows = rows, rows[:0]
        if can_stratify(label_index, params["val_fraction"]):
            train_rows, val_rows = (np.sort(part) for part in stratified_split(
                rows, label_index, params["val_fraction"], seed, "val", classes.tolist()))
        n_channels = fitted.get("n_channels_")
        module = self._fit_module(
            lambda: self._build(len(classes), kind, n_channels, params),
            self._dataset(kind, sequences, label_index, train_rows, True, seed),
            self._dataset(kind, sequences, label_index, val_rows, False, seed)
            if len(val_rows) else None, params, monitor="val_loss",
            trainer_defaults={"gradient_clip_val": 1.0}, collate_fn=self._collate(kind))
        self._commit({**fitted, "input_kind_": kind, "classes_": classes, "module_": module})
        return self

    def _build(self, n_classes: int, kind: str, n_channels: int | None,
               params: dict[str, Any]) -> ClassificationModule:
        if kind == "dna":
            tokens = make_tokenizer(self.tokenizer, params["k"])
            shape = ({"vocab_size": tokens.vocab_size} if tokens.is_ids
                     else {"n_features": tokens.n_features})
        else:
            shape = {"n_features": n_channels}
        return ClassificationModule(
            n_classes=n_classes, **shape, readout=self.readout,
            stem_kernel=params["stem_kernel"], variant=self.variant, dim=params["dim"],
            depth=params["depth"], heads=params["heads"],
            memory_heads=min(4, params["dim"]) if params["dim"] % 4 == 0 else 1,
            memory_depth=params["memory_depth"], chunk_size=params["chunk_size"],
            dropout=params["dropout"], bidirectional=params["bidirectional"],
            max_surprise_norm=params["max_surprise_norm"],
            tokenizer=self.tokenizer if kind == "dna" else None,
            rc_average=params["rc_average"] and kind == "dna", lr=params["lr"],
            weight_decay=params["weight_decay"])

    def _dataset(self, kind: str, sequences: Any, label_index: np.ndarray | None,
                 rows: np.ndarray, train: bool, seed: int | None = None) -> Dataset:
        labels = None if label_index is None else label_index[rows]
        if kind == "dna":
            return DNADataset([sequences[i] for i in rows], labels,
                              make_tokenizer(self.tokenizer, int(self.k)),
                              rc_augment=float(self.rc_augment) if train else 0.0,
                              seed=seed or 0)
        return _ArraySequences(sequences[rows], labels)

    def _collate(self, kind: str) -> DNACollator:
        if kind != "dna":
            return DNACollator(0)
        return DNACollator(make_tokenizer(self.tokenizer, int(self.k)).pad_id,
                           self.max_length, self.crop, self.padding)

    # -- predict -----------------------------------------------------------------------------
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``(n, n_classes)``, columns in the order of ``classes_``."""
        check_is_fitted(self)
        if _is_dna(X):
            if self.input_kind_ != "dna":
                raise ValueError("X holds DNA strings but the classifier was fitted on numeric "
                                 "sequences; pass an array like the one given to fit")
            sequences = self._normalise(X)
            lengths = np.array([len(s) for s in sequences])
        else:
            if self.input_kind_ != "numeric":
                raise ValueError(f"{_describe(X)}, but the classifier was fitted on DNA "
                                 "strings; pass a list of sequences, each a str")
            X = _sequences_3d(validate_data(self, X, reset=False, allow_nd=True,
                                            dtype=[np.float64, np.float32]))
            if X.shape[2] != self.n_channels_:
                raise ValueError(f"X has {X.shape[2]} channels, but {type(self).__name__} was "
                                 f"fitted on {self.n_channels_}")
            sequences = _standardise(X, self.channel_mean_, self.channel_std_)
            lengths = np.full(len(sequences), sequences.shape[1])
        # Similar lengths together: less padding to compute; the order is restored below.
        order = np.argsort(lengths, kind="stable")
        dataset = self._dataset(self.input_kind_, sequences, None, order, False)
        collate = self._collate(self.input_kind_)
        probabilities = []
        with torch.inference_mode():
            for start in range(0, len(order), PREDICT_BATCH):
                batch = collate([dataset[i] for i in
                                 range(start, min(start + PREDICT_BATCH, len(order)))])
                probabilities.append(self.module_.predict_proba(batch["inputs"], batch["mask"]))
        result = np.empty((len(order), len(self.classes_)), dtype=np.float64)
        result[order] = torch.cat(probabilities).double().numpy()
        return result

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each sequence."""
        probabilities = self.predict_proba(X)  # checks that the classifier is fitted
        return self.classes_[probabilities.argmax(1)]

    # -- input checks ------------------------------------------------------------------------
    def _normalise(self, X: Any) -> list[str]:
        sequences = list(X)
        if not sequences:
            raise ValueError("X is empty: pass at least one DNA sequence")
        return [normalize_sequence(s, ambiguity=self.ambiguity, rna=self.rna, name=f"X[{i}]")
                for i, s in enumerate(sequences)]

    def _check_params(self) -> dict[str, Any]:
        """Every parameter checked once, before any data is read (plain Python values)."""
        params = self._check_training_params()
        for name, options in (("variant", ("lmm", "mac", "mag", "mal")),
                              ("readout", ("mean", "last")),
                              ("tokenizer", ("char", "onehot", "kmer")),
                              ("ambiguity", AMBIGUITY)):
            choice(name, getattr(self, name), options)
        crop_options(self.max_length, self.crop, self.padding)
        for name in ("dim", "depth", "heads", "memory_depth", "chunk_size"):
            params[name] = integer(name, getattr(self, name))
        params["k"] = integer("k", self.k, 1, 8)
        params["stem_kernel"] = integer("stem_kernel", self.stem_kernel, 0, hint="0: no stem")
        params["dropout"] = fraction("dropout", self.dropout)
        params["weight_decay"] = real("weight_decay", self.weight_decay, 0.0)
        params["max_surprise_norm"] = real("max_surprise_norm", self.max_surprise_norm, 0.0,
                                           low_open=True, optional=True,
                                           hint="None: the paper's unclipped update")
        fraction("rc_augment", self.rc_augment, one=True)
        for name in ("bidirectional", "rna", "rc_average"):
            params[name] = boolean(name, getattr(self, name))
        return params


def _sequences_3d(X: np.ndarray) -> np.ndarray:
    """Numeric sequences as ``(n, L, C)``: a 2-D ``X`` is ``n`` univariate series."""
    if X.ndim == 2:
        return X[:, :, None]  # (n, L, 1)
    if X.ndim != 3:
        raise ValueError(f"numeric X must be (n, L) or (n, L, C), got {X.ndim} dimensions")
    return X


def _standardise(X: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return ((X - mean) / std).astype(np.float32)


class _ArraySequences(Dataset):
    """Numeric sequences ``(n, L, C)`` as items of the DNA datamodule's batch layout."""

    def __init__(self, values: np.ndarray, labels: np.ndarray | None) -> None:
        self.values, self.labels = values, labels

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = {"inputs": self.values[index]}
        if self.labels is not None:
            item["label"] = np.int64(self.labels[index])
        return item


def _describe(X: Any) -> str:
    """What ``X`` is, for an error: its first item that is not a str, or its type."""
    if isinstance(X, (list, tuple)) and X:
        index = next((i for i, item in enumerate(X) if not isinstance(item, str)), 0)
        return f"X[{index}] is {type(X[index]).__name__}"
    kind = f"an array of {X.dtype}" if isinstance(X, np.ndarray) else type(X).__name__
    return f"X is {kind}"


def _is_dna(X: Any) -> bool:
    """Whether ``X`` is a one-dimensional collection of strings (TypeError for text that is
    not: bytes, a single string, a table with a text column)."""
    if isinstance(X, (str, bytes)):
        kind = "string" if isinstance(X, str) else "bytes object"
        raise TypeError(f"X is a single {kind}; pass a list of sequences, e.g. [X]")
    if hasattr(X, "columns"):  # pandas / polars DataFrame
        text = [column for column in X.columns if not is_real_dtype(X[column].dtype)]
        if text:
            raise TypeError(f"X is a table with the non-numeric column(s) {text[:5]}; pass "
                            f"the sequences themselves, e.g. X[{text[0]!r}] as a list of str")
        return False
    if isinstance(X, np.ndarray):
        if X.ndim == 1 and X.size > 0 and X.dtype.kind in "USO":
            X = X.tolist()
        else:
            return False
    if hasattr(X, "to_list") and getattr(X, "ndim", 1) == 1:
        X = X.to_list()  # pandas / polars Series
    if isinstance(X, (list, tuple)):
        if not X:
            raise ValueError("X is empty: pass at least one sequence")
        for index, item in enumerate(X):
            if isinstance(item, (bytes, bytearray)):
                raise TypeError(f"X[{index}] is bytes; decode the sequences to str first, "
                                "e.g. [s.decode('ascii') for s in X]")
        strings = [isinstance(item, str) for item in X]
        if any(strings) and not all(strings):
            index = strings.index(False)
            raise TypeError(f"X[{index}] is {type(X[index]).__name__}, the other items are DNA "
                            "strings; pass every sequence as a str")
        return all(strings)
    return False

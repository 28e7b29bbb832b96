"""`TitansClassifier`: a scikit-learn classifier of DNA strings and numeric sequences."""

from __future__ import annotations

import functools
from typing import Any, Literal

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import train_test_split
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data
from torch.utils.data import Dataset

from datamodules.dna import DNADataset, collate_dna, make_tokenizer, normalize_sequence

from ..training import train_module
from .module import ClassificationModule

PREDICT_BATCH = 256


class TitansClassifier(ClassifierMixin, BaseEstimator):
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
        """Train on sequences ``X`` with labels ``y`` (any hashable class labels)."""
        self._check_params()
        if _is_dna(X):
            if y is None:
                raise ValueError(f"{type(self).__name__} requires y to be passed, but the "
                                 "target y is None")
            sequences = self._normalise(X)
            y = column_or_1d(y, warn=True)
            if len(y) != len(sequences):
                raise ValueError(f"X has {len(sequences)} sequences but y has {len(y)} labels; "
                                 "pass one label per sequence")
            inputs_kind = "dna"
        else:
            for name, unused in (("rc_augment", self.rc_augment > 0),
                                 ("rc_average", self.rc_average),
                                 ("max_length", self.max_length is not None)):
                if unused:
                    raise ValueError(f"{name} applies to DNA strings, and X is numeric; leave "
                                     f"{name} at its default for numeric sequences")
            X, y = validate_data(self, X, y, allow_nd=True, dtype=[np.float64, np.float32])
            sequences = self._check_numeric(X, reset=True)
            inputs_kind = "numeric"
        check_classification_targets(y)
        classes, label_index = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"y has only one class ({classes.tolist()[0]!r}); a classifier "
                             "can't train "
                             "when only one class is present: pass examples of at least two")
        for name in ("n_features_in_", "feature_names_in_", "n_channels_", "channel_mean_",
                     "channel_std_"):
            if inputs_kind == "dna" and name in self.__dict__:
                delattr(self, name)  # a second fit on DNA forgets the numeric attributes
        self.input_kind_, self.classes_ = inputs_kind, classes
        seed = _seed(self.random_state)
        train_rows, val_rows = self._hold_out(label_index, seed)
        # The caller's random state (CPU and every visible GPU) is left as it was.
        with torch.random.fork_rng(devices=range(torch.cuda.device_count())):
            if seed is not None:
                torch.manual_seed(seed)
            module = self._build(len(classes))
            train_module(module, self._dataset(sequences, label_index, train_rows, True, seed),
                         self._dataset(sequences, label_index, val_rows, False, seed)
                         if len(val_rows) else None,
                         max_epochs=self.max_epochs, batch_size=self.batch_size,
                         patience=self.patience, verbose=self.verbose, seed=seed,
                         trainer_kwargs={"accelerator": self.accelerator,
                                         "devices": self.devices, "gradient_clip_val": 1.0,
                                         **(self.trainer_kwargs or {})},
                         monitor="val_loss", collate_fn=self._collate())
        module.trainer = None  # let the Trainer and its data loaders go
        self.module_ = module.cpu().eval()
        return self

    def _hold_out(self, label_index: np.ndarray, seed: int | None
                  ) -> tuple[np.ndarray, np.ndarray]:
        """Row indices for training and for early stopping (stratified, seeded)."""
        rows = np.arange(len(label_index))
        counts = np.bincount(label_index)
        n_val = int(np.ceil(self.val_fraction * len(rows)))
        if self.val_fraction == 0 or counts.min() < 2 or n_val < len(counts) \
                or len(rows) - n_val < len(counts):
            return rows, rows[:0]
        train, val = train_test_split(rows, test_size=n_val, stratify=label_index,
                                      random_state=seed)
        return np.sort(train), np.sort(val)

    def _build(self, n_classes: int) -> ClassificationModule:
        if self.input_kind_ == "dna":
            tokens = make_tokenizer(self.tokenizer, self.k)
            shape = ({"vocab_size": tokens.vocab_size} if tokens.is_ids
                     else {"n_features": tokens.n_features})
        else:
            shape = {"n_features": self.n_channels_}
        return ClassificationModule(
            n_classes=n_classes, **shape, readout=self.readout, stem_kernel=self.stem_kernel,
            variant=self.variant,
            dim=self.dim, depth=self.depth, heads=self.heads,
            memory_heads=min(4, self.dim) if self.dim % 4 == 0 else 1,
            memory_depth=self.memory_depth, chunk_size=self.chunk_size, dropout=self.dropout,
            bidirectional=self.bidirectional, max_surprise_norm=self.max_surprise_norm,
            tokenizer=self.tokenizer if self.input_kind_ == "dna" else None,
            rc_average=self.rc_average and self.input_kind_ == "dna", lr=self.lr,
            weight_decay=self.weight_decay)

    def _dataset(self, sequences: Any, label_index: np.ndarray | None, rows: np.ndarray,
                 train: bool, seed: int | None = None) -> Dataset:
        labels = None if label_index is None else label_index[rows]
        if self.input_kind_ == "dna":
            return DNADataset([sequences[i] for i in rows], labels,
                              make_tokenizer(self.tokenizer, self.k),
                              rc_augment=self.rc_augment if train else 0.0,
                              seed=seed or 0)
        return _ArraySequences(sequences[rows], labels)

    def _collate(self):
        pad = make_tokenizer(self.tokenizer, self.k).pad_id if self.input_kind_ == "dna" else 0
        max_length = self.max_length if self.input_kind_ == "dna" else None
        padding = self.padding if self.input_kind_ == "dna" else "dynamic"
        return functools.partial(collate_dna, pad_id=pad, max_length=max_length, crop=self.crop,
                                 padding=padding)

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
                raise ValueError("the classifier was fitted on DNA strings; pass a list of "
                                 "strings, not a numeric array")
            X = validate_data(self, X, reset=False, allow_nd=True,
                              dtype=[np.float64, np.float32])
            sequences = self._check_numeric(X, reset=False)
            lengths = np.full(len(sequences), sequences.shape[1])
        # Similar lengths together: less padding to compute; the order is restored below.
        order = np.argsort(lengths, kind="stable")
        dataset = self._dataset(sequences, None, order, False)
        collate = self._collate()
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

    def _check_numeric(self, X: np.ndarray, reset: bool) -> np.ndarray:
        """Standardised float32 sequences ``(n, L, C)``."""
        if X.ndim == 2:
            X = X[:, :, None]  # (n, L, 1): each row a univariate series
        if X.ndim != 3:
            raise ValueError(f"numeric X must be (n, L) or (n, L, C), got {X.ndim} dimensions")
        if reset:
            self.n_channels_ = X.shape[2]
            self.channel_mean_ = X.mean(axis=(0, 1))
            std = X.std(axis=(0, 1))
            self.channel_std_ = np.where(std > 0, std, 1.0)
        elif X.shape[2] != self.n_channels_:
            raise ValueError(f"X has {X.shape[2]} channels, but {type(self).__name__} was "
                             f"fitted on {self.n_channels_}")
        return ((X - self.channel_mean_) / self.channel_std_).astype(np.float32)

    def _check_params(self) -> None:
        choices = {"variant": ("lmm", "mac", "mag", "mal"), "readout": ("mean", "last"),
                   "tokenizer": ("char", "onehot", "kmer"), "crop": ("right", "left", "center"),
                   "ambiguity": ("n", "error"), "padding": ("dynamic", "max_length")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        ranges = {"val_fraction": ("in [0, 1)", lambda v: 0 <= v < 1),
                  "rc_augment": ("in [0, 1]", lambda v: 0 <= v <= 1),
                  "dropout": ("in [0, 1)", lambda v: 0 <= v < 1),
                  "lr": ("> 0", lambda v: v > 0), "weight_decay": (">= 0", lambda v: v >= 0)}
        for name, (allowed, valid) in ranges.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) \
                    or not valid(value):
                raise ValueError(f"{name} must be a number {allowed}, got {value!r}")
        for name in ("dim", "depth", "heads", "memory_depth", "chunk_size", "max_epochs",
                     "batch_size", "k"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.max_length is not None and (not isinstance(self.max_length, (int, np.integer))
                                            or self.max_length < 1):
            raise ValueError(f"max_length must be a positive int or None, got "
                             f"{self.max_length!r}")
        if self.padding == "max_length" and self.max_length is None:
            raise ValueError("padding='max_length' pads every batch to max_length; set "
                             "max_length")
        if isinstance(self.patience, bool) or not isinstance(self.patience, int) \
                or self.patience < 0:
            raise ValueError(f"patience must be an int >= 0 (0: never stop early), got "
                             f"{self.patience!r}")


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


def _seed(random_state: Any) -> int | None:
    """An int seed from ``random_state`` (None, an int, or a ``numpy`` RandomState)."""
    if random_state is None:
        return None
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(2**31 - 1))
    if isinstance(random_state, bool) or not isinstance(random_state, (int, np.integer)):
        raise ValueError(f"random_state must be None, an int or a numpy RandomState, got "
                         f"{random_state!r}")
    return int(random_state)


def _is_dna(X: Any) -> bool:
    """Whether ``X`` is a one-dimensional collection of strings."""
    if isinstance(X, str):
        raise TypeError("X is a single string; pass a list of sequences, e.g. [X]")
    if isinstance(X, np.ndarray):
        return X.ndim == 1 and X.size > 0 and isinstance(X.flat[0], str)
    if hasattr(X, "to_list") and getattr(X, "ndim", 1) == 1 and not hasattr(X, "columns"):
        X = X.to_list()  # pandas / polars Series
    if isinstance(X, (list, tuple)):
        if not X:
            raise ValueError("X is empty: pass at least one sequence")
        strings = [isinstance(item, str) for item in X]
        if any(strings) and not all(strings):
            index = strings.index(False)
            raise TypeError(f"X[{index}] is {type(X[index]).__name__}, the other items are DNA "
                            "strings; pass every sequence as a str")
        return all(strings)
    return False

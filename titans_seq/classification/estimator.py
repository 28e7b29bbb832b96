"""`TitansClassifier`: a scikit-learn classifier of DNA strings and numeric sequences."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from sklearn.base import ClassifierMixin, clone
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data
from torch.utils.data import Dataset

from datamodules.checks import (InvalidParameterError, boolean, choice, crop_options, fraction,
                               integer, real)
from datamodules.dna import (DNACollator, DNADataset, can_stratify, make_tokenizer,
                             normalize_sequence, stratified_split)
from datamodules.dna.alphabet import AMBIGUITY
from datamodules.timeseries import moments, safe_std
from datamodules.timeseries.frames import is_real_dtype

from ..base import TitansEstimator
from ..blocks import EncoderConfig, Variant
from ..training import load_module_checkpoint, read_checkpoint
from . import checkpoints
from .kmers import checked_kmer_sizes
from .module import ClassificationModule
from .pretraining import PretrainingModule, load_trunk
from .reverse import STRANDED_INPUTS
from .trunk import SequenceTrunk, sequence_encoder, stem_options

_ENCODER = sequence_encoder()  # the one set of encoder defaults: the estimator's are its own
PREDICT_BATCH = 256
KMER_PATIENCE = 10  # epochs without a better validation accuracy before the k-mer stage ends


class TitansClassifier(ClassifierMixin, TitansEstimator):
    """Sequence classifier with a Titans encoder (scikit-learn API).

    ``X`` is either DNA — a list, tuple, 1-D array or Series of strings, of any lengths — or
    numeric sequences: an array ``(n, L)`` is ``n`` univariate series of length ``L`` (so any
    2-D feature matrix is accepted), ``(n, L, C)`` is ``n`` series of ``C`` channels. Numeric
    channels are standardised with the training data's per-channel mean and std.

    For DNA the default network has two branches whose logits add up: the k-mer composition
    of each sequence (frequencies of its 1- to 6-mers through one hidden layer, a
    :class:`KmerBag`: what a k-mer-count model knows) and a Titans encoder that reads the
    bases in order (a stride-3 convolution of width 6 makes each token a short word). ``fit``
    trains the k-mer branch first (``kmer_epochs``), freezes it, and trains the encoder on top:
    the encoder starts from the branch's predictions and learns what the counts miss. With
    ``pretrain`` the encoder is first pre-trained on unlabelled DNA (next-base prediction).

    Parameters
    ----------
    variant, dim, depth, heads, memory_depth, chunk_size, dropout, bidirectional
        The :class:`~titans_seq.TitansEncoder` (``"lmm"``: the memory alone, the paper's DNA
        model).
    readout : {"mean", "last"}
        Mean over valid positions, or the last valid position (causal encoders).
    stem_kernel, stem_stride : int
        A causal convolution of width ``stem_kernel`` across channels before the encoder (0:
        none), so each token carries a short motif; with ``stem_stride`` s > 1 each token
        covers s bases (and the ``stem_kernel - s`` before them), and the encoder reads
        ``L / s`` tokens.
    kmer_sizes : tuple of int, optional
        A k-mer branch beside the encoder, for DNA with char or one-hot tokens (numeric
        sequences and ``tokenizer="kmer"`` have no bases to count: no branch): the frequencies
        of the overlapping k-mers of these lengths, standardised, through a ``kmer_hidden``
        -wide layer and a linear head of its own, whose logits add to the encoder's (see
        :class:`KmerBag`).
        None: the encoder alone.
    kmer_hidden : int
        Width of the k-mer branch.
    kmer_epochs : int
        With the k-mer branch, train it alone first, for up to this many epochs (the best
        validation accuracy kept, stopped after 10 epochs without a better one), then freeze it
        and train the encoder on top for ``max_epochs``: the encoder's head starts at zero, so
        it learns what the k-mer counts miss. 0: both branches train jointly.
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
    pretrain : int
        Epochs of self-supervised pre-training of the encoder (next-base prediction, see
        :class:`PretrainingModule`) on the sequences given to ``fit`` (``X`` and the optional
        unlabelled ``pretrain_X``) before the supervised training; 0: none. Needs char or
        one-hot tokens and a causal encoder. With ``rc_augment`` both strands are read.
    pretrained : str, PretrainingModule or SequenceTrunk, optional
        Start from an encoder pre-trained elsewhere: a :class:`PretrainingModule` checkpoint
        (e.g. from ``titans-seq fit --config configs/dna_pretrain.yaml``), the module, or its
        trunk; its options (dim, depth, stem, …) must match. With ``pretrain > 0`` the
        pre-training continues from it.
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
    device : str
        Where :meth:`predict_proba` runs, and, when not ``"auto"``, where training runs
        (``"cpu"``, ``"cuda"``, ``"cuda:1"``): ``"auto"`` trains as ``accelerator``/
        ``devices`` say and classifies where it trained. On the CPU the probabilities are
        computed in float64 (a sequence's probabilities then do not depend on the other
        sequences of the call); on a GPU in float32, batched. A model whose device is not
        available (a GPU model loaded on a CPU-only machine) runs on the CPU.
    accelerator, devices, trainer_kwargs
        Passed to the Lightning Trainer (``devices=1``: one process on one device; several
        are refused — the command line trains on them, then :meth:`from_checkpoint`;
        ``gradient_clip_val=1.0`` unless ``trainer_kwargs`` says otherwise).

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
    reading_ : dict
        How the fit read and batched sequences (``tokenizer``, ``k``, ``max_length``,
        ``crop``, ``padding``, ``ambiguity``, ``rna``): what :meth:`predict_proba` reads new
        sequences with. Parameters set after ``fit`` take effect at the next ``fit``.
    device_ : str
        Where the fitted model runs (the CPU when that device is not available).
    """

    def __init__(self, variant: Variant = _ENCODER.variant, dim: int = _ENCODER.dim,
                 depth: int = _ENCODER.depth, heads: int = _ENCODER.heads,
                 memory_depth: int = _ENCODER.memory_depth,
                 chunk_size: int = _ENCODER.chunk_size, dropout: float = _ENCODER.dropout,
                 bidirectional: bool = _ENCODER.bidirectional,
                 readout: Literal["mean", "last"] = "mean", stem_kernel: int = 6,
                 stem_stride: int = 3,
                 kmer_sizes: tuple[int, ...] | None = (1, 2, 3, 4, 5, 6),
                 kmer_hidden: int = 256, kmer_epochs: int = 40,
                 max_surprise_norm: float | None = _ENCODER.max_surprise_norm,
                 tokenizer: Literal["char", "onehot", "kmer"] = "char", k: int = 6,
                 max_length: int | None = None,
                 crop: Literal["right", "left", "center"] = "right",
                 padding: Literal["dynamic", "max_length"] = "dynamic",
                 ambiguity: Literal["n", "error"] = "n", rna: bool = False,
                 rc_augment: float = 0.0, rc_average: bool = False, pretrain: int = 0,
                 pretrained: Any = None, max_epochs: int = 10,
                 batch_size: int = 64, lr: float = 1e-3, weight_decay: float = 1e-2,
                 patience: int = 3, val_fraction: float = 0.1,
                 random_state: int | None = None, verbose: bool = False,
                 device: str = "auto", accelerator: str = "auto", devices: int | str = 1,
                 trainer_kwargs: dict | None = None) -> None:
        self.variant, self.dim, self.depth, self.heads = variant, dim, depth, heads
        self.memory_depth, self.chunk_size, self.dropout = memory_depth, chunk_size, dropout
        self.bidirectional, self.readout, self.stem_kernel = bidirectional, readout, stem_kernel
        self.stem_stride, self.kmer_sizes, self.kmer_hidden = stem_stride, kmer_sizes, kmer_hidden
        self.kmer_epochs = kmer_epochs
        self.max_surprise_norm = max_surprise_norm
        self.tokenizer, self.k, self.max_length, self.crop = tokenizer, k, max_length, crop
        self.padding = padding
        self.ambiguity, self.rna = ambiguity, rna
        self.rc_augment, self.rc_average = rc_augment, rc_average
        self.pretrain, self.pretrained = pretrain, pretrained
        self.max_epochs, self.batch_size, self.lr = max_epochs, batch_size, lr
        self.weight_decay, self.patience, self.val_fraction = weight_decay, patience, val_fraction
        self.random_state, self.verbose = random_state, verbose
        self.device, self.accelerator, self.devices = device, accelerator, devices
        self.trainer_kwargs = trainer_kwargs

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags

    # -- fit ---------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, pretrain_X: Any = None) -> "TitansClassifier":
        """Train on sequences ``X`` with labels ``y`` (any hashable class labels). A failed
        fit leaves the classifier as it was.

        With ``pretrain > 0`` the encoder is first pre-trained (next-base prediction) on the
        DNA of ``X`` and of ``pretrain_X``, further unlabelled sequences (a list of str);
        none of them needs a label."""
        params = self._check_params()
        reading = params["reading"]
        if pretrain_X is not None and params["pretrain"] == 0:
            raise ValueError("pretrain_X is given but pretrain=0; set pretrain to the number "
                             "of pre-training epochs")
        fitted: dict[str, Any] = {}
        if _is_dna(X):
            if y is None:
                raise ValueError(f"{type(self).__name__} requires y to be passed, but the "
                                 "target y is None")
            sequences = _normalise(X, reading)
            y = column_or_1d(y, warn=True)
            if len(y) != len(sequences):
                raise ValueError(f"X has {len(sequences)} sequences but y has {len(y)} labels; "
                                 "pass one label per sequence")
            kind = "dna"
        else:
            for name, unused in (("rc_augment", self.rc_augment > 0),
                                 ("rc_average", self.rc_average),
                                 ("pretrain", params["pretrain"] > 0),
                                 ("pretrained", self.pretrained is not None),
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
            mean, std = moments(X, (0, 1))  # at any scale: 1e300 · X does not overflow
            fitted.update(n_channels_=X.shape[2], channel_mean_=mean,
                          channel_std_=safe_std(std, mean))
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
        start = self.pretrained
        if params["pretrain"] > 0:
            extra = []
            if pretrain_X is not None:
                if not _is_dna(pretrain_X):
                    raise TypeError(f"pretrain_X must be DNA sequences (a list of str), got "
                                    f"{_describe(pretrain_X)}")
                extra = _normalise(pretrain_X, reading, "pretrain_X")
            start = self._pretrain(sequences + extra, start, params)
        train = self._dataset(kind, sequences, label_index, train_rows, reading,
                              float(self.rc_augment), seed)
        val = (self._dataset(kind, sequences, label_index, val_rows, reading, 0.0, seed)
               if len(val_rows) else None)
        options = dict(trainer_defaults={"gradient_clip_val": 1.0},
                       collate_fn=_collate(kind, reading))
        build = lambda: self._build(len(classes), kind, n_channels, params, start)  # noqa: E731
        if self._has_kmer_branch(kind, params) and params["kmer_epochs"] > 0:
            # First the k-mer branch alone, as a k-mer-count MLP is trained (selected on
            # validation accuracy, KMER_PATIENCE epochs of patience); then the encoder learns,
            # from those predictions on, what the counts miss.
            branch = self._fit_module(
                lambda: _train_only(build(), "kmers"), train, val,
                {**params, "max_epochs": params["kmer_epochs"],
                 "patience": max(params["patience"], KMER_PATIENCE)},
                monitor="val_accuracy", mode="max", **options)
            build = lambda: _train_only(branch, "encoder")  # noqa: E731
        module = self._fit_module(build, train, val, params, monitor="val_loss", **options)
        self._commit({**fitted, "input_kind_": kind, "classes_": classes, "module_": module,
                      "reading_": reading, "device_": params["device"]})
        return self

    @classmethod
    def from_checkpoint(cls, checkpoint: Any, data: Any = None, classes: Any = None,
                        **params: Any) -> "TitansClassifier":
        """A fitted classifier of DNA from a checkpoint of ``titans-seq fit`` (a
        :class:`ClassificationModule`).

        ``data``: the :class:`~datamodules.DNADataModule` it trained with (its reading
        settings — ``tokenizer``, ``k``, ``max_length``, ``crop``, … — become the
        classifier's), or None. The class labels are ``classes`` when given, else the set-up
        datamodule's, else those the checkpoint saved with its datamodule (Lightning keeps
        :meth:`DNADataModule.state_dict` in the checkpoint). ``params`` set the estimator's
        other parameters; those of the network come from the checkpoint (``get_params``), so
        a later :meth:`fit` trains alike."""
        module = load_module_checkpoint(ClassificationModule, checkpoint)
        saved = read_checkpoint(checkpoint)
        classes = checkpoints.classes_of(saved, checkpoint, data, classes)
        model = cls(**{**checkpoints.params_of(module), **checkpoints.params_of_saved(saved),
                       **checkpoints.params_of_data(data), **params})
        checked = model._check_params()
        reading = checked["reading"]
        checkpoints.check_module(module, classes, reading, checkpoint)
        model._commit({"input_kind_": "dna", "classes_": classes,
                       "module_": module.cpu().eval(), "reading_": reading,
                       "device_": checked["device"]})
        return model

    def _pretrain(self, sequences: list[str], start: Any, params: dict[str, Any]) -> Any:
        """Next-base pre-training of the trunk on ``sequences`` for ``pretrain`` epochs
        (from ``start``, a pre-trained trunk, if given); returns the trained module."""
        def build() -> PretrainingModule:
            module = PretrainingModule(
                tokenizer=self.tokenizer, stem_kernel=params["stem_kernel"],
                stem_stride=params["stem_stride"], encoder=params["encoder"],
                lr=params["lr"], weight_decay=params["weight_decay"])
            if start is not None:
                load_trunk(module.net.trunk, start)
            return module
        unlabelled = DNADataset(sequences, None, make_tokenizer(self.tokenizer),
                                rc_augment=float(self.rc_augment), seed=params["seed"] or 0)
        return self._fit_module(build, unlabelled, None,
                                {**params, "max_epochs": params["pretrain"]},
                                monitor="train_loss",
                                trainer_defaults={"gradient_clip_val": 1.0},
                                collate_fn=_collate("dna", params["reading"]))

    def _has_kmer_branch(self, kind: str, params: dict[str, Any]) -> bool:
        """The branch counts bases: DNA read one base per position (char or one-hot)."""
        return kind == "dna" and bool(params["kmer_sizes"]) and self.tokenizer in STRANDED_INPUTS

    @staticmethod
    def _encoder(params: dict[str, Any]) -> EncoderConfig:
        """The (causal) encoder the parameters describe, shared by the classifier and its
        pre-training: the one place where they map onto its settings."""
        return sequence_encoder().with_(
            variant=params["variant"], dim=params["dim"], depth=params["depth"],
            heads=params["heads"],
            memory_heads=min(4, params["dim"]) if params["dim"] % 4 == 0 else 1,
            memory_depth=params["memory_depth"], chunk_size=params["chunk_size"],
            dropout=params["dropout"], max_surprise_norm=params["max_surprise_norm"])

    def _build(self, n_classes: int, kind: str, n_channels: int | None,
               params: dict[str, Any], pretrained: Any = None) -> ClassificationModule:
        if kind == "dna":
            tokens = make_tokenizer(self.tokenizer, params["k"])
            shape = ({"vocab_size": tokens.vocab_size} if tokens.is_ids
                     else {"n_features": tokens.n_features})
        else:
            shape = {"n_features": n_channels}
        return ClassificationModule(
            n_classes=n_classes, **shape, readout=self.readout,
            stem_kernel=params["stem_kernel"], stem_stride=params["stem_stride"],
            kmer_sizes=(list(params["kmer_sizes"]) if self._has_kmer_branch(kind, params)
                        else None),
            kmer_hidden=params["kmer_hidden"],
            encoder=params["encoder"].with_(bidirectional=params["bidirectional"]),
            tokenizer=self.tokenizer if kind == "dna" else None,
            rc_average=params["rc_average"] and kind == "dna", pretrained=pretrained,
            lr=params["lr"], weight_decay=params["weight_decay"])

    @staticmethod
    def _dataset(kind: str, sequences: Any, label_index: np.ndarray | None, rows: np.ndarray,
                 reading: dict[str, Any], rc_augment: float, seed: int | None = None
                 ) -> Dataset:
        labels = None if label_index is None else label_index[rows]
        if kind == "dna":
            return DNADataset([sequences[i] for i in rows], labels,
                              make_tokenizer(reading["tokenizer"], reading["k"]),
                              rc_augment=rc_augment, seed=seed or 0)
        return _ArraySequences(sequences[rows], labels)

    # -- predict -----------------------------------------------------------------------------
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``(n, n_classes)``, columns in the order of ``classes_``."""
        check_is_fitted(self)
        if _is_dna(X):
            if self.input_kind_ != "dna":
                raise ValueError("X holds DNA strings but the classifier was fitted on numeric "
                                 "sequences; pass an array like the one given to fit")
            sequences = _normalise(X, self.reading_)
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
        dataset = self._dataset(self.input_kind_, sequences, None, order, self.reading_, 0.0)
        collate = _collate(self.input_kind_, self.reading_)
        device = self._placed()
        if device.type == "cpu":
            # In float64: a float32 matrix product's rounding depends on how many rows it is
            # given, so a sequence's probabilities would change in the last digits with the
            # other sequences of the call; in float64 that stays far below any tolerance.
            module, dtype = copy.deepcopy(self.module_).double(), torch.float64
        else:  # on an accelerator: the trained float32 weights, batched
            module, dtype = self.module_, torch.float32
        probabilities = []
        with torch.inference_mode():
            for start in range(0, len(order), PREDICT_BATCH):
                batch = collate([dataset[i] for i in
                                 range(start, min(start + PREDICT_BATCH, len(order)))])
                inputs = batch["inputs"].to(device)
                if inputs.is_floating_point():
                    inputs = inputs.to(dtype)
                probabilities.append(module.predict_proba(inputs, batch["mask"].to(device))
                                     .double().cpu())
        result = np.empty((len(order), len(self.classes_)), dtype=np.float64)
        result[order] = torch.cat(probabilities).double().numpy()
        return result

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each sequence."""
        probabilities = self.predict_proba(X)  # checks that the classifier is fitted
        return self.classes_[probabilities.argmax(1)]

    # -- input checks ------------------------------------------------------------------------
    def _check_params(self) -> dict[str, Any]:
        """Every parameter checked once, before any data is read (plain Python values)."""
        params = self._check_training_params()
        for name, options in (("variant", ("lmm", "mac", "mag", "mal")),
                              ("readout", ("mean", "last")),
                              ("tokenizer", ("char", "onehot", "kmer")),
                              ("ambiguity", AMBIGUITY)):
            choice(name, getattr(self, name), options)
        max_length, crop, padding = crop_options(self.max_length, self.crop, self.padding)
        for name in ("dim", "depth", "heads", "memory_depth", "chunk_size", "kmer_hidden"):
            params[name] = integer(name, getattr(self, name))
        params["kmer_epochs"] = integer("kmer_epochs", self.kmer_epochs, 0,
                                        hint="0: train the branches jointly")
        params["k"] = integer("k", self.k, 1, 8)
        params["stem_kernel"], params["stem_stride"] = stem_options(self.stem_kernel,
                                                                    self.stem_stride)
        params["pretrain"] = integer("pretrain", self.pretrain, 0, hint="0: no pre-training")
        params["reading"] = dict(tokenizer=self.tokenizer, k=params["k"], max_length=max_length,
                                 crop=crop, padding=padding, ambiguity=self.ambiguity,
                                 rna=boolean("rna", self.rna))
        params["variant"] = self.variant
        if self.pretrained is not None and not isinstance(
                self.pretrained, (str, Path, PretrainingModule, SequenceTrunk)):
            raise InvalidParameterError(f"pretrained must be a PretrainingModule checkpoint "
                                        f"path, the module or its SequenceTrunk, got "
                                        f"{type(self.pretrained).__name__}")
        params["kmer_sizes"] = checked_kmer_sizes(self.kmer_sizes)
        params["dropout"] = fraction("dropout", self.dropout)
        params["weight_decay"] = real("weight_decay", self.weight_decay, 0.0)
        params["max_surprise_norm"] = real("max_surprise_norm", self.max_surprise_norm, 0.0,
                                           low_open=True, optional=True,
                                           hint="None: the paper's unclipped update")
        fraction("rc_augment", self.rc_augment, one=True)
        for name in ("bidirectional", "rna", "rc_average"):
            params[name] = boolean(name, getattr(self, name))
        if params["pretrain"] > 0 and (self.tokenizer not in STRANDED_INPUTS
                                       or params["bidirectional"]):
            raise InvalidParameterError("pretrain (next-base prediction) needs tokenizer "
                                        "'char' or 'onehot' and a causal encoder "
                                        "(bidirectional=False)")
        params["encoder"] = self._encoder(params)
        return params


def _normalise(X: Any, reading: dict[str, Any], name: str = "X") -> list[str]:
    """DNA sequences in upper case, checked as ``reading`` says (ambiguity codes, RNA)."""
    sequences = list(X)
    if not sequences:
        raise ValueError(f"{name} is empty: pass at least one DNA sequence")
    return [normalize_sequence(s, ambiguity=reading["ambiguity"], rna=reading["rna"],
                               name=f"{name}[{i}]") for i, s in enumerate(sequences)]


def _collate(kind: str, reading: dict[str, Any]) -> DNACollator:
    """How batches are padded and cropped (numeric sequences are never cropped)."""
    if kind != "dna":
        return DNACollator(0)
    return DNACollator(make_tokenizer(reading["tokenizer"], reading["k"]).pad_id,
                       reading["max_length"], reading["crop"], reading["padding"])


def _train_only(module: ClassificationModule, parts: str) -> ClassificationModule:
    module.net.train_only(parts)
    return module.train()


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

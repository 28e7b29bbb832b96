"""From a checkpoint of ``titans-seq fit`` to a :class:`~titans_seq.TitansClassifier`: the
estimator's parameters that a :class:`ClassificationModule`'s hyper-parameters describe, and
the classes and reading settings of the data it trained on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from datamodules.dna import DNADataModule, make_tokenizer

from ..blocks import EncoderConfig
from .module import ClassificationModule

# the reading settings a DNADataModule and the classifier share
READING = ("tokenizer", "k", "max_length", "crop", "padding", "ambiguity", "rna")


def params_of(module: ClassificationModule) -> dict[str, Any]:
    """The estimator's parameters for the module's settings (the inverse of the classifier's
    ``_build`` where the estimator has a parameter)."""
    h = module.hparams
    encoder = EncoderConfig.coerce(h.encoder)
    params = dict(variant=encoder.variant, dim=encoder.dim, depth=encoder.depth,
                  heads=encoder.heads, memory_depth=encoder.memory_depth,
                  chunk_size=encoder.chunk_size, dropout=encoder.dropout,
                  max_surprise_norm=encoder.max_surprise_norm,
                  bidirectional=encoder.bidirectional, readout=h.readout,
                  stem_kernel=h.stem_kernel, stem_stride=h.stem_stride,
                  kmer_sizes=tuple(h.kmer_sizes) if h.kmer_sizes else None,
                  kmer_hidden=h.kmer_hidden, rc_average=bool(h.rc_average), lr=h.lr,
                  weight_decay=h.weight_decay)
    if h.tokenizer is not None:
        params["tokenizer"] = h.tokenizer
    return params


def params_of_data(data: Any) -> dict[str, Any]:
    """The reading parameters of a datamodule (none when ``data`` is not one)."""
    if not isinstance(data, DNADataModule):
        return {}
    return {**{name: getattr(data, name) for name in READING},
            "val_fraction": data.val_fraction, "batch_size": data.batch_size}


def params_of_saved(checkpoint: dict) -> dict[str, Any]:
    """The reading settings the checkpoint saved with its datamodule (``k``, which sets a
    k-mer tokenizer's vocabulary)."""
    saved = checkpoint.get(DNADataModule.__qualname__)
    return {"k": saved["k"]} if isinstance(saved, dict) and isinstance(saved.get("k"), int) \
        else {}


def classes_of(checkpoint: dict, path: Any, data: Any, classes: Any) -> np.ndarray:
    """The class labels in the order of the module's outputs: ``classes`` when given, else
    those of a set-up ``data``, else those the checkpoint saved with its datamodule."""
    name = Path(str(path)).name
    if classes is None and isinstance(data, DNADataModule) and \
            getattr(data, "_classes", None) is not None:
        classes = data.classes_
    if classes is None:
        saved = checkpoint.get(DNADataModule.__qualname__)
        classes = saved.get("classes") if isinstance(saved, dict) else None
    if classes is None:
        raise ValueError(f"{name} does not name its classes (it was not written with a "
                         "DNADataModule); pass classes=[...] in the order of training "
                         "(sorted labels), or the set-up DNADataModule")
    if isinstance(classes, str) or not hasattr(classes, "__len__"):
        raise TypeError(f"classes must be a list of labels, got {type(classes).__name__}")
    classes = np.asarray(list(classes))
    if len(set(classes.tolist())) != len(classes):
        raise ValueError(f"classes has repeated labels: {classes.tolist()}")
    return classes


def check_module(module: ClassificationModule, classes: np.ndarray, reading: dict[str, Any],
                 path: Any) -> None:
    """The module has one output per class and reads the tokens ``reading`` makes."""
    if module.hparams.n_classes != len(classes):
        raise ValueError(f"{Path(str(path)).name} has {module.hparams.n_classes} classes; "
                         f"{len(classes)} were given ({classes.tolist()})")
    if module.hparams.tokenizer is None:
        raise ValueError(f"{Path(str(path)).name} classifies numeric sequences (no "
                         "tokenizer); from_checkpoint reads DNA checkpoints of titans-seq fit")
    if reading["tokenizer"] != module.hparams.tokenizer:
        raise ValueError(f"{Path(str(path)).name} reads tokenizer="
                         f"{module.hparams.tokenizer!r}; tokenizer={reading['tokenizer']!r} "
                         "was given: leave it unset")
    tokens = make_tokenizer(reading["tokenizer"], reading["k"])
    if tokens.is_ids and tokens.vocab_size != module.hparams.vocab_size:
        raise ValueError(f"{Path(str(path)).name} has a vocabulary of "
                         f"{module.hparams.vocab_size} tokens; k={reading['k']} gives "
                         f"{tokens.vocab_size}: pass the k it was trained with")

"""`ClassificationModule`: the Lightning training of a :class:`TitansClassifierNet`."""

from __future__ import annotations

from typing import Any, Literal

import lightning.pytorch as pl
import torch
from torch import Tensor
from torch.nn import functional as F
from torchmetrics import MetricCollection
from torchmetrics.classification import AUROC, Accuracy, F1Score, MatthewsCorrCoef

from datamodules.checks import fraction, real
from datamodules.dna import make_tokenizer

from ..blocks import EncoderConfig
from ..optim import warmup_cosine_adamw
from ..training import RandomStateInCheckpoints, adopt_shapes, trainer_datamodule
from .kmers import checked_kmer_sizes
from .network import Readout, TitansClassifierNet
from .pretraining import load_trunk
from .reverse import STRANDED_INPUTS, reverse_complement_batch
from .trunk import encoder_config


class ClassificationModule(RandomStateInCheckpoints, pl.LightningModule):
    """Binary or multi-class sequence classification with a Titans encoder (batches of
    ``{"inputs", "mask", "label"}`` as :class:`~datamodules.DNADataModule` gives them).

    Parameters
    ----------
    n_classes : int, optional
        Number of classes (2 for binary). None: ``n_classes``, ``vocab_size``, ``n_features``
        and ``tokenizer`` come from the :class:`~datamodules.DNADataModule` the Trainer runs
        with (see :meth:`configure_model`).
    vocab_size : int, optional
        Token ids in ``[0, vocab_size)`` (``DNADataModule.vocab_size``); None for numeric
        inputs of ``n_features`` channels.
    n_features : int
        Channels of numeric inputs (4 for one-hot DNA).
    readout, head_dropout, stem_kernel, stem_stride
        See :class:`TitansClassifierNet` and :class:`SequenceTrunk`.
    kmer_sizes : list of int, optional
        k-mer lengths of a :class:`KmerBag` branch beside the encoder (e.g. ``[1, 2, 3, 4, 5,
        6]``; needs ``tokenizer`` "char" or "onehot"); None: the encoder alone. The branches
        train jointly here; :meth:`TitansClassifierNet.train_only` trains them one after the
        other (what :class:`TitansClassifier` does).
    kmer_hidden : int
        Width of the k-mer branch.
    encoder : EncoderConfig or dict, optional
        The :class:`~titans_seq.TitansEncoder` (a dict of its fields, as checkpoints hold it).
        None: :func:`~titans_seq.classification.trunk.sequence_encoder` (one block, dropout
        0.1, each memory write's surprise clipped to 5: ``TitansClassifier``'s defaults).
    encoder_options
        Fields of the encoder to replace, named flat (``dim=32, depth=1``).
    tokenizer : {"char", "onehot", "kmer"}, optional
        The tokenizer of DNA inputs; needed only for ``rc_average``.
    rc_average : bool
        Average the class probabilities of each sequence and its reverse complement at
        validation, test and prediction time (post-hoc conjoining, as in Caduceus).
    pretrained : str, PretrainingModule or SequenceTrunk, optional
        Start the trunk (embedding, stem, encoder) from a next-base pre-training: a
        :class:`PretrainingModule` checkpoint path, the module, or its trunk. Its options must
        match this module's. Not saved with the hyper-parameters: a checkpoint of this module
        holds the fine-tuned weights, and loads without the pre-training file.
    label_smoothing, lr, weight_decay, warmup_fraction : float
        Cross-entropy and AdamW with a linear warm-up, then cosine decay.

    Each stage (train, val, test) logs ``{stage}_loss`` and torchmetrics
    ``{stage}_accuracy``, ``{stage}_mcc``, ``{stage}_f1`` (macro for several classes) and
    ``{stage}_auroc``, synchronised across processes.
    """

    def __init__(self, n_classes: int | None = None, vocab_size: int | None = None,
                 n_features: int = 1, readout: Readout = "mean", head_dropout: float = 0.0,
                 stem_kernel: int = 0, stem_stride: int = 1,
                 kmer_sizes: list[int] | None = None, kmer_hidden: int = 256,
                 encoder: EncoderConfig | None = None,
                 tokenizer: Literal["char", "onehot", "kmer"] | None = None,
                 rc_average: bool = False, pretrained: str | None = None,
                 label_smoothing: float = 0.0, lr: float = 1e-3,
                 weight_decay: float = 1e-2, warmup_fraction: float = 0.05,
                 **encoder_options: Any) -> None:
        super().__init__()
        label_smoothing = fraction("label_smoothing", label_smoothing)
        kmer_sizes = list(checked_kmer_sizes(kmer_sizes)) or None
        lr = real("lr", lr, 0.0, low_open=True)
        weight_decay = real("weight_decay", weight_decay, 0.0)
        warmup_fraction = fraction("warmup_fraction", warmup_fraction)
        # Plain values: checkpoints load with torch.load(weights_only=True).
        encoder = encoder_config(encoder, encoder_options).to_dict()
        encoder_options = {}  # merged into encoder: not saved twice
        self.save_hyperparameters(ignore=["pretrained"])
        # In a tuple: a module given here is a source of weights, not a submodule.
        self._pretrained = (pretrained,)
        self.net: TitansClassifierNet | None = None
        if n_classes is not None:
            self._build()

    def _build(self) -> None:
        """The network and the metrics, once the shapes of the data are known."""
        h = self.hparams
        if h.rc_average and h.tokenizer not in STRANDED_INPUTS:
            raise ValueError(f"rc_average needs tokenizer 'char' or 'onehot' (a per-position "
                             f"complement), got {h.tokenizer!r}; use rc_augment for k-mers")
        if h.kmer_sizes and h.tokenizer not in STRANDED_INPUTS:
            raise ValueError(f"kmer_sizes reads bases one position at a time: it needs "
                             f"tokenizer 'char' or 'onehot', got {h.tokenizer!r}; set "
                             f"kmer_sizes=None for other inputs")
        if h.tokenizer in STRANDED_INPUTS:  # their inputs have a fixed shape; k-mers depend on k
            expected = make_tokenizer(h.tokenizer)
            if (h.vocab_size, h.n_features if h.vocab_size is None else 1) != \
                    (expected.vocab_size, expected.n_features):
                raise ValueError(
                    f"tokenizer={h.tokenizer!r} gives vocab_size={expected.vocab_size}, "
                    f"n_features={expected.n_features}, but the module has vocab_size="
                    f"{h.vocab_size}, n_features={h.n_features}; pass the datamodule's "
                    f"vocab_size and n_features (or tokenizer=None for other inputs)")
        self.net = TitansClassifierNet(
            h.n_classes, vocab_size=h.vocab_size, n_features=h.n_features, readout=h.readout,
            head_dropout=h.head_dropout, stem_kernel=h.stem_kernel, stem_stride=h.stem_stride,
            kmer_sizes=h.kmer_sizes, kmer_hidden=h.kmer_hidden,
            tokenizer=h.tokenizer if h.tokenizer in STRANDED_INPUTS else None,
            encoder=EncoderConfig.coerce(h.encoder))
        source, = self._pretrained
        if source is not None:
            load_trunk(self.net.trunk, source)
            self._pretrained = (None,)  # loaded once; let the source go
        self.n_classes = h.n_classes
        task = "binary" if h.n_classes == 2 else "multiclass"
        options = {"task": task} if task == "binary" else {"task": task,
                                                           "num_classes": h.n_classes}
        metrics = MetricCollection({
            "accuracy": Accuracy(**options), "mcc": MatthewsCorrCoef(**options),
            "f1": F1Score(**options, **({} if task == "binary" else {"average": "macro"})),
            "auroc": AUROC(**options)})
        self.train_metrics = metrics.clone(prefix="train_")
        self.val_metrics = metrics.clone(prefix="val_")
        self.test_metrics = metrics.clone(prefix="test_")

    def configure_model(self) -> None:
        """With ``n_classes=None``, take the shapes from the Trainer's datamodule (the CLI's
        way: a config names the data once); they are then saved with the hyper-parameters,
        so ``load_from_checkpoint`` rebuilds the same network."""
        if self.net is not None:
            return
        data = trainer_datamodule(self, "n_classes", "pass n_classes (and vocab_size or "
                                  "n_features), or train with a DNADataModule to take them from")
        if self.hparams.tokenizer not in (None, data.tokenizer):
            raise ValueError(f"the model's tokenizer is {self.hparams.tokenizer!r}, the "
                             f"datamodule's {data.tokenizer!r}; leave the model's unset")
        adopt_shapes(self, dict(n_classes=int(data.n_classes), vocab_size=data.vocab_size,
                                n_features=int(data.n_features), tokenizer=str(data.tokenizer)))
        self._build()

    def forward(self, inputs: Tensor, mask: Tensor | None = None) -> Tensor:
        """Class logits ``(B, n_classes)``."""
        return self.net(inputs, mask)

    def predict_proba(self, inputs: Tensor, mask: Tensor | None = None) -> Tensor:
        """Class probabilities ``(B, n_classes)``, averaged over both strands with
        ``rc_average``."""
        probabilities = self(inputs, mask).softmax(-1)
        if self.hparams.rc_average:
            if mask is None:
                mask = torch.ones(inputs.shape[:2], dtype=torch.bool, device=inputs.device)
            other = reverse_complement_batch(inputs, mask, self.hparams.tokenizer)
            probabilities = (probabilities + self(other, mask).softmax(-1)) / 2
        return probabilities

    def training_step(self, batch: dict[str, Tensor], batch_index: int) -> Tensor:
        logits = self(batch["inputs"], batch["mask"])
        loss = F.cross_entropy(logits, batch["label"],
                               label_smoothing=self.hparams.label_smoothing)
        self.log("train_loss", loss, prog_bar=True, batch_size=logits.shape[0])
        probabilities = logits.detach().softmax(-1)
        self.train_metrics.update(probabilities[:, 1] if self.n_classes == 2 else probabilities,
                                  batch["label"])
        self.log_dict(self.train_metrics, on_step=False, on_epoch=True,
                      batch_size=logits.shape[0])
        return loss

    def _evaluate(self, batch: dict[str, Tensor], stage: str) -> None:
        probabilities = self.predict_proba(batch["inputs"], batch["mask"])
        labels = batch["label"]
        loss = F.nll_loss(probabilities.clamp_min(1e-12).log(), labels)
        scores = probabilities[:, 1] if self.n_classes == 2 else probabilities
        metrics = getattr(self, f"{stage}_metrics")
        metrics.update(scores, labels)
        self.log(f"{stage}_loss", loss, batch_size=labels.shape[0], sync_dist=True)
        self.log_dict(metrics, batch_size=labels.shape[0], prog_bar=stage == "val")

    def validation_step(self, batch: dict[str, Tensor], batch_index: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_index: int) -> None:
        self._evaluate(batch, "test")

    def predict_step(self, batch: dict[str, Tensor], batch_index: int) -> Tensor:
        """Class probabilities ``(B, n_classes)`` (:meth:`predict_proba`);
        :class:`~titans_seq.writers.PredictionWriter` writes them with the sequences' names
        and the predicted labels (``titans-seq predict --output FILE``)."""
        return self.predict_proba(batch["inputs"], batch["mask"])

    def configure_optimizers(self):
        return warmup_cosine_adamw(self, self.hparams.lr, self.hparams.weight_decay,
                                   self.hparams.warmup_fraction)

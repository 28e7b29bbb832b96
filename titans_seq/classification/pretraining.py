"""Self-supervised pre-training of a :class:`SequenceTrunk` on unlabelled DNA: next-base
prediction, the training a causal Titans memory is made for (each token predicts what comes
next, as in the paper's language modelling, §5.2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from datamodules.checks import InvalidParameterError, fraction, real
from datamodules.dna import make_tokenizer

from ..blocks import EncoderConfig
from ..optim import warmup_cosine_adamw
from ..training import (RandomStateInCheckpoints, adopt_shapes, load_module_checkpoint,
                        trainer_datamodule)
from .kmers import base_codes
from .trunk import SequenceTrunk, encoder_config


class NextBaseNet(nn.Module):
    """A :class:`SequenceTrunk` with a head that predicts, from each token, the bases of the
    next block: token ``j`` has read positions ``< (j + 1) * s`` (``s = stem_stride``) and
    predicts positions ``(j + 1) * s … (j + 2) * s - 1``, ``s`` four-way choices."""

    def __init__(self, trunk: SequenceTrunk) -> None:
        super().__init__()
        if trunk.encoder.bidirectional:
            raise InvalidParameterError("next-base pre-training needs a causal encoder: a "
                                        "bidirectional one sees the bases it should predict; "
                                        "set bidirectional=False")
        self.trunk = trunk
        self.head = nn.Linear(trunk.dim, 4 * trunk.stem_stride)

    def forward(self, inputs: Tensor, mask: Tensor) -> Tensor:
        """Logits ``(B, T', stem_stride, 4)`` over A, C, G, T for the next block's bases."""
        encoded, _ = self.trunk(inputs, mask)  # (B, T', dim)
        batch, blocks, _ = encoded.shape
        return self.head(encoded).view(batch, blocks, self.trunk.stem_stride, 4)

    def targets(self, codes: Tensor) -> Tensor:
        """Base codes ``(B, T)`` (−1: no base) → the next block's bases ``(B, T', stride)``
        (−1 where there is none: past the end, N, padding)."""
        stride = self.trunk.stem_stride
        batch, length = codes.shape
        blocks = -(-length // stride)
        padded = F.pad(codes, (0, (blocks + 1) * stride - length), value=-1)
        return padded.view(batch, blocks + 1, stride)[:, 1:]  # (B, T', stride)


class PretrainingModule(RandomStateInCheckpoints, pl.LightningModule):
    """Next-base pre-training of a Titans trunk on DNA (batches of ``{"inputs", "mask"}`` from
    a :class:`~datamodules.DNADataModule`; labels, if any, are ignored).

    The trained trunk initialises a classifier: ``ClassificationModule(pretrained=…)`` or
    ``TitansClassifier(pretrained=…)``, from this module or a checkpoint of it. The trunk
    options must then match the classifier's.

    Parameters
    ----------
    vocab_size, n_features, tokenizer
        The inputs (char ids or one-hot); None: taken from the Trainer's datamodule.
    stem_kernel, stem_stride
        The :class:`SequenceTrunk`'s stem.
    encoder : EncoderConfig or dict, optional
        Its encoder (causal; a dict of its fields, as checkpoints hold it). None:
        :func:`~titans_seq.classification.trunk.sequence_encoder`.
    encoder_options
        Fields of the encoder to replace, named flat (``dim=32, depth=1``).
    lr, weight_decay, warmup_fraction : float
        AdamW with a linear warm-up, then cosine decay.

    Reverse-complement awareness comes from the data: with the datamodule's ``rc_augment``
    both strands are read. Logs ``{stage}_loss`` (cross-entropy per predicted base) and
    ``{stage}_accuracy`` (fraction of next bases predicted) for train and val.
    """

    def __init__(self, vocab_size: int | None = None, n_features: int = 1,
                 tokenizer: Literal["char", "onehot"] | None = None, stem_kernel: int = 6,
                 stem_stride: int = 1, encoder: EncoderConfig | None = None,
                 lr: float = 1e-3,
                 weight_decay: float = 1e-2, warmup_fraction: float = 0.05,
                 **encoder_options: Any) -> None:
        super().__init__()
        lr = real("lr", lr, 0.0, low_open=True)
        weight_decay = real("weight_decay", weight_decay, 0.0)
        warmup_fraction = fraction("warmup_fraction", warmup_fraction)
        # Plain values: checkpoints load with torch.load(weights_only=True).
        encoder = encoder_config(encoder, encoder_options).to_dict()
        encoder_options = {}  # merged into encoder: not saved twice
        self.save_hyperparameters()
        self.net: NextBaseNet | None = None
        if tokenizer is not None:
            self._build()

    def _build(self) -> None:
        h = self.hparams
        if h.tokenizer not in ("char", "onehot"):
            raise ValueError(f"next-base pre-training reads one base per position: it needs "
                             f"tokenizer 'char' or 'onehot', got {h.tokenizer!r}")
        expected = make_tokenizer(h.tokenizer)
        self.net = NextBaseNet(SequenceTrunk(
            vocab_size=expected.vocab_size, n_features=expected.n_features,
            stem_kernel=h.stem_kernel, stem_stride=h.stem_stride,
            encoder=EncoderConfig.coerce(h.encoder)))

    def configure_model(self) -> None:
        """With ``tokenizer=None``, take the inputs from the Trainer's datamodule."""
        if self.net is not None:
            return
        data = trainer_datamodule(self, "tokenizer", "pass tokenizer, or train with a "
                                  "DNADataModule to take it from")
        adopt_shapes(self, dict(tokenizer=str(data.tokenizer), vocab_size=data.vocab_size,
                                n_features=int(data.n_features)))
        self._build()

    @property
    def trunk(self) -> SequenceTrunk:
        """The pre-trained part (what a classifier starts from)."""
        if self.net is None:
            raise ValueError("the module has no network yet: pass tokenizer, or fit it with a "
                             "DNADataModule first")
        return self.net.trunk

    def forward(self, inputs: Tensor, mask: Tensor) -> Tensor:
        return self.net(inputs, mask)

    def _step(self, batch: dict[str, Tensor], stage: str) -> Tensor:
        inputs, mask = batch["inputs"], batch["mask"]
        logits = self(inputs, mask)  # (B, T', stride, 4)
        targets = self.net.targets(base_codes(inputs, mask, self.hparams.tokenizer))
        loss = F.cross_entropy(logits.reshape(-1, 4), targets.reshape(-1), ignore_index=-1)
        counted = targets >= 0
        accuracy = (logits.argmax(-1) == targets)[counted].float().mean()
        size = int(counted.sum())
        self.log(f"{stage}_loss", loss, prog_bar=True, batch_size=size, sync_dist=stage != "train")
        self.log(f"{stage}_accuracy", accuracy, batch_size=size, sync_dist=stage != "train")
        return loss

    def training_step(self, batch: dict[str, Tensor], batch_index: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, Tensor], batch_index: int) -> None:
        self._step(batch, "val")

    def configure_optimizers(self):
        return warmup_cosine_adamw(self, self.hparams.lr, self.hparams.weight_decay,
                                   self.hparams.warmup_fraction)


def pretrained_trunk(source: "str | Path | PretrainingModule | SequenceTrunk") -> SequenceTrunk:
    """The trunk of a pre-training checkpoint file, a :class:`PretrainingModule` or a
    :class:`SequenceTrunk` itself."""
    if isinstance(source, SequenceTrunk):
        return source
    if isinstance(source, PretrainingModule):
        return source.trunk
    if isinstance(source, (str, Path)):
        if not Path(source).is_file():
            raise ValueError(f"pretrained={str(source)!r} is not a file; pass the checkpoint "
                             f"of a PretrainingModule (or the module itself), written by "
                             f"`titans-seq fit` with configs/dna_pretrain.yaml")
        return load_module_checkpoint(PretrainingModule, source).trunk
    raise TypeError(f"pretrained must be a checkpoint path, a PretrainingModule or a "
                    f"SequenceTrunk, got {type(source).__name__}")


def load_trunk(target: SequenceTrunk, source: "str | Path | PretrainingModule | SequenceTrunk"
               ) -> None:
    """Copy a pre-trained trunk's weights into ``target``; a trunk of other options (dim,
    depth, stem, inputs, …) is refused with the differences named."""
    trained = pretrained_trunk(source)
    options = {name: (trained.options[name], value) for name, value in target.options.items()
               if trained.options.get(name) != value}
    if options:
        described = ", ".join(f"{name}={theirs!r} there, {ours!r} here"
                              for name, (theirs, ours) in sorted(options.items()))
        raise ValueError(f"the pre-trained trunk does not fit this model: {described}; "
                         f"pre-train with the classifier's options")
    wanted, given = target.state_dict(), trained.state_dict()
    differences = sorted(name for name in wanted.keys() | given.keys()
                         if name not in wanted or name not in given
                         or wanted[name].shape != given[name].shape)
    if differences:
        raise ValueError(f"the pre-trained trunk does not fit this model: {len(differences)} "
                         f"weight(s) differ in name or shape, e.g. {differences[:3]}; pre-train "
                         f"with the same dim, depth, heads, memory_depth, stem and tokenizer")
    with torch.no_grad():
        target.load_state_dict({name: value.detach().clone() for name, value in given.items()})

"""`SequenceTrunk`: inputs → token vectors → Titans encoder, the part of a sequence model that
self-supervised pre-training trains and a classifier fine-tunes."""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from dataclasses import fields
from typing import Any

from datamodules.checks import InvalidParameterError, integer

from ..blocks import EncoderConfig, TitansEncoder

# Encoder settings that do not fix the meaning of the weights: a pre-trained trunk may differ
# in these (training and runtime choices).
_FREE = ("dropout", "max_surprise_norm", "compiled_memory", "memory_kernel",
         "attention_backend")


def sequence_encoder() -> EncoderConfig:
    """The encoder the sequence models get by default (``TitansClassifier``'s): one block,
    dropout on, and each memory write's surprise clipped to 5 (at initialisation 99 % of the
    tokens of the promoter set stay below 3.3, so it rarely clips a healthy memory but stops
    the divergence of a deep memory whose weights training has grown: seen at dim 128 and with
    bidirectional encoders)."""
    return EncoderConfig(depth=1, dropout=0.1, max_surprise_norm=5.0)


def encoder_config(encoder: EncoderConfig | dict | None, options: dict[str, Any]
                   ) -> EncoderConfig:
    """The encoder of a sequence module: ``encoder`` (None: :func:`sequence_encoder`) with
    the fields named in ``options`` replaced."""
    config = sequence_encoder() if encoder is None else EncoderConfig.coerce(encoder)
    return EncoderConfig.coerce({**config.to_dict(), **options}) if options else config


class SequenceTrunk(nn.Module):
    """Embedding, an optional strided causal convolution ("stem") and a
    :class:`~titans_seq.TitansEncoder`.

    The input is token ids ``(B, T)`` (``vocab_size`` given; id 0 is padding) or numeric
    features ``(B, T, n_features)`` projected linearly. With ``stem_kernel > 1`` a convolution
    across channels turns each block of ``stem_stride`` positions, with the
    ``stem_kernel - stem_stride`` positions before it, into one token, so the memory reads
    ``ceil(T / stem_stride)`` tokens: short words (DNA motifs) become single tokens, and a
    stride of 3 makes the encoder 2.5 times cheaper on 251-nt promoters. Token ``j`` has read
    exactly the inputs up to position ``(j + 1) * stem_stride - 1`` (causal), which next-token
    pre-training relies on.

    ``forward`` returns the encoded tokens and their mask: token ``j`` is valid when its
    block's first position is. Padding (``mask`` False, at the end of each row) writes nothing
    into the memory.

    ``encoder`` (an :class:`~titans_seq.EncoderConfig`; None: :func:`sequence_encoder`) and/or
    its fields as keywords set the encoder.
    """

    def __init__(self, *, vocab_size: int | None = None, n_features: int = 1,
                 stem_kernel: int = 0, stem_stride: int = 1,
                 encoder: EncoderConfig | None = None, **encoder_options: Any) -> None:
        super().__init__()
        vocab_size = integer("vocab_size", vocab_size, 2, optional=True)
        n_features = integer("n_features", n_features)
        stem_kernel, stem_stride = stem_options(stem_kernel, stem_stride)
        config = encoder_config(encoder, encoder_options)
        # What fixes the meaning of the weights (a pre-trained trunk must match all of it).
        self.options = dict(vocab_size=vocab_size, n_features=n_features,
                            stem_kernel=stem_kernel, stem_stride=stem_stride,
                            **{f.name: getattr(config, f.name) for f in fields(config)
                               if f.name not in _FREE})
        self.vocab_size, self.n_features = vocab_size, n_features
        dim = config.dim
        self.stem_kernel, self.stem_stride, self.dim = stem_kernel, stem_stride, dim
        if vocab_size is not None:
            self.embed: nn.Module = nn.Embedding(vocab_size, dim, padding_idx=0)
        else:
            self.embed = nn.Linear(n_features, dim)
        self.stem = (nn.Conv1d(dim, dim, stem_kernel, stride=stem_stride)
                     if stem_kernel > 1 else None)
        self.encoder = TitansEncoder(config)

    def forward(self, inputs: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """``inputs (B, T)`` ids or ``(B, T, n_features)``, ``mask (B, T)`` → encoded
        ``(B, T', dim)`` (padding outputs are 0) and ``mask (B, T')``,
        ``T' = ceil(T / stem_stride)``."""
        # Padding ids embed to 0 already; numeric padding may hold anything.
        tokens = self.embed(inputs) * mask[:, :, None]  # (B, T, dim)
        if self.stem is not None:
            stride, length = self.stem_stride, inputs.shape[1]
            blocks = -(-length // stride)
            # Left padding makes the stem causal; right padding completes the last block.
            # Trailing padding never reaches a valid block's first position.
            padded = F.pad(tokens.transpose(1, 2),
                           (self.stem_kernel - stride, blocks * stride - length))  # (B, dim, ·)
            # The convolution as one matrix product over the windows: unlike a conv kernel,
            # whose algorithm depends on the batch size, a row's result does not depend on
            # the other rows (predictions of a subset equal those of the whole).
            windows = padded.unfold(2, self.stem_kernel, stride)  # (B, dim, T', kernel)
            windows = windows.permute(0, 2, 1, 3).flatten(2)  # (B, T', dim * kernel)
            weight = self.stem.weight.flatten(1)  # (dim, dim * kernel)
            tokens = F.gelu(F.linear(windows, weight, self.stem.bias))  # (B, T', dim)
            mask = mask[:, ::stride]  # (B, T'): a block is valid when its first position is
            tokens = tokens * mask[:, :, None]
        encoded, _ = self.encoder(tokens, mask=mask)  # (B, T', dim)
        return encoded, mask


def stem_options(stem_kernel: int, stem_stride: int) -> tuple[int, int]:
    """Checked ``(stem_kernel, stem_stride)``: a kernel of 0 (no stem) or more, a positive
    stride no wider than the kernel."""
    stem_kernel = integer("stem_kernel", stem_kernel, 0, hint="0: no stem")
    stem_stride = integer("stem_stride", stem_stride)
    if stem_stride > 1 and stem_kernel < stem_stride:
        raise InvalidParameterError(
            f"stem_stride={stem_stride} needs a stem at least as wide (stem_kernel >= "
            f"{stem_stride}), got stem_kernel={stem_kernel}")
    return stem_kernel, stem_stride

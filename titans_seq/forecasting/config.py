"""`ForecastConfig`: every setting of a forecasting network and its training, in one object
with one set of defaults — those :class:`~titans_seq.TitansForecaster` gets.

It travels whole: the estimator maps its flat parameters onto it in one function,
:class:`~titans_seq.ForecastingModule` takes it (a nested object in a LightningCLI config),
and the network is built from it. The layout's ``mode`` picks the network here, and nowhere
else.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from datamodules.checks import (boolean, choice, fraction, integer, quantile_levels, real,
                               settings)
from datamodules.timeseries import ForecastLayout

from ..blocks import EncoderConfig
from .interface import ForecastNetwork
from .long_memory import LongMemoryForecastNet
from .losses import LossName
from .network import ChannelMode, TitansForecastNet

# mode -> the network that reads data laid out that way
NETWORKS: dict[str, type] = {"stream": LongMemoryForecastNet, "window": TitansForecastNet}


def forecasting_encoder() -> EncoderConfig:
    """The encoder a forecaster gets by default: one LMM block, small chunks (a token is a
    patch of rows, and a series has few), dropout, and clipped surprise (a deep memory that
    reads a long stream diverged without it)."""
    return EncoderConfig(depth=1, chunk_size=4, segment_len=16, dropout=0.1,
                         max_surprise_norm=5.0)


@dataclass(frozen=True)
class ForecastConfig:
    """A forecasting network and its training (checked on construction).

    Parameters
    ----------
    layout : ForecastLayout
        Which rows a forecast reads: ``mode``, ``lookback``, ``horizon``, ``warmup``,
        ``linear_lookback``, ``patch_len``, ``segment_tokens`` (see
        :class:`~datamodules.timeseries.ForecastLayout`); the datamodule must share it.
    encoder : EncoderConfig
        The Titans encoder (see :class:`~titans_seq.EncoderConfig`).
    head_hidden : int
        ``mode="stream"``: width of the memory path's head (0: a linear head).
    head_dropout : float
        Dropout before the head's layers.
    memory : bool
        ``mode="stream"``: False drops the encoder (the head reads the recent rows only): the
        ablation that shows what the memory adds.
    train_linear : bool
        ``mode="stream"``: keep training the linear path after its closed-form ridge fit
        (False: it stays the ridge solution and the memory path learns what it misses).
    channel_mode : {"independent", "mixing"}
        ``mode="window"``: every channel its own stream of patches, or one stream of all
        channels (``mode="stream"`` reads each channel as its own lane).
    revin, linear_skip : bool
        ``mode="window"``: see :class:`~titans_seq.forecasting.TitansForecastNet`.
    loss : {"mse", "mae", "quantile"}
        Training loss; ``"quantile"`` is the pinball loss over ``quantiles`` and makes the
        median the point forecast (0.5 is added when absent).
    quantiles : tuple of float
        The levels of ``loss="quantile"`` (ignored by the other losses).
    lr, weight_decay, warmup_fraction : float
        AdamW with a linear warm-up over ``warmup_fraction`` of the steps, then cosine decay.
    learn_errors : bool
        After training, add a test-time regression memory of the network's errors
        (:class:`~titans_seq.forecasting.online.ErrorMemory`), its settings chosen on the
        validation origins: it learns from the realised error of every forecast whose rows
        have all arrived (False: the network alone).
    """

    layout: ForecastLayout = field(default_factory=ForecastLayout)
    encoder: EncoderConfig = field(default_factory=forecasting_encoder)
    head_hidden: int = 256
    head_dropout: float = 0.1
    memory: bool = True
    train_linear: bool = False
    channel_mode: ChannelMode = "independent"
    revin: bool = True
    linear_skip: bool = False
    loss: LossName = "mse"
    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.05
    learn_errors: bool = True

    def __post_init__(self) -> None:
        # A frozen dataclass: the checked (plain Python) values are set through object.
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        set_("layout", ForecastLayout.coerce(self.layout))
        set_("encoder", EncoderConfig.coerce(self.encoder))
        set_("head_hidden", integer("head_hidden", self.head_hidden, 0))
        set_("head_dropout", fraction("head_dropout", self.head_dropout))
        for name in ("memory", "train_linear", "revin", "linear_skip", "learn_errors"):
            set_(name, boolean(name, getattr(self, name)))
        choice("channel_mode", self.channel_mode, ("independent", "mixing"))
        levels = quantile_levels(self.loss, self.quantiles)  # checks loss and quantiles
        if levels is not None:
            set_("quantiles", tuple(float(q) for q in self.quantiles))
        elif isinstance(self.quantiles, list):  # as YAML and checkpoints give it
            set_("quantiles", tuple(self.quantiles))
        set_("lr", real("lr", self.lr, 0.0, low_open=True))
        set_("weight_decay", real("weight_decay", self.weight_decay, 0.0))
        set_("warmup_fraction", fraction("warmup_fraction", self.warmup_fraction))
        NETWORKS[self.layout.mode].check_settings(self)

    @property
    def quantile_levels(self) -> list[float] | None:
        """The trained levels (sorted, with 0.5) for ``loss="quantile"``; None otherwise."""
        return quantile_levels(self.loss, self.quantiles)

    def network(self, n_channels: int, n_covariates: int = 0, n_static: int = 0
                ) -> ForecastNetwork:
        """The network for data of these shapes (the layout's mode picks which)."""
        return NETWORKS[self.layout.mode].from_config(self, n_channels, n_covariates, n_static)

    def with_(self, **options: Any) -> "ForecastConfig":
        """A copy with some settings changed (checked again), each named flat: a field of the
        layout (``horizon=48``), of the encoder (``dim=32``) or of this config (``lr=3e-3``);
        the names of the three levels are distinct."""
        levels = {"layout": ({f.name for f in fields(ForecastLayout)}, {}),
                  "encoder": ({f.name for f in fields(EncoderConfig)}, {})}
        own: dict[str, Any] = {}
        for name, value in options.items():
            level = next((key for key, (names, _) in levels.items() if name in names), None)
            if level is not None:
                levels[level][1][name] = value
            elif name in {f.name for f in fields(self)} - set(levels):
                own[name] = value
            else:
                raise TypeError(f"{name!r} is not a forecasting setting: not a field of "
                                "ForecastLayout, EncoderConfig or ForecastConfig")
        changed = {key: getattr(self, key).__class__.coerce(
                       {**getattr(self, key).to_dict(), **values}, key)
                   for key, (_, values) in levels.items() if values}
        return ForecastConfig(**{**{f.name: getattr(self, f.name) for f in fields(self)},
                                 **changed, **own})

    @classmethod
    def coerce(cls, value: Any, name: str = "config") -> "ForecastConfig":
        """``value`` as a config: one already, a dict of its fields (nested dicts for the
        layout and the encoder, as checkpoints hold it), or None for the defaults."""
        return settings(cls, value, name)

    def to_dict(self) -> dict[str, Any]:
        """Plain values, nested (what checkpoints and YAML hold)."""
        options = asdict(self)
        options["quantiles"] = list(self.quantiles)
        return options


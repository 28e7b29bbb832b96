"""`ForecastLayout`: which rows a forecaster reads around each origin — the one home of the
context rule, shared by the datamodule, the estimator, the LightningModule and the networks.

A forecast at origin ``t`` predicts rows ``[t, t + horizon)``. Besides its memory it reads the
``context`` rows before ``t``:

- ``mode="stream"`` (long memory): the memory reads every whole patch of ``patch_len`` rows
  from the first row of the series; the forecast also reads the last ``lookback`` rows (the
  memory path's head) and the last ``linear_lookback`` rows (the linear path), so
  ``context = max(lookback, linear_lookback)``; the first origin with a forecast is 1 (rows
  before the series are zeros, unobserved). Training cuts each lane into segments of
  ``segment_tokens`` patches.
- ``mode="window"`` (fixed window): a forecast reads ``warmup + lookback`` rows, the first
  ``warmup`` written into the memory first, so ``context = lookback + warmup``; a forecast
  needs a whole ``lookback`` window, so the first origin is ``lookback``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from ..checks import InvalidParameterError, choice, integer, settings

Mode = Literal["stream", "window"]
MODES = ("stream", "window")

# Per mode: rows before an origin a forecast reads (the rule in words and as a function of the
# layout), the first origin that has a forecast, and the fields that fix the data's layout.
_CONTEXT = {"stream": ("max(lookback, linear_lookback)",
                       lambda l: max(l.lookback, l.linear_lookback)),
            "window": ("lookback + warmup", lambda l: l.lookback + l.warmup)}
_FIRST_ORIGIN = {"stream": lambda l: 1, "window": lambda l: l.lookback}
_SHARED = {"stream": ("mode", "lookback", "horizon", "linear_lookback", "patch_len",
                      "segment_tokens"),
           "window": ("mode", "lookback", "horizon", "warmup")}


@dataclass(frozen=True)
class ForecastLayout:
    """Which rows a forecaster reads (see the module's docstring); checked on construction.

    Parameters
    ----------
    mode : {"stream", "window"}
        Long memory over the whole history, or fixed windows (the ablation).
    lookback : int
        Recent rows the memory path's head reads (``"window"``: rows of a forecast's window).
    horizon : int
        Rows to forecast.
    warmup : int
        ``"window"``: rows before each window that the memory reads first (a multiple of
        ``lookback``); 0 in ``"stream"``, whose memory reads the whole history.
    linear_lookback : int
        ``"stream"``: rows of the linear path (0: none).
    patch_len : int
        Rows per memory token.
    segment_tokens : int
        ``"stream"``: memory tokens per training segment (truncated back-propagation).
    """

    mode: Mode = "stream"
    lookback: int = 96
    horizon: int = 24
    warmup: int = 0
    linear_lookback: int = 720
    patch_len: int = 16
    segment_tokens: int = 32

    def __post_init__(self) -> None:
        # A frozen dataclass: the checked (plain Python) values are set through object.
        choice("mode", self.mode, MODES)
        for name, low in (("lookback", 1), ("horizon", 1), ("warmup", 0),
                          ("linear_lookback", 0), ("patch_len", 1), ("segment_tokens", 1)):
            object.__setattr__(self, name, integer(name, getattr(self, name), low))
        if self.mode == "stream":
            if self.warmup:
                raise InvalidParameterError("warmup is for mode='window'; in mode='stream' the "
                                            "memory reads the whole history; set warmup=0")
            if self.lookback < self.patch_len:
                raise InvalidParameterError(f"lookback ({self.lookback}) must be at least "
                                            f"patch_len ({self.patch_len}) in mode='stream'")
        elif self.warmup % self.lookback:
            raise InvalidParameterError(f"warmup must be a multiple of lookback "
                                        f"({self.lookback}) >= 0, got {self.warmup!r}")

    @property
    def context(self) -> int:
        """Rows before an origin that a forecast reads besides its memory."""
        return _CONTEXT[self.mode][1](self)

    @property
    def context_rule(self) -> str:
        """:attr:`context` in words, for messages (``"lookback + warmup"``)."""
        return _CONTEXT[self.mode][0]

    @property
    def first_origin(self) -> int:
        """The first origin (row) that has a forecast."""
        return _FIRST_ORIGIN[self.mode](self)

    def mismatch(self, other: "ForecastLayout") -> tuple[str, Any, Any] | None:
        """The first setting of this mode that ``other`` has otherwise, ``(name, this value,
        other value)``; None when the two lay the data out alike."""
        for name in _SHARED[self.mode]:
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine != theirs:
                return name, mine, theirs
        return None

    @classmethod
    def coerce(cls, value: Any, name: str = "layout") -> "ForecastLayout":
        """``value`` as a layout: one already, a dict of its fields, or None (the defaults)."""
        return settings(cls, value, name)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

"""The memories of :class:`~titans_seq.anomaly.StreamAnomalyDetector`, as small streaming states.

Each state is a dataclass of numbers and float64/int64 arrays with an ``update(...)`` that
reads the next rows of a stream, returns one surprise (or score) per row and moves on; reading
a stream in pieces of any size gives the same floats as reading it in one call (every loop is
row by row, every running sum is a sequential ``cumsum`` carried from the call before), and
every state is bounded however long the stream.

Per channel (all on the value standardised by the first stretch):

- :class:`SeasonalKeys`: what the seasonal memory reads at each row: the time of day on
  circles, and the value one day and one week before, with their neighbours;
- :class:`SeasonalMemory`: a linear associative memory from those keys to the value, written
  by the Titans rule preconditioned by the keys' forgetting covariance (recursive least
  squares); its surprise is the standardised prediction error;
- :class:`ValueMemory`: a forgetting histogram of the value, overall or per hour of day; its
  surprise is ``−ln p(bin)``;
- :class:`SurpriseCalibration`: each surprise as an anomaly score in [0, 1].

Then :class:`EventRules` (new extremes, one report per event) make one score per row, the
largest over lanes and channels; :class:`StreamState` holds all of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.special import log_ndtr

from .calibration import EventRules

DAY, WEEK = 86_400, 604_800  # seconds
LEVERAGE_FLOOR = 1e-3  # 1 − kᵀR⁻¹k is floored here: a key never seen is surprising, not infinite
VALUE_RANGE = 10.0  # value memories bin the standardised value over [−10, 10]
HOURS = 24


def _ints() -> np.ndarray:
    return np.zeros(0, np.int64)


def _floats() -> np.ndarray:
    return np.zeros(0)


@dataclass
class SeasonalKeys:
    """The seasonal memory's keys, streaming: at a row of time ``t`` (``2·harmonics + 9``
    numbers) the time of day on ``harmonics`` circles (sines, then cosines), then for each lag
    in (``day``, ``week``) the value at the lag (the last row at or before ``t − lag``; the
    stream's first value and a flag 0 when there is none), its flag, and the values one usual
    ``step`` after and before it (lags ``lag − step`` and ``lag + step``), and a constant 1.

    The clock is in seconds (a day of 86 400) or, for a stream without timestamps, in rows (a
    day of ``season`` rows, a step of 1). Only rows before the current one are read, and the
    buffer (``seconds``, ``values``) keeps the last ``week + step`` of the clock and one row
    before it: all any later row can read when times do not go back. ``first`` is the stream's
    first value (NaN before any row)."""

    day: int
    week: int
    step: int
    harmonics: int = 6
    first: float = math.nan
    seconds: np.ndarray = field(default_factory=_ints)
    values: np.ndarray = field(default_factory=_floats)

    @property
    def dim(self) -> int:
        return 2 * self.harmonics + 9

    def update(self, seconds: np.ndarray, x: np.ndarray) -> np.ndarray:
        """The keys ``(N, dim)`` of the rows ``x (N,)`` at ``seconds (N,)``; the buffer moves
        on."""
        seconds, x = np.asarray(seconds, np.int64), np.asarray(x, np.float64)
        if math.isnan(self.first) and len(x):
            self.first = float(x[0])
        every_s = np.concatenate([self.seconds, seconds])
        every_x = np.concatenate([self.values, x])
        before = len(self.seconds) + np.arange(len(x))  # each row's place in `every_*`
        angles = 2 * np.pi * ((seconds % self.day) / self.day)[:, None] \
            * np.arange(1, self.harmonics + 1)
        parts = [np.sin(angles), np.cos(angles)]
        for lag in (self.day, self.week):
            for shift in (0, -self.step, self.step):
                # the last row at or before t − lag − shift, and never the row itself or a
                # later one (a lag shorter than a step would otherwise read the present)
                last = np.searchsorted(every_s, seconds - (lag + shift), side="right") - 1
                last = np.minimum(last, before - 1)
                found = last >= 0
                parts.append(np.where(found, every_x[np.maximum(last, 0)], self.first)[:, None])
                if shift == 0:
                    parts.append(found.astype(np.float64)[:, None])
        parts.append(np.ones((len(x), 1)))
        if len(every_s):  # keep what later rows can read: the last week + step, one row more
            cutoff = every_s.max() - (self.week + self.step)
            start = max(int(np.searchsorted(every_s, cutoff, side="right")) - 1, 0)
            self.seconds, self.values = every_s[start:].copy(), every_x[start:].copy()
        return np.concatenate(parts, 1)

    def hours(self, seconds: np.ndarray) -> np.ndarray:
        """The hour of the clock's day of each row, 0 to 23."""
        return (np.asarray(seconds, np.int64) % self.day) * HOURS // self.day


@dataclass
class SeasonalMemory:
    """A linear associative memory ``x ≈ M k`` from the seasonal keys to the value, written at
    every row by the Titans update (Behrouz, Zhong & Mirrokni, 2024, *Titans: Learning to
    Memorize at Test Time*, Eqs. 13–14: ``S_t = η_t S_{t−1} − θ_t ∇ℓ(M_{t−1}; x_t)``,
    ``M_t = (1 − α_t) M_{t−1} + S_t``) with momentum ``η = 0`` and decay ``α = 0``, the
    gradient of ``½ (x − M k)²`` preconditioned by the inverse of the keys' forgetting
    covariance: with ``e = x − M k``,

        ``R_t = λ R_{t−1} + (1 − λ) R₀ + k kᵀ``,  ``M_t = M_{t−1} + e (R_t⁻¹ k)ᵀ``,

    recursive least squares with forgetting ``λ`` (``forgetting``) whose covariance leaks
    towards the prior ``R₀ = prior · d · I`` (so it stays invertible for keys the stream no
    longer shows). The surprise of a row is ``|e| / sqrt(max(1 − kᵀR_t⁻¹k, 1e-3))``: the
    error, larger for a key the memory has seen little of (``|e| · sqrt(1 + kᵀA⁻¹k)`` with
    ``A`` the covariance before the row: the predictive standard error).

    Reading without writing (``write=False``, or ``fixed``: weights set from outside, such as
    the ridge ablation's) leaves the memory as it is, and the surprise is the plain ``|e|``.
    """

    weights: np.ndarray
    covariance: np.ndarray
    forgetting: float = 0.999
    prior: float = 1e-2
    fixed: bool = False

    @classmethod
    def empty(cls, dim: int, forgetting: float = 0.999, prior: float = 1e-2
              ) -> "SeasonalMemory":
        return cls(np.zeros(dim), prior * dim * np.eye(dim), forgetting, prior)

    def update(self, keys: np.ndarray, x: np.ndarray, write: bool = True) -> np.ndarray:
        """The surprise of each row of ``keys (N, d)``, ``x (N,)``; the memory writes them
        (unless ``write`` is False or the memory is ``fixed``)."""
        lam, dim = self.forgetting, len(self.weights)
        anchor = self.prior * dim * np.eye(dim)
        weights, covariance = self.weights, self.covariance
        surprise = np.zeros(len(x))
        write = write and not self.fixed
        for t in range(len(x)):
            key = keys[t]
            error = x[t] - weights @ key
            if not write:
                surprise[t] = abs(error)
                continue
            covariance = lam * covariance + (1 - lam) * anchor + np.outer(key, key)
            gain = np.linalg.solve(covariance, key)
            weights = weights + error * gain
            surprise[t] = abs(error) / math.sqrt(max(1 - gain @ key, LEVERAGE_FLOOR))
        self.weights, self.covariance = weights, covariance
        return surprise


def ridge_weights(keys: np.ndarray, x: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """Weights of a ridge regression of ``x`` on ``keys`` (penalty ``alpha``, an unpenalised
    intercept folded into the last key, the constant 1): the seasonal memory's ablation, a
    predictor fitted once on the first stretch."""
    key_mean, x_mean = keys.mean(0), x.mean()
    centred = keys - key_mean
    gram = centred.T @ centred + alpha * np.eye(keys.shape[1])
    weights = np.linalg.solve(gram, centred.T @ (x - x_mean))
    weights[-1] += x_mean - key_mean @ weights
    return weights


@dataclass
class ValueMemory:
    """A forgetting histogram of the standardised value, in bins of ``width`` over [−10, 10]
    (the outer bins take everything beyond), one per group (``groups``: 1, or 24 for the hour
    of day). The surprise of a row is ``−ln p(bin)`` before the row is written, with half a
    count of prior in every bin; a write decays only its own group's counts by
    ``forgetting``."""

    width: float = 0.5
    forgetting: float = 0.9997
    groups: int = 1
    counts: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    totals: np.ndarray = field(default_factory=_floats)

    def __post_init__(self) -> None:
        if self.counts.size == 0:
            self.counts = np.zeros((self.groups, 2 * self.half + 1))
            self.totals = np.zeros(self.groups)

    @property
    def half(self) -> int:
        return int(VALUE_RANGE / self.width)

    def update(self, x: np.ndarray, group: np.ndarray | None = None,
               write: bool = True) -> np.ndarray:
        half, lam = self.half, self.forgetting
        bins = 2 * half + 1
        # clipped before the cast: a huge value must not overflow the int
        place = np.clip(np.floor(np.clip(x / self.width, -half - 1.0, half + 1.0)),
                        -half, half).astype(np.int64) + half
        group = np.zeros(len(x), np.int64) if group is None else np.asarray(group, np.int64)
        counts, totals = self.counts.copy(), self.totals.copy()
        surprise = np.zeros(len(x))
        for t in range(len(x)):
            j, b = group[t], place[t]
            surprise[t] = -math.log((counts[j, b] + 0.5) / (totals[j] + 0.5 * bins))
            if write:
                counts[j] *= lam
                totals[j] = totals[j] * lam + 1
                counts[j, b] += 1
        self.counts, self.totals = counts, totals
        return surprise


@dataclass
class SurpriseCalibration:
    """A lane's surprise as a score in [0, 1], as HTM's anomaly likelihood: the mean of the
    last ``short`` surprises (the row's included) against a Gaussian of the ``long`` surprises
    before the row (σ at least ``floor``), ``L = −log₁₀ Q(z)`` reported as ``L / (L + 5)``
    (0.5 at a one-in-10⁵ tail); 0 until ``min_history`` rows came before.

    ``sums``, ``squares``: the running sums of the surprise and its square at the last
    ``long + 1`` rows (a sequential ``cumsum`` carried over calls, so the floats do not depend
    on how the stream is cut); ``rows``: rows read."""

    short: int = 10
    long: int = 20_000
    min_history: int = 100
    floor: float = 1e-3
    rows: int = 0
    sums: np.ndarray = field(default_factory=lambda: np.zeros(1))
    squares: np.ndarray = field(default_factory=lambda: np.zeros(1))

    def update(self, surprise: np.ndarray) -> np.ndarray:
        n = len(surprise)
        sums = np.concatenate([self.sums[:-1],
                               np.cumsum(np.concatenate([self.sums[-1:], surprise]))])
        squares = np.concatenate([self.squares[:-1], np.cumsum(
            np.concatenate([self.squares[-1:], surprise * surprise]))])
        base = self.rows + 1 - len(self.sums)  # the stream row of sums[0]
        row = self.rows + np.arange(n)
        recent_from = np.maximum(row + 1 - self.short, 0)
        recent = (sums[row + 1 - base] - sums[recent_from - base]) / (row + 1 - recent_from)
        start = np.maximum(row - self.long, 0)
        count = row - start
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = (sums[row - base] - sums[start - base]) / count
            spread = np.sqrt(np.maximum((squares[row - base] - squares[start - base]) / count
                                        - mean ** 2, 0))
            spread = np.maximum(spread, self.floor)
            decades = np.maximum(-log_ndtr(-(recent - mean) / spread) / math.log(10), 0)
            scores = np.nan_to_num(decades / (decades + 5))
        scores[count < self.min_history] = 0.0
        self.rows += n
        self.sums, self.squares = sums[-(self.long + 1):], squares[-(self.long + 1):]
        return scores


@dataclass
class ChannelMemories:
    """One channel's memories and the calibration of each of their lanes (seasonal, value,
    hour of day; the seasonal and hourly ones only with a clock)."""

    value: ValueMemory
    calibrations: list
    keys: SeasonalKeys | None = None
    seasonal: SeasonalMemory | None = None
    hourly: ValueMemory | None = None

    def update(self, x: np.ndarray, seconds: np.ndarray | None, write: bool) -> np.ndarray:
        """The channel's score of each row of ``x (N,)``: the largest calibrated surprise
        over its lanes."""
        lanes = []
        if self.keys is not None and self.seasonal is not None:
            lanes.append(self.seasonal.update(self.keys.update(seconds, x), x, write))
        lanes.append(self.value.update(x, None, write))
        if self.hourly is not None and self.keys is not None:
            lanes.append(self.hourly.update(x, self.keys.hours(seconds), write))
        return np.max([calibration.update(lane)
                       for calibration, lane in zip(self.calibrations, lanes)], 0)


@dataclass
class StreamState:
    """Everything the detector carries from row to row: the channels' memories, the rules,
    ``rows`` read (the row clock of a stream without timestamps), whether the memories write
    (``write``; False once frozen) and the clock (``"time"``: seconds from the timestamps;
    ``"rows"``: row numbers; ``"none"``: no seasonal memory)."""

    channels: list
    rules: EventRules
    clock: str = "time"
    rows: int = 0
    write: bool = True

    def update(self, values: np.ndarray, x: np.ndarray,
               seconds: np.ndarray | None = None) -> np.ndarray:
        """Scores of the rows ``values (N, C)`` (``x``: standardised; ``seconds``: the
        timestamps in seconds when the clock is ``"time"``); everything moves on."""
        if self.clock == "rows":
            seconds = self.rows + np.arange(len(values), dtype=np.int64)
        scores = np.stack([channel.update(x[:, c], seconds, self.write)
                           for c, channel in enumerate(self.channels)])  # (C, N)
        self.rows += len(values)
        return self.rules.update(values, scores)

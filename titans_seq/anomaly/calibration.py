"""From raw surprise to a calibrated anomaly score in [0, 1], one threshold for many streams.

Raw surprise (the memory's momentary error, in units of the stream's spread) has a scale of
its own in every stream. Like the anomaly likelihood of Ahmad et al. (2017), the score asks
how unlikely the recent surprise is given the surprise the stream has shown so far: the mean
of the last ``short`` rows' surprise against a Gaussian fitted to the surprise of the
``long`` rows before them, ``p = Q((m − μ) / σ)``, reported on a log scale that never
saturates, ``L / (L + 5)`` with ``L = −log₁₀ p``: 0 for ordinary surprise, 0.5 at
``p = 1e-5``, 0.8 at ``1e-20`` (a scale that stops at 1 would tie every large anomaly, and a
corpus-wide threshold could no longer tell them apart). A row's score uses only rows up to its
own, and is the same however the stream is cut into calls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.special import log_ndtr


@dataclass
class SurpriseLikelihood:
    """Streaming calibration of one lane's surprise (``history`` holds the last rows' raw
    surprise, at most ``short + long``)."""

    short: int = 3
    long: int = 1000
    min_history: int = 50
    history: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def update(self, surprise: np.ndarray) -> np.ndarray:
        """The scores of ``surprise (N,)``, rows after those seen; the history moves on."""
        every = np.concatenate([self.history, surprise])
        start = len(self.history)
        scores = np.zeros(len(surprise))
        short, long = self.short, self.long
        # recent mean: the last `short` rows up to each row (fewer at the stream's start)
        padded = np.concatenate([np.full(short - 1, np.nan), every])
        recent = np.nanmean(sliding_window_view(padded, short), axis=1)[start:]
        # reference: the `long` rows before each row's recent stretch
        padded = np.concatenate([np.full(long + short - 1, np.nan), every])
        # rows [t − s − L + 1, t − s] for each row t
        windows = sliding_window_view(padded, long)[:len(every)][start:]
        counts = np.sum(~np.isnan(windows), axis=1)
        enough = counts >= self.min_history
        if enough.any():
            mean = np.nanmean(windows[enough], axis=1)
            spread = np.sqrt(np.maximum(np.nanvar(windows[enough], axis=1), 1e-12))
            spread = np.maximum(spread, 1e-3 * np.maximum(np.abs(mean), 1e-6))
            z = (recent[enough] - mean) / spread
            decades = np.maximum(-log_ndtr(-z) / math.log(10.0), 0.0)  # −log₁₀ P(Z > z)
            scores[enough] = decades / (decades + 5.0)
        self.history = every[-(long + short):]
        return scores


NOVELTY_SCORE = 0.95  # the least score of a value beyond the channel's range so far


@dataclass
class EventRules:
    """The rules on top of the calibrated scores, streaming. ``novelty``: a value beyond its
    channel's running maximum (``high``) or minimum (``low``, the first stretch included) by
    more than ``tolerance`` times their range scores at least 0.95. ``refractory``: a row
    score not above the largest of the previous ``refractory`` row scores before this rule
    (``recent``) is reported as 0 (0: off)."""

    novelty: bool
    refractory: int
    low: np.ndarray
    high: np.ndarray
    tolerance: float = 0.0
    recent: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def update(self, values: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """``values (N, C)``, per-channel ``scores (C, N)`` → one score per row ``(N,)``."""
        if self.novelty:
            high = np.maximum.accumulate(np.vstack([self.high, values]), 0)[:-1]  # before
            low = np.minimum.accumulate(np.vstack([self.low, values]), 0)[:-1]
            span = high - low
            new = (values > high + self.tolerance * span) | (values < low - self.tolerance * span)
            scores = np.maximum(scores, np.where(new.T, NOVELTY_SCORE, 0.0))
            self.high = np.maximum(self.high, values.max(0))
            self.low = np.minimum(self.low, values.min(0))
        row_scores = scores.max(0)
        if not self.refractory:
            return row_scores
        every = np.concatenate([self.recent, row_scores])
        padded = np.concatenate([np.zeros(self.refractory - len(self.recent)), every])
        windows = sliding_window_view(padded, self.refractory)
        previous = windows[:-1].max(1)[-len(row_scores):]
        self.recent = every[-self.refractory:]
        return np.where(row_scores > previous, row_scores, 0.0)

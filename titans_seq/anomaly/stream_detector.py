"""`StreamAnomalyDetector`: a streaming anomaly detector whose memories learn the stream's
seasonal patterns and values as it scores (scikit-learn API, IsolationForest's conventions)."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

from datamodules.checks import boolean, choice, fraction, integer, real
from datamodules.timeseries import Stream, moments, read_stream, varies

from ..base import FittedEstimator
from .calibration import EventRules
from .seasonal import (DAY, HOURS, WEEK, ChannelMemories, SeasonalKeys,
                       SeasonalMemory, StreamState, SurpriseCalibration, ValueMemory,
                       ridge_weights)


class StreamAnomalyDetector(FittedEstimator):
    """Unsupervised streaming anomaly detection with memories that learn the stream.

    Each channel, standardised by the first stretch, is read row by row by three memories
    (:mod:`titans_seq.anomaly.seasonal`), each giving a surprise per row before it writes it:

    - a **seasonal memory**: a linear associative memory written by the Titans rule
      (momentum and decay 0) preconditioned by its keys' forgetting covariance (recursive
      least squares), which predicts the value from the time of day (``harmonics`` circles)
      and the values one day and one week before (and one usual step either side); its
      surprise is the standardised prediction error. A flattened day, a missing daily spike or
      a weekday that behaves like a weekend are errors of this memory;
    - a **value memory**: a forgetting histogram of the value (bins of ``value_width``
      standard deviations); surprise ``−ln p(bin)``: a level the stream seldom visits;
    - an **hour-of-day value memory** (``hour_memory``): the same per hour of the day (bins of
      one standard deviation): a level unusual for the hour.

    Each surprise is calibrated as HTM's anomaly likelihood: the mean of the last
    ``short_window`` surprises against a Gaussian of the ``long_window`` before them, reported
    as ``L / (L + 5)`` with ``L = −log₁₀ p`` (0.5: a one-in-10⁵ tail; 0 until ``min_history``
    rows). Then the rules (``rules``): a value beyond its channel's running maximum or minimum
    by more than ``tolerance`` of their range scores at least 0.95, and an event is reported
    once (a score not above the largest of the previous ``refractory`` scores is 0). A row's
    score is the largest over lanes and channels and depends on rows up to its own.

    The clock: with timestamps (a table with a time column, ``season`` None) the day and week
    are the calendar's and the usual step is the median spacing of the first stretch. Without
    timestamps, ``season`` (rows per cycle) makes the row number the clock: a "day" of
    ``season`` rows, a "week" of ``7 · season``, a step of one row, and the hour memory splits
    the cycle in 24. Without either, only the value memory reads the stream: there is no clock
    to key a seasonal memory or an hour on, and the lagged values of an unknown period would be
    guesses.

    ``fit`` standardises by the first stretch and reads it (the memories write every row).
    :meth:`anomaly_score` continues the stream and keeps its rows (later calls continue where
    the last one stopped; reading in pieces of any size gives the scores of one call, for
    timestamps that do not go back); a failed call changes nothing. :meth:`score_samples`,
    :meth:`decision_function` and :meth:`predict` score rows that continue the stream without
    keeping them. The state is bounded: the last week of values and ``long_window`` running
    sums per lane.

    Parameters
    ----------
    season : int, optional (default None)
        Rows per cycle, making the row number the clock (at least 2); None: the timestamps'
        day and week, if the stream has them, else no seasonal memory.
    harmonics : int (default 6)
        Circles of the time of day in the seasonal memory's keys.
    forgetting : float (default 0.999)
        The seasonal memory's forgetting λ (its keys' covariance forgets at this rate), in
        (0, 1].
    prior : float (default 0.01)
        The covariance's prior, ``prior · d · I``, towards which it leaks at rate ``1 − λ``.
    value_width : float (default 0.5)
        The value memory's bins, in standard deviations of the first stretch.
    value_forgetting : float (default 0.9997)
        Forgetting of the value memories' counts, per row written, in (0, 1].
    hour_memory : bool (default True)
        Add the hour-of-day value memory (with a clock).
    short_window : int (default 10)
        Recent rows whose mean surprise is calibrated.
    long_window : int (default 20000)
        Rows before it that the calibration's Gaussian is fitted to (at least
        ``short_window``).
    min_history : int (default 100)
        Rows before a lane's score can be above 0.
    tolerance : float (default 0.05)
        How far beyond the running maximum or minimum, as a share of their range, a value
        must go to score at least 0.95.
    refractory : int (default 30)
        Rows a reported event silences equal or lower scores for (0: off).
    rules : bool (default True)
        Apply the new-extreme and refractory rules; False: the calibrated surprise only (the
        ablation).
    freeze : bool (default False)
        After ``fit``, the memories read without writing (the ablation: what learning while
        scoring brings).
    predictor : {"memory", "ridge"} (default "memory")
        The seasonal lane: the memory, or (the ablation) a ridge regression (penalty 1) on the
        same keys fitted once on the first stretch, which never writes.
    contamination : float, optional (default None)
        The share of the first stretch's rows that :meth:`predict` calls outliers (sets
        ``offset_``), in (0, 0.5]; None: rows whose score exceeds ``threshold``.
    threshold : float (default 0.5)
        The anomaly score above which :meth:`predict` says -1 when ``contamination`` is None.

    Attributes
    ----------
    state_ : StreamState
        The memories, calibrations and rules, as they are after the rows read so far.
    mean_, scale_ : ndarray
        Each channel's standardisation (the first stretch's mean and spread; a flat stretch
        is scaled by its level, or 1).
    clock_ : str
        ``"time"``, ``"rows"`` or ``"none"`` (see above).
    n_features_in_ : int
        Channels.
    offset_ : float
        ``decision_function = score_samples − offset_``.
    """

    def __init__(self, season: int | None = None, harmonics: int = 6,
                 forgetting: float = 0.999, prior: float = 1e-2, value_width: float = 0.5,
                 value_forgetting: float = 0.9997, hour_memory: bool = True,
                 short_window: int = 10, long_window: int = 20_000, min_history: int = 100,
                 tolerance: float = 0.05, refractory: int = 30, rules: bool = True,
                 freeze: bool = False, predictor: str = "memory",
                 contamination: float | None = None, threshold: float = 0.5) -> None:
        self.season, self.harmonics = season, harmonics
        self.forgetting, self.prior = forgetting, prior
        self.value_width, self.value_forgetting = value_width, value_forgetting
        self.hour_memory = hour_memory
        self.short_window, self.long_window = short_window, long_window
        self.min_history, self.tolerance = min_history, tolerance
        self.refractory, self.rules, self.freeze = refractory, rules, freeze
        self.predictor = predictor
        self.contamination, self.threshold = contamination, threshold

    # -- fit ---------------------------------------------------------------------------------
    def fit(self, y: Any, X: Any = None) -> "StreamAnomalyDetector":
        """Standardise by a first stretch ``y`` (array ``(T,)``/``(T, C)`` or a table, at least
        2 rows) and read it, the memories writing. ``X`` is ignored (scikit-learn's
        signature)."""
        params = self._check_params()
        stream = read_stream(y, name="y")
        if len(stream.values) < 2:
            raise ValueError(f"y has {len(stream.values)} row; the first stretch needs at "
                             "least 2 (its spread and its usual time step)")
        mean, spread = moments(stream.values, 0)
        # a flat first stretch (no spread beyond its level's rounding) is scaled by its level
        scale = np.where(varies(spread, mean), spread,
                         np.where(np.abs(mean) > 0, np.abs(mean), 1.0))
        clock = "rows" if params["season"] is not None else \
            "time" if stream.times is not None else "none"
        seconds = _seconds(stream.times) if clock == "time" else None
        state = _new_state(params, clock, seconds, stream.values[0])
        x = (stream.values - mean) / scale
        if params["predictor"] == "ridge" and clock != "none":
            clocked = seconds if clock == "time" else np.arange(len(x), dtype=np.int64)
            for c, channel in enumerate(state.channels):
                keys = copy.deepcopy(channel.keys).update(clocked, x[:, c])
                channel.seasonal.weights = ridge_weights(keys, x[:, c])
        first = state.update(stream.values, x, seconds)  # the memories read the first stretch
        state.write = not params["freeze"]
        offset = (-float(np.quantile(first, 1 - params["contamination"]))
                  if params["contamination"] is not None else -params["threshold"])
        self._commit(dict(state_=state, mean_=mean, scale_=scale, clock_=clock,
                          n_features_in_=stream.values.shape[1], names_=stream.names,
                          offset_=offset))
        return self

    def _check_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "season": integer("season", self.season, 2, optional=True,
                              hint="rows per cycle, or None for the timestamps' day"),
            "harmonics": integer("harmonics", self.harmonics, 0),
            "short_window": integer("short_window", self.short_window),
            "long_window": integer("long_window", self.long_window),
            "min_history": integer("min_history", self.min_history),
            "refractory": integer("refractory", self.refractory, 0, hint="0: off"),
            "predictor": choice("predictor", self.predictor, ("memory", "ridge")),
            "threshold": fraction("threshold", self.threshold, one=True),
            "prior": real("prior", self.prior, 0.0, low_open=True),
            "value_width": real("value_width", self.value_width, 0.0, low_open=True),
            "tolerance": real("tolerance", self.tolerance, 0.0),
            "contamination": real("contamination", self.contamination, 0.0, 0.5,
                                  low_open=True, optional=True)}
        for name in ("forgetting", "value_forgetting"):
            params[name] = real(name, getattr(self, name), 0.0, 1.0, low_open=True,
                                hint="1: never forget")
        for name in ("hour_memory", "rules", "freeze"):
            params[name] = boolean(name, getattr(self, name))
        if params["long_window"] < params["short_window"]:
            raise ValueError(f"long_window ({params['long_window']}) must be at least "
                             f"short_window ({params['short_window']}); raise long_window")
        return params

    # -- scoring -----------------------------------------------------------------------------
    def anomaly_score(self, y: Any) -> np.ndarray:
        """One score in [0, 1] per row of ``y`` (higher = more anomalous), the rows read in
        order as the continuation of the stream, which the memories keep. The state is
        replaced, never changed in place: a copy of the detector and the original go on
        independently, and a failed call keeps it."""
        check_is_fitted(self)
        state = copy.deepcopy(self.state_)
        scores = self._read(state, self._stream(y))
        self.state_ = state
        return scores

    def score_samples(self, y: Any) -> np.ndarray:
        """``−anomaly_score`` of rows that continue the stream (higher = more normal), without
        keeping them (IsolationForest's convention)."""
        check_is_fitted(self)
        return -self._read(copy.deepcopy(self.state_), self._stream(y))

    def decision_function(self, y: Any) -> np.ndarray:
        """``score_samples − offset_``: negative for outliers."""
        return self.score_samples(y) - self.offset_

    def predict(self, y: Any) -> np.ndarray:
        """1 for inliers, -1 for outliers, per row (without keeping the rows)."""
        return np.where(self.decision_function(y) < 0, -1, 1)

    def _read(self, state: StreamState, stream: Stream) -> np.ndarray:
        seconds = _seconds(stream.times) if self.clock_ == "time" else None
        return state.update(stream.values, (stream.values - self.mean_) / self.scale_, seconds)

    def _stream(self, y: Any) -> Stream:
        stream = read_stream(y, name="y")
        if stream.values.shape[1] != self.n_features_in_:
            raise ValueError(f"y has {stream.values.shape[1]} columns, the detector was fitted "
                             f"on {self.n_features_in_}")
        if self.clock_ == "time" and stream.times is None:
            raise ValueError("the detector was fitted on a stream with timestamps (its keys "
                             "read the time of day); pass y with its time column")
        return stream


def _seconds(times: np.ndarray) -> np.ndarray:
    return times.astype("datetime64[s]").astype(np.int64)


def _new_state(params: dict[str, Any], clock: str, seconds: np.ndarray | None,
               first_row: np.ndarray) -> StreamState:
    """Empty memories for every channel, and the rules starting at the first row."""
    if clock == "time":
        # the usual step: the first stretch's median spacing (never later rows')
        day, week, step = DAY, WEEK, max(int(np.median(np.diff(seconds))), 0)
    elif clock == "rows":
        day, week, step = params["season"], 7 * params["season"], 1
    lanes = 1 + (clock != "none") * (1 + params["hour_memory"])
    channels = []
    for _ in first_row:
        channel = ChannelMemories(
            ValueMemory(params["value_width"], params["value_forgetting"]),
            [SurpriseCalibration(params["short_window"], params["long_window"],
                                 params["min_history"]) for _ in range(lanes)])
        if clock != "none":
            channel.keys = SeasonalKeys(day, week, step, params["harmonics"])
            channel.seasonal = SeasonalMemory.empty(channel.keys.dim, params["forgetting"],
                                                    params["prior"])
            channel.seasonal.fixed = params["predictor"] == "ridge"
            if params["hour_memory"]:
                channel.hourly = ValueMemory(1.0, params["value_forgetting"], HOURS)
        channels.append(channel)
    rules = EventRules(params["rules"], params["refractory"] if params["rules"] else 0,
                       first_row.copy(), first_row.copy(), params["tolerance"])
    return StreamState(channels, rules, clock)

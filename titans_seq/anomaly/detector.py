"""`TitansAnomalyDetector`: a streaming outlier detector whose Titans memory keeps learning as
it scores (scikit-learn API, IsolationForest's conventions)."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from datamodules.checks import boolean, fraction, integer, real
from datamodules.timeseries import Stream, moments, read_stream, varies

from ..base import TitansEstimator
from .calibration import EventRules, SurpriseLikelihood
from .module import FirstStretch, SurpriseModule


class TitansAnomalyDetector(TitansEstimator):
    """Unsupervised streaming anomaly detection with a Titans memory.

    Each channel is read row by row by a :class:`~titans_seq.anomaly.SurpriseMemory`: a memory
    MLP that writes every row by the Titans rule (surprise with momentum, forgetting; Eqs.
    12–14) and, before each write, predicts the row's change from the ``context`` rows before
    it. The row's *surprise* is the size of that momentary error, in units of the spread of
    the first stretch. The anomaly score calibrates it (:class:`SurpriseLikelihood`): how
    unlikely the last ``short_window`` rows' surprise is under the surprise of the
    ``long_window`` rows before them, on a log scale in [0, 1] (0.5: a one-in-10⁵ tail), so
    that one threshold serves many streams. Two rules follow (``novelty``, ``refractory``): a
    value beyond every one its channel has shown scores at least 0.95, and an event is
    reported once (a score no higher than those of the rows just before it is 0). A row's
    score depends on rows up to its own; the score of a row is the largest over its channels.

    ``fit`` learns the memory's keys, initial weights and gates on a first stretch (the outer
    loop: ``max_epochs`` Adam steps through every write of the stretch), then reads the
    stretch. :meth:`anomaly_score` continues the stream: the memory writes every row it
    scores, so a shift that persists is learnt and stops being anomalous; later calls continue
    where the last one stopped. :meth:`score_samples`, :meth:`decision_function` and
    :meth:`predict` score rows that continue the stream without keeping them.

    Parameters
    ----------
    context, key_dim, memory_depth, memory_hidden, chunk_size, max_lr
        The memory (see :class:`SurpriseMemory`).
    short_window, long_window : int
        The calibration's recent and reference stretches, in rows.
    novelty : bool
        A row whose value goes beyond every value its channel has shown (a new maximum or
        minimum) scores at least ``NOVELTY_SCORE`` (0.95): a level the stream never reached is
        news whatever the memory predicted (HTM's NAB detector has the same rule).
    refractory : int
        Report an event once: a score no higher than the largest of the previous
        ``refractory`` rows is reported as 0 (0: off).
    contamination : float, optional
        The share of the first stretch's rows that :meth:`predict` calls outliers (sets
        ``offset_``); None: rows whose anomaly score exceeds ``threshold``.
    threshold : float
        The anomaly score above which :meth:`predict` says -1 when ``contamination`` is None.
    max_epochs, lr
        The outer loop: Adam steps over the first stretch, their learning rate.
    random_state : int or numpy RandomState, optional
        Seed of the memory's initialisation.
    verbose, accelerator, devices, trainer_kwargs
        As for the other estimators (the outer loop runs in a Lightning Trainer).

    Attributes
    ----------
    module_ : SurpriseModule
    mean_, scale_ : ndarray
        Each channel's standardisation (the first stretch's mean and spread).
    n_features_in_ : int
        Channels.
    offset_ : float
        ``decision_function = score_samples − offset_``.
    """

    def __init__(self, context: int = 16, key_dim: int = 16, memory_depth: int = 2,
                 memory_hidden: int = 32, chunk_size: int = 8, max_lr: float = 1.0,
                 short_window: int = 3, long_window: int = 1000, novelty: bool = True,
                 refractory: int = 30, contamination: float | None = None,
                 threshold: float = 0.5,
                 max_epochs: int = 60, lr: float = 1e-2, random_state: int | None = None,
                 verbose: bool = False, accelerator: str = "cpu", devices: int | str = 1,
                 trainer_kwargs: dict | None = None) -> None:
        self.context, self.key_dim, self.memory_depth = context, key_dim, memory_depth
        self.memory_hidden, self.chunk_size, self.max_lr = memory_hidden, chunk_size, max_lr
        self.short_window, self.long_window = short_window, long_window
        self.novelty, self.refractory = novelty, refractory
        self.contamination, self.threshold = contamination, threshold
        self.max_epochs, self.lr, self.random_state = max_epochs, lr, random_state
        self.verbose, self.accelerator, self.devices = verbose, accelerator, devices
        self.trainer_kwargs = trainer_kwargs

    # -- fit ---------------------------------------------------------------------------------
    def fit(self, y: Any, X: Any = None) -> "TitansAnomalyDetector":
        """Learn the memory on a first stretch ``y`` (array ``(T,)``/``(T, C)`` or a table)
        and read it. ``X`` is ignored (scikit-learn's signature)."""
        params = self._check_params()
        stream = read_stream(y, name="y")
        if len(stream.values) < params["context"] + 2:
            raise ValueError(f"y has {len(stream.values)} rows; the first stretch needs at least "
                             f"context + 2 = {params['context'] + 2}")
        mean, spread = moments(stream.values, 0)
        # a flat first stretch (no spread beyond its level's rounding) is scaled by its level
        scale = np.where(varies(spread, mean), spread,
                         np.where(np.abs(mean) > 0, np.abs(mean), 1.0))
        values = torch.as_tensor(((stream.values - mean) / scale).T.copy(), dtype=torch.float32)
        timed = stream.times is not None
        features = _time_features(stream.times, values.shape[0]) if timed else None
        module = self._fit_module(
            lambda: SurpriseModule(params["context"], TIME_FEATURES if timed else 0,
                                   params["key_dim"], params["memory_depth"],
                                   params["memory_hidden"], params["chunk_size"],
                                   params["max_lr"], params["lr"]),
            FirstStretch(values, features), None, params, monitor="train_loss")
        fitted = dict(module_=module, mean_=mean, scale_=scale, timed_=timed,
                      n_features_in_=stream.values.shape[1], names_=stream.names)
        fitted["state_"] = module.net.initial_state(values[:, 0])
        fitted["calibrations_"] = [SurpriseLikelihood(params["short_window"],
                                                      params["long_window"])
                                   for _ in range(values.shape[0])]
        fitted["events_"] = EventRules(params["novelty"], params["refractory"],
                                       stream.values[0].copy(), stream.values[0].copy())
        first = _read(fitted, stream)  # the memory reads the first stretch
        fitted["offset_"] = (-float(np.quantile(first, 1 - params["contamination"]))
                             if params["contamination"] is not None else -params["threshold"])
        self._commit(fitted)
        return self

    def _check_params(self) -> dict[str, Any]:
        params = self._check_training_params()
        for name in ("context", "key_dim", "memory_depth", "memory_hidden", "chunk_size",
                     "short_window", "long_window"):
            params[name] = integer(name, getattr(self, name))
        params["refractory"] = integer("refractory", self.refractory, 0, hint="0: off")
        params["novelty"] = boolean("novelty", self.novelty)
        if params["context"] < 2:
            raise ValueError(f"context must be at least 2 rows, got {params['context']}")
        params["max_lr"] = real("max_lr", self.max_lr, 0.0, low_open=True)
        params["threshold"] = fraction("threshold", self.threshold, one=True)
        params["contamination"] = None if self.contamination is None else \
            real("contamination", self.contamination, 0.0, 0.5, low_open=True)
        return params

    # -- scoring -----------------------------------------------------------------------------
    def anomaly_score(self, y: Any) -> np.ndarray:
        """One score in [0, 1] per row of ``y`` (higher = more anomalous), the rows read in
        order as the continuation of the stream; the memory and the calibration keep them.
        The streaming state is replaced, never changed in place: a copy of the detector (even
        a shallow one) and the original go on independently, and a failed call keeps it."""
        check_is_fitted(self)
        working = {**vars(self), **self._moving_state()}
        scores = _read(working, self._stream(y))  # moves the working copies on
        self.__dict__.update({name: working[name] for name in self._moving_state_names})
        return scores

    def score_samples(self, y: Any) -> np.ndarray:
        """``−anomaly_score`` of rows that continue the stream (higher = more normal), without
        keeping them (IsolationForest's convention)."""
        check_is_fitted(self)
        return -_read({**vars(self), **self._moving_state()}, self._stream(y))

    _moving_state_names = ("state_", "calibrations_", "events_")  # what reading rows changes

    def _moving_state(self) -> dict[str, Any]:
        """What reading rows changes, ready to change: the calibrations and the event rules are
        updated in place, so they are copied; the memory state is replaced, never changed."""
        return {name: getattr(self, name) if name == "state_"
                else copy.deepcopy(getattr(self, name)) for name in self._moving_state_names}

    def decision_function(self, y: Any) -> np.ndarray:
        """``score_samples − offset_``: negative for outliers."""
        return self.score_samples(y) - self.offset_

    def predict(self, y: Any) -> np.ndarray:
        """1 for inliers, -1 for outliers, per row (without keeping the rows)."""
        return np.where(self.decision_function(y) < 0, -1, 1)

    def _stream(self, y: Any) -> Stream:
        stream = read_stream(y, name="y")
        if stream.values.shape[1] != self.n_features_in_:
            raise ValueError(f"y has {stream.values.shape[1]} columns, the detector was fitted "
                             f"on {self.n_features_in_}")
        if self.timed_ and stream.times is None:
            raise ValueError("the detector was fitted on a stream with timestamps (its keys "
                             "read the time of day and week); pass y with its time column")
        return stream


TIME_FEATURES = 4  # time of day and day of week, each as (sin, cos)


def _time_features(times: np.ndarray, lanes: int) -> torch.Tensor:
    """``(lanes, N, 4)``: where each row falls in its day and its week, on circles."""
    stamps = times.astype("datetime64[s]").astype(np.int64)
    day = (stamps % 86400) / 86400.0
    week = ((stamps // 86400 + 3) % 7 + day) / 7.0  # 1970-01-01 was a Thursday
    angles = 2 * np.pi * np.stack([day, week], 1)
    features = np.concatenate([np.sin(angles), np.cos(angles)], 1)
    return torch.as_tensor(features, dtype=torch.float32)[None].expand(lanes, -1, -1)


def _read(fitted: dict, stream: Stream) -> np.ndarray:
    """Score ``stream`` after ``fitted["state_"]``; the state and calibrations move on."""
    scaled = torch.as_tensor(((stream.values - fitted["mean_"]) / fitted["scale_"]).T.copy(),
                             dtype=torch.float32)  # (C, N)
    features = _time_features(stream.times, scaled.shape[0]) if fitted["timed_"] else None
    with torch.inference_mode():
        errors, fitted["state_"] = fitted["module_"].net(scaled, fitted["state_"], features)
    surprise = errors.abs().double().numpy()  # (C, N)
    scores = np.stack([calibration.update(lane) for calibration, lane
                       in zip(fitted["calibrations_"], surprise)])  # (C, N)
    return fitted["events_"].update(stream.values, scores)


# The rules' class under the name files saved by earlier versions give it.
_Events = EventRules

"""The Numenta Anomaly Benchmark's scoring, written from the description in
``shared/data/anomaly/README.md`` ("How the NAB score is computed"): probationary period,
anomaly windows, the scaled sigmoid, the three cost profiles, one threshold per detector and
profile swept over the whole corpus, and normalisation to null = 0, perfect = 100.

A file is scored from its per-row anomaly scores, the row indices of its windows and its
length; the sweep adds detections in order of decreasing score, so every distinct threshold
of the corpus is tried in ``O(N log N)``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

PROFILES = {"standard": (1.0, 0.11, 1.0), "reward_low_FP_rate": (1.0, 0.22, 1.0),
            "reward_low_FN_rate": (1.0, 0.11, 2.0)}  # (A_TP, A_FP, A_FN)


def scaled_sigmoid(position: np.ndarray | float) -> np.ndarray:
    """``2 / (1 + e^(5y)) − 1`` for ``y <= 3``, ``−1`` beyond (README §4)."""
    position = np.asarray(position, dtype=np.float64)
    with np.errstate(over="ignore"):
        value = 2.0 / (1.0 + np.exp(5.0 * position)) - 1.0
    return np.where(position > 3.0, -1.0, value)


def probation_rows(length: int) -> int:
    """The first ``min(floor(0.15 N), 750)`` rows are learning only, not scored."""
    return min(math.floor(0.15 * length), 750)


@dataclass
class ScoredFile:
    """One file: its per-row scores, its windows as inclusive ``(start, end)`` rows."""

    name: str
    scores: np.ndarray
    windows: list[tuple[int, int]]

    @property
    def length(self) -> int:
        return len(self.scores)


def detection_values(length: int, windows: Sequence[tuple[int, int]], profile: str
                     ) -> tuple[np.ndarray, np.ndarray]:
    """What a detection at each row would be worth: ``(value, window)`` per row, ``window``
    the index of the window holding the row (-1 outside every window; -2 in probation)."""
    tp, fp, _ = PROFILES[profile]
    rows = np.arange(length)
    value = np.full(length, -fp)  # before the first window, or no window: −A_FP
    window_of = np.full(length, -1)
    previous_end, previous_width = None, None
    for index, (start, end) in enumerate(sorted(windows)):
        width = end - start + 1
        if previous_end is not None:  # false positives after the previous window
            after = (rows > previous_end) & (rows < start)
            value[after] = fp * scaled_sigmoid((rows[after] - previous_end)
                                               / max(previous_width - 1, 1))
        inside = (rows >= start) & (rows <= end)
        value[inside] = tp * scaled_sigmoid(-(end - rows[inside] + 1) / width) \
            / scaled_sigmoid(-1.0)
        window_of[inside] = index
        previous_end, previous_width = end, width
    if previous_end is not None:
        after = rows > previous_end
        value[after] = fp * scaled_sigmoid((rows[after] - previous_end)
                                           / max(previous_width - 1, 1))
    window_of[:probation_rows(length)] = -2
    return value, window_of


def raw_score(file: ScoredFile, threshold: float, profile: str = "standard") -> float:
    """The file's raw score: each window its best detection's value (or −A_FN), plus every
    detection outside the windows."""
    _, _, fn = PROFILES[profile]
    value, window_of = detection_values(file.length, file.windows, profile)
    detected = file.scores >= threshold
    total = float(value[detected & (window_of == -1)].sum())
    for index in range(len(file.windows)):
        hits = detected & (window_of == index)
        total += float(value[hits].max()) if hits.any() else -fn
    return total


def normalised(total: float, windows: int, profile: str) -> float:
    """100 · (S − S_null) / (S_perfect − S_null): null = 0, perfect = 100."""
    tp, _, fn = PROFILES[profile]
    null, perfect = -fn * windows, tp * windows
    return 100.0 * (total - null) / (perfect - null)


def corpus_score(files: Sequence[ScoredFile], profile: str, threshold: float) -> float:
    """The normalised score of the corpus at a given threshold."""
    windows = sum(len(f.windows) for f in files)
    return normalised(sum(raw_score(f, threshold, profile) for f in files), windows, profile)


def best_threshold(files: Sequence[ScoredFile], profile: str) -> tuple[float, float]:
    """``(threshold, normalised score)`` maximising the corpus score over every distinct
    anomaly score of the scored rows (and "never fire")."""
    _, _, fn = PROFILES[profile]
    scores, values, windows, offsets = [], [], [], 0
    total_windows = 0
    for file in files:
        value, window_of = detection_values(file.length, file.windows, profile)
        scored = window_of != -2
        scores.append(file.scores[scored])
        values.append(value[scored])
        windows.append(np.where(window_of[scored] >= 0, window_of[scored] + offsets, -1))
        offsets += len(file.windows)
        total_windows += len(file.windows)
    scores, values, windows = (np.concatenate(part) for part in (scores, values, windows))
    order = np.argsort(-scores, kind="stable")
    scores, values, windows = scores[order], values[order], windows[order]
    best_in_window = np.full(total_windows, -np.inf)
    total = -fn * total_windows  # nothing detected yet
    best = (float("inf"), total)
    start = 0
    while start < len(scores):
        stop = start
        while stop < len(scores) and scores[stop] == scores[start]:
            stop += 1
        for value, window in zip(values[start:stop], windows[start:stop]):
            if window < 0:
                total += value
            elif value > best_in_window[window]:
                before = best_in_window[window]
                total += value - (before if before > -np.inf else -fn)
                best_in_window[window] = value
        if total > best[1]:
            best = (float(scores[start]), total)
        start = stop
    return best[0], normalised(best[1], total_windows, profile)


# -- the data folder ------------------------------------------------------------------------
def load_corpus(root: str | Path) -> dict[str, tuple[pd.DataFrame, list[tuple[int, int]]]]:
    """Every file of ``root/data`` (``"<folder>/<file>.csv"`` → its rows and window rows):
    row order as given; a window end is the first row with its timestamp (README, Labels)."""
    root = Path(root)
    windows = json.loads((root / "labels" / "combined_windows.json").read_text())
    corpus = {}
    for key in sorted(windows):
        frame = pd.read_csv(root / "data" / f"{key}.gz", parse_dates=["timestamp"])
        stamps = frame["timestamp"].to_numpy()
        rows = []
        for start, end in windows[key]:
            first = np.flatnonzero(stamps == np.datetime64(pd.Timestamp(start)))[0]
            last = np.flatnonzero(stamps == np.datetime64(pd.Timestamp(end)))[0]
            rows.append((int(first), int(last)))
        corpus[key] = (frame, rows)
    return corpus


def published_scores(root: str | Path, detector: str,
                     corpus: dict[str, tuple[pd.DataFrame, list]]) -> dict[str, np.ndarray]:
    """A published detector's per-row ``anomaly_score`` for each file, from ``results/``."""
    root = Path(root) / "results" / detector
    scores = {}
    for key in corpus:
        folder, name = key.split("/")
        frame = pd.read_csv(root / folder / f"{detector}_{name}.gz")
        scores[key] = frame["anomaly_score"].to_numpy(dtype=np.float64)
    return scores


def published_thresholds(root: str | Path, detector: str) -> dict[str, float]:
    table = json.loads((Path(root) / "config" / "thresholds.json").read_text())[detector]
    return {profile: table[profile]["threshold"] for profile in PROFILES}


# -- a small copy of the published outputs, for the tests --------------------------------------
def published_fixture(root: str | Path, detectors: Sequence[str], margin: float = 1.0) -> dict:
    """Each file's length and window rows, and per detector its published thresholds and the
    rows whose score reaches ``margin`` × its lowest threshold (published or re-tuned): the
    only rows any of those thresholds detect, so the copy scores as the whole outputs at each
    of them, and its sweep finds the same best threshold."""
    corpus = load_corpus(root)
    fixture = {"files": {key: {"length": len(frame), "windows": windows}
                         for key, (frame, windows) in corpus.items()}, "detectors": {}}
    for detector in detectors:
        scores = published_scores(root, detector, corpus)
        files = [ScoredFile(key, scores[key], corpus[key][1]) for key in corpus]
        thresholds = published_thresholds(root, detector)
        floor = margin * min(min(thresholds.values()),
                             min(best_threshold(files, p)[0] for p in PROFILES))
        fixture["detectors"][detector] = {
            "thresholds": thresholds,
            "detections": {key: [[int(row), float(scores[key][row])]
                                 for row in np.flatnonzero(scores[key] >= floor)]
                           for key in corpus}}
    return fixture


def fixture_files(fixture: dict, detector: str) -> list[ScoredFile]:
    """The scored files of one detector from :func:`published_fixture` (other rows 0)."""
    files = []
    for key, info in fixture["files"].items():
        scores = np.zeros(info["length"])
        for row, score in fixture["detectors"][detector]["detections"][key]:
            scores[row] = score
        files.append(ScoredFile(key, scores, [tuple(w) for w in info["windows"]]))
    return files

"""The NAB scorer of ``benchmarks/nab_scoring.py`` on cases derived by hand, and against the
published per-row outputs of three detectors (the data README's table)."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest

from benchmarks.nab_scoring import (ScoredFile, best_threshold, corpus_score, fixture_files,
                                    normalised, probation_rows, raw_score, scaled_sigmoid)

# The rows of NAB's published outputs that their thresholds detect (tests/data/README.md).
FIXTURE = json.loads(gzip.decompress(
    (Path(__file__).parent / "data" / "nab_published_detections.json.gz").read_bytes()))


def one_file(length: int, windows, detections, name: str = "f") -> ScoredFile:
    scores = np.zeros(length)
    scores[list(detections)] = 1.0
    return ScoredFile(name, scores, windows)


def test_sigmoid_values_from_the_readme():
    assert scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert scaled_sigmoid(0.0) == pytest.approx(0.0)
    assert scaled_sigmoid(1.0) == pytest.approx(-0.98661, abs=1e-5)
    assert scaled_sigmoid(3.5) == -1.0


def test_probation_is_fifteen_percent_up_to_750_rows():
    assert probation_rows(1000) == 150 and probation_rows(4032) == 604
    assert probation_rows(5000) == 750 and probation_rows(22695) == 750


def test_a_detection_at_a_windows_start_scores_a_true_positive():
    # 1000 rows (probation 150), one window of 101 rows [500, 600]
    assert raw_score(one_file(1000, [(500, 600)], [500]), 0.5) == pytest.approx(1.0)
    # later in the window is worth less: y = −(600 − 550 + 1)/101
    expected = scaled_sigmoid(-51 / 101) / scaled_sigmoid(-1.0)
    assert raw_score(one_file(1000, [(500, 600)], [550]), 0.5) == pytest.approx(expected)
    # only the earliest detection of a window counts
    assert raw_score(one_file(1000, [(500, 600)], [500, 550, 599]), 0.5) == pytest.approx(1.0)


def test_a_detection_just_after_a_window_costs_almost_nothing():
    # window [500, 600] missed (−1), one detection at 601: y = 1/100, A_FP · σ(0.01)
    value = raw_score(one_file(1000, [(500, 600)], [601]), 0.5)
    assert value == pytest.approx(-1.0 + 0.11 * (2 / (1 + math.exp(0.05)) - 1))
    assert -1.01 < value < -1.0
    # beyond three window widths: the full −A_FP
    assert raw_score(one_file(1000, [(100, 120)], [900]), 0.5) == pytest.approx(-1.0 - 0.11)


def test_files_without_windows_and_the_probationary_period():
    assert raw_score(one_file(1000, [], [400, 700]), 0.5) == pytest.approx(-0.22)
    assert raw_score(one_file(1000, [], [10, 149]), 0.5) == 0.0  # probation: not scored
    assert raw_score(one_file(1000, [(500, 600)], [300]), 0.5) == pytest.approx(-1.11)
    low_fp = raw_score(one_file(1000, [], [400]), 0.5, "reward_low_FP_rate")
    assert low_fp == pytest.approx(-0.22)
    assert raw_score(one_file(1000, [(500, 600)], []), 0.5, "reward_low_FN_rate") == -2.0


def test_normalisation_null_is_zero_and_perfect_is_one_hundred():
    files = [one_file(1000, [(500, 600)], [], "a"), one_file(800, [(300, 350)], [], "b")]
    assert corpus_score(files, "standard", 0.5) == 0.0
    perfect = [one_file(1000, [(500, 600)], [500], "a"), one_file(800, [(300, 350)], [300], "b")]
    assert corpus_score(perfect, "standard", 0.5) == pytest.approx(100.0)
    assert normalised(-78.0, 39, "reward_low_FN_rate") == 0.0


def test_the_threshold_sweep_finds_the_best_cut():
    rng = np.random.default_rng(0)
    scores = rng.random(2000) * 0.5
    scores[1000] = 0.9  # the start of the window: a true positive above every false alarm
    file = ScoredFile("f", scores, [(1000, 1100)])
    threshold, score = best_threshold([file], "standard")
    assert threshold == 0.9 and score == pytest.approx(100.0)
    # the sweep agrees with scoring every candidate threshold one by one
    candidates = np.unique(scores)[-50:]
    direct = max(corpus_score([file], "standard", t) for t in candidates)
    assert score == pytest.approx(direct)


@pytest.mark.parametrize("detector, expected", [
    ("numenta", (64.9, 58.3, 69.7, 64.9, 59.1, 69.8)),
    ("windowedGaussian", (27.3, 22.4, 30.2, 28.2, 22.4, 31.6)),
    ("ARTime", (68.8, 59.9, 74.1, 68.8, 60.0, 74.1)),
])
def test_published_detectors_rescore_to_the_readme_table(detector, expected):
    files = fixture_files(FIXTURE, detector)
    assert len(files) == 24 and sum(len(f.windows) for f in files) == 39
    thresholds = FIXTURE["detectors"][detector]["thresholds"]
    profiles = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
    at_published = [corpus_score(files, p, thresholds[p]) for p in profiles]
    re_tuned = [best_threshold(files, p)[1] for p in profiles]
    np.testing.assert_allclose(at_published + re_tuned, expected, atol=0.051)

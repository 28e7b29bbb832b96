"""The README's main job: the associative-recall demo."""

from __future__ import annotations

import pytest

from titans_seq.demo import main, recall


def test_memory_learns_at_test_time():
    score, baseline, streamed_equals_whole = recall(pairs=8, dim=16, depth=1, chunk_size=1,
                                                    repeats=10, lr=0.5)
    assert score > 0.95          # a linear memory under capacity recalls almost exactly
    assert abs(baseline) < 0.5   # without writes there is nothing to recall
    assert streamed_equals_whole


def test_deep_memory_beats_linear_past_linear_capacity():
    linear, _, _ = recall(pairs=64, dim=16, depth=1, chunk_size=1, repeats=30, lr=0.5)
    deep, _, _ = recall(pairs=64, dim=16, depth=2, chunk_size=1, repeats=30, lr=0.05)
    assert deep > linear


def test_main_prints_a_table(capsys):
    assert main(["--pairs", "4", "--dim", "8", "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    assert "recall (cos)" in out and "linear" in out and "deep" in out


def test_main_rejects_bad_arguments():
    with pytest.raises(SystemExit):
        main(["--pairs", "x"])
    with pytest.raises(SystemExit):
        main(["--dim", "0"])

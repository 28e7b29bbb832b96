"""Sliding-window attention against a per-query softmax written out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from titans_seq.attention import SlidingWindowAttention
from titans_seq.attention.kernels import INVALID, attend
from titans_seq.attention.rotary import apply_rotary


def naive_window_attention(module, x, prefix, window):
    """Each query t: softmax over the persistent keys and the keys t − window + 1 … t."""
    batch, length, _ = x.shape
    positions = torch.arange(length)[None].expand(batch, -1)
    q = module.queries(x, positions)
    k, v = module.keys_values(x, positions)
    sink_k, sink_v = module.keys_values(prefix, None)
    rows = []
    for t in range(length):
        first = max(0, t - window + 1)
        keys = torch.cat([sink_k, k[:, :, first:t + 1]], dim=2)
        values = torch.cat([sink_v, v[:, :, first:t + 1]], dim=2)
        scores = (q[:, :, t:t + 1] @ keys.transpose(-1, -2)) / math.sqrt(q.shape[-1])
        rows.append(scores.softmax(-1) @ values)
    out = torch.cat(rows, dim=2).transpose(1, 2).reshape(batch, length, -1)
    return module.output(out)


@pytest.mark.parametrize("window,length", [(1, 9), (4, 30), (5, 150), (200, 150)])
def test_sliding_window_matches_hand_written_softmax(window, length):
    torch.manual_seed(0)
    module = SlidingWindowAttention(16, heads=2, window=window).double()
    x = torch.randn(2, length, 16, dtype=torch.float64)
    prefix = torch.randn(2, 3, 16, dtype=torch.float64)
    y, _ = module(x, module.initial_cache(2, x), prefix=prefix)
    torch.testing.assert_close(y, naive_window_attention(module, x, prefix, window))


def test_window_cache_keeps_each_rows_last_valid_tokens():
    torch.manual_seed(1)
    module = SlidingWindowAttention(8, heads=2, window=4).double()
    x = torch.randn(2, 6, 8, dtype=torch.float64)
    mask = torch.tensor([[True] * 6, [True] * 2 + [False] * 4])
    _, cache = module(x, module.initial_cache(2, x), mask)
    assert cache.tokens_seen.tolist() == [6, 2]
    assert cache.positions.tolist() == [[3, 4, 5], [INVALID, 0, 1]]
    positions = torch.arange(6)[None].expand(2, -1)
    keys, _ = module.keys_values(x, positions)
    torch.testing.assert_close(cache.keys[0], keys[0, :, 3:6])
    torch.testing.assert_close(cache.keys[1, :, 1:], keys[1, :, 0:2])


def test_flex_attention_equals_sdpa_on_the_same_rule():
    torch.manual_seed(2)
    q = torch.randn(2, 2, 20, 8)
    k = torch.randn(2, 2, 27, 8)
    v = torch.randn(2, 2, 27, 8)
    query_positions = torch.arange(10, 30)[None].expand(2, -1)
    key_positions = torch.cat([torch.full((2, 3), -1), torch.tensor([[INVALID] * 2 + [7, 8]] * 2),
                               query_positions], dim=1)
    sdpa = attend(q, k, v, query_positions, key_positions, window=6, backend="sdpa")
    flex = attend(q, k, v, query_positions, key_positions, window=6, backend="flex")
    torch.testing.assert_close(flex, sdpa, rtol=1e-5, atol=1e-5)


def test_rotary_scores_depend_on_relative_position_only():
    torch.manual_seed(3)
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)
    def score(query_at, key_at):
        return (apply_rotary(q, torch.tensor([[query_at]]))
                @ apply_rotary(k, torch.tensor([[key_at]])).transpose(-1, -2)).item()
    assert score(10, 7) == pytest.approx(score(103, 100), abs=1e-4)
    assert score(10, 7) != pytest.approx(score(10, 2), abs=1e-3)


def test_attention_refuses_bad_input():
    module = SlidingWindowAttention(8, heads=2, window=4)
    x = torch.randn(2, 5, 8)
    cache = module.initial_cache(2, x)
    with pytest.raises(ValueError, match="dim=8"):
        module(x[..., :4], cache)
    with pytest.raises(ValueError, match="slots"):
        module(x[:1], cache)
    with pytest.raises(ValueError, match="end of a row"):
        module(x, cache, torch.tensor([[True, False, True, True, True]] * 2))


def test_attention_refuses_bad_configuration():
    with pytest.raises(ValueError, match="divisible"):
        SlidingWindowAttention(10, heads=3, window=4)
    with pytest.raises(ValueError, match="window"):
        SlidingWindowAttention(8, heads=2, window=0)
    with pytest.raises(ValueError, match="backend"):
        SlidingWindowAttention(8, heads=2, window=4, backend="triton")

"""Small synthetic series and a tiny forecaster configuration shared by the tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

# A long-memory forecaster small enough to fit in a second or two.
TINY_STREAM = dict(horizon=6, lookback=24, patch_len=4, linear_lookback=48, segment_tokens=8,
                   dim=8, head_hidden=16, memory_depth=1, max_epochs=2, batch_size=8,
                   random_state=0)


def daily_cycle(n: int, noise: float, seed: int = 0, columns=("load",)) -> pd.DataFrame:
    """Hourly rows from 2024-01-01: a 24-hour cycle per column (sine, cosine, …) plus noise."""
    rng = np.random.default_rng(seed)
    phase = 2 * np.pi * np.arange(n) / 24
    return pd.DataFrame({"ds": pd.date_range("2024-01-01", periods=n, freq="h"),
                         **{name: np.sin(phase + index * np.pi / 2) + noise * rng.normal(size=n)
                            for index, name in enumerate(columns)}})

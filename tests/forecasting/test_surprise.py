"""`TitansForecaster.surprise`: per row and column, causal, the same for the fitted rows and
for those rows passed again, and high where the data jumps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.series import TINY_STREAM, daily_cycle
from titans_seq import TitansForecaster

TINY = {**TINY_STREAM, "horizon": 4, "lookback": 16, "linear_lookback": 32}


def frame(n=400):
    return daily_cycle(n, 0.05, columns=("load", "temp"))


@pytest.fixture(scope="module", params=["stream", "window"])
def fitted(request):
    return TitansForecaster(mode=request.param, **TINY).fit(frame())


def test_fitted_rows_score_as_when_passed_again(fitted):
    seen = fitted.surprise()
    assert list(seen.columns) == ["ds", "load", "temp"] and len(seen) == 400
    pd.testing.assert_frame_equal(seen, fitted.surprise(frame()))
    first = 1 if fitted.mode == "stream" else fitted.lookback
    assert seen.iloc[:first, 1:].isna().all().all()
    assert seen.iloc[first:, 1:].notna().all().all() and (seen.iloc[first:, 1:] >= 0).all().all()


def test_surprise_is_causal_and_marks_a_jump(fitted):
    data = frame()
    data.loc[300, "load"] += 3.0
    scores = fitted.surprise(data)
    base = fitted.surprise(frame())
    pd.testing.assert_frame_equal(scores.iloc[:300], base.iloc[:300])  # nothing before moved
    assert scores["load"].iloc[300] > 10 * base["load"].iloc[200:300].median()
    assert scores["temp"].iloc[300] == pytest.approx(base["temp"].iloc[300])  # other lane


def test_arrays_give_arrays_and_the_stream_after_update_continues():
    values = frame()[["load", "temp"]].to_numpy()
    forecaster = TitansForecaster(**TINY).fit(values[:300])
    assert forecaster.surprise().shape == (300, 2)
    forecaster.update(values[300:])
    np.testing.assert_allclose(forecaster.surprise(), forecaster.surprise(values), rtol=1e-6)

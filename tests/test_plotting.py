"""`titans_seq.plotting`: each plot renders to PNG with the Agg backend and draws what it
claims (lines, bands, shaded windows, marked rows), on its own figure or a given axis."""

from __future__ import annotations

import io
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402

from tests.series import TINY_STREAM, daily_cycle  # noqa: E402
from titans_seq import TitansAnomalyDetector, TitansForecaster  # noqa: E402
from titans_seq.plotting import plot_backtest, plot_forecast, plot_surprise  # noqa: E402

TINY = {**TINY_STREAM, "max_epochs": 1, "val_fraction": 0.3}


def cycle(n=700):
    return daily_cycle(n, 0.2)


@pytest.fixture(scope="module")
def fitted():
    return TitansForecaster(**TINY).fit(cycle().iloc[:600])


def png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    assert buffer.getvalue()[:4] == b"\x89PNG"
    return buffer.getvalue()


def bands(axis) -> list:
    return [c for c in axis.collections if isinstance(c, PolyCollection)]


def test_forecast_with_history_actual_and_a_conformal_band(fitted):
    data = cycle()
    figure = plot_forecast(fitted.predict_interval(coverage=0.9), history=data.iloc[:600],
                           actual=data.iloc[600:606], last=48)
    axis = figure.axes[0]
    labels = [line.get_label() for line in axis.get_lines()]
    assert labels == ["load (history)", "load (forecast)", "load (actual)"]
    assert len(axis.get_lines()[0].get_xdata()) == 48  # the last 48 rows of history
    assert len(bands(axis)) == 1 and "90 % interval" in [t.get_text() for t in
                                                         axis.get_legend().get_texts()]
    png(figure)


def test_quantile_bands_long_tables_and_a_given_axis():
    data = cycle()
    long = pd.concat([data.iloc[:600].assign(unique_id="a"), data.iloc[:600].assign(
        unique_id="b")]).rename(columns={"load": "y"})
    model = TitansForecaster(**{**TINY, "loss": "quantile"}).fit(long)
    quantiles = model.predict_quantiles(quantiles=(0.1, 0.5, 0.9))
    figure = plot_forecast(quantiles, history=long)
    assert len(figure.axes) == 2 and all(len(bands(axis)) == 1 for axis in figure.axes)
    png(figure)
    with pytest.raises(ValueError, match="2 series"):
        plot_forecast(quantiles, ax=plt.subplots()[1])
    figure, axis = plt.subplots()
    assert plot_forecast(model.predict_interval(long[long.unique_id == "a"]), ax=axis) is figure
    png(figure)
    interval = TitansForecaster(**TINY).fit(data["load"].to_numpy()[:600]).predict_interval()
    assert len(bands(plot_forecast(interval[:, None, :]).axes[0])) == 1


def test_backtest_marks_each_origin_and_its_error(fitted):
    result = fitted.backtest(cycle(), n_windows=4, step=6)
    figure = plot_backtest(result)
    top, bottom = figure.axes
    origins = [line for line in top.get_lines() if line.get_linestyle() == ":"]
    assert len(origins) == 4 and len(bottom.patches) == 4
    heights = sorted(p.get_height() for p in bottom.patches)
    windows = result.forecasts.groupby("cutoff")
    expected = sorted(float(np.mean((part["load"].to_numpy() - result.actuals.loc[
        part.index, "load"].to_numpy()) ** 2)) for _, part in windows)
    np.testing.assert_allclose(heights, expected, rtol=1e-6)
    png(figure)


def test_surprise_marks_rows_and_shades_windows():
    data = cycle(900)
    data.loc[750, "load"] += 4.0
    detector = TitansAnomalyDetector(max_epochs=5, random_state=0).fit(data.iloc[:600])
    scores = np.r_[np.zeros(600), detector.anomaly_score(data.iloc[600:])]
    window = (data["ds"].iloc[740], data["ds"].iloc[760])
    figure = plot_surprise(data, scores, threshold=0.5, windows=[window])
    top, bottom = figure.axes
    marked = top.collections[0].get_offsets()
    assert len(marked) >= 1 and np.isclose(marked[:, 1], data["load"].iloc[750],
                                           atol=1e-6).any()
    assert sum(1 for p in top.patches) == 1 and sum(1 for p in bottom.patches) == 1
    png(figure)
    with pytest.raises(ValueError, match="one score per row"):
        plot_surprise(data, scores[:-1])
    forecaster = TitansForecaster(**TINY).fit(data.iloc[:600])
    png(plot_surprise(data.iloc[:600], forecaster.surprise(), column="load"))


def test_a_missing_matplotlib_gets_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match="needs matplotlib: pip install"):
        plot_surprise(cycle(), np.zeros(700))

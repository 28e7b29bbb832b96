"""`titans_seq.plotting`: each plot renders to PNG with the Agg backend and draws what it
claims (history, actual values, forecast lines, bands, shaded windows, marked rows, gaps for
unscored rows), with labelled axes, a title and a legend beside the axes that the figure
keeps whole, on its own figure or a given axis; bad input is refused by name."""

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
from matplotlib.dates import date2num  # noqa: E402

from tests.series import TINY_STREAM, daily_cycle  # noqa: E402
from titans_seq import TitansAnomalyDetector, TitansForecaster  # noqa: E402
from titans_seq.plotting import plot_backtest, plot_forecast, plot_surprise  # noqa: E402

TINY = {**TINY_STREAM, "max_epochs": 1, "val_fraction": 0.3}


def cycle(n=700):
    return daily_cycle(n, 0.2)


@pytest.fixture(scope="module")
def fitted():
    return TitansForecaster(**TINY).fit(cycle().iloc[:600])


@pytest.fixture(scope="module")
def quantile_model():
    """A quantile forecaster of a long table of two series (``a``, ``b``), and the table."""
    data = cycle()
    long = pd.concat([data.iloc[:600].assign(unique_id="a"), data.iloc[:600].assign(
        unique_id="b")]).rename(columns={"load": "y"})
    return TitansForecaster(**{**TINY, "loss": "quantile"}).fit(long), long


@pytest.fixture(scope="module")
def detected():
    """A stream with a spike at row 750 and the detector's scores of the rows after the 600
    it was fitted on (its probation: it scores none of those)."""
    data = cycle(900)
    data.loc[750, "load"] += 4.0
    detector = TitansAnomalyDetector(max_epochs=5, random_state=0).fit(data.iloc[:600])
    return data, detector.anomaly_score(data.iloc[600:])


def png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    assert buffer.getvalue()[:4] == b"\x89PNG"
    return buffer.getvalue()


def bands(axis) -> list:
    return [c for c in axis.collections if isinstance(c, PolyCollection)]


def legend_texts(axis) -> list[str]:
    return [text.get_text() for text in axis.get_legend().get_texts()]


def beside(figure, axis, twin=None) -> None:
    """The legend of ``axis`` lies right of the axes (and of a twin's tick labels), off the
    data, and wholly inside the figure (the layout made room for it)."""
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    legend = axis.get_legend().get_window_extent(renderer)
    right = (twin.get_tightbbox(renderer) if twin is not None
             else axis.get_window_extent(renderer)).x1
    assert legend.x0 >= right - 0.5
    box = figure.bbox
    assert box.x0 <= legend.x0 and legend.x1 <= box.x1 + 0.5
    assert box.y0 <= legend.y0 and legend.y1 <= box.y1 + 0.5


def span_x(patch) -> tuple[float, float]:
    """The data x extent of a shaded span (a Rectangle or a Polygon, by matplotlib version)."""
    x = patch.get_patch_transform().transform(patch.get_path().vertices)[:, 0]
    return float(x.min()), float(x.max())


def test_forecast_with_history_actual_and_a_conformal_band(fitted):
    data = cycle()
    figure = plot_forecast(fitted.predict_interval(coverage=0.9), history=data.iloc[:600],
                           actual=data.iloc[600:606], last=48)
    axis = figure.axes[0]
    labels = [line.get_label() for line in axis.get_lines()]
    assert labels == ["load (history)", "load (forecast)", "load (actual)"]
    assert len(axis.get_lines()[0].get_xdata()) == 48  # the last 48 rows of history
    np.testing.assert_allclose(axis.get_lines()[2].get_ydata(), data["load"].iloc[600:606])
    assert len(bands(axis)) == 1
    assert axis.get_title() == "load: 6-step forecast with 90 % interval"
    assert (axis.get_xlabel(), axis.get_ylabel()) == ("ds", "load")
    assert legend_texts(axis) == ["load (history)", "load (forecast)", "90 % interval",
                                  "load (actual)"]
    beside(figure, axis)
    png(figure)


def test_a_quantile_forecast_draws_history_actuals_median_and_band(quantile_model):
    model, long = quantile_model
    data = cycle()
    quantiles = model.predict_quantiles(quantiles=(0.1, 0.5, 0.9))
    actual = pd.concat([data.iloc[600:606].assign(unique_id=key)
                        for key in "ab"]).rename(columns={"load": "y"})
    figure = plot_forecast(quantiles, history=long, actual=actual, last=48)
    assert len(figure.axes) == 2
    for axis, key in zip(figure.axes, "ab"):
        rows = quantiles[quantiles["unique_id"] == key]
        history, median, drawn = axis.get_lines()
        assert [line.get_label() for line in (history, median, drawn)] == [
            "y (history)", "y (median forecast)", "y (actual)"]
        np.testing.assert_allclose(drawn.get_ydata(), data["load"].iloc[600:606])
        np.testing.assert_array_equal(drawn.get_xdata(), median.get_xdata())
        np.testing.assert_allclose(median.get_ydata(), rows["y_q0.5"])
        np.testing.assert_allclose(history.get_ydata(), data["load"].iloc[552:600])
        band, = bands(axis)
        edge = band.get_paths()[0].vertices[:, 1]
        np.testing.assert_allclose([edge.min(), edge.max()],
                                   [rows["y_q0.1"].min(), rows["y_q0.9"].max()], rtol=1e-6)
        assert axis.get_title() == f"series {key}, y: 6-step forecast with q0.1–q0.9 band"
        assert (axis.get_xlabel(), axis.get_ylabel()) == ("ds", "y")
        assert legend_texts(axis) == ["y (history)", "y (median forecast)", "q0.1–q0.9 band",
                                      "y (actual)"]
        beside(figure, axis)
    png(figure)


def test_a_given_axis_arrays_and_refusals(quantile_model):
    model, long = quantile_model
    quantiles = model.predict_quantiles(quantiles=(0.1, 0.5, 0.9))
    with pytest.raises(ValueError, match="2 series"):
        plot_forecast(quantiles, ax=plt.subplots()[1])
    figure, axis = plt.subplots()
    assert plot_forecast(model.predict_interval(long[long.unique_id == "a"]), ax=axis) is figure
    assert legend_texts(axis) == ["y (forecast)", "90 % interval"]
    beside(figure, axis)  # a caller's figure is laid out too
    png(figure)
    interval = TitansForecaster(**TINY).fit(cycle()["load"].to_numpy()[:600]).predict_interval()
    axis = plot_forecast(interval[:, None, :]).axes[0]
    assert len(bands(axis)) == 1 and axis.get_xlabel() == "row"
    assert axis.get_title() == "y0: 6-step forecast with interval"
    with pytest.raises(ValueError, match=r"\(H, C, 3\)"):
        plot_forecast(np.zeros((6, 1, 4)))
    with pytest.raises(ValueError, match="last must be a positive int"):
        plot_forecast(quantiles, last=0)
    with pytest.raises(ValueError, match="none of the forecast's targets"):
        plot_forecast(quantiles, actual=long.rename(columns={"y": "load"}))
    with pytest.raises(ValueError, match="no rows of series 'b'"):
        plot_forecast(quantiles, history=long[long.unique_id == "a"])
    with pytest.raises(ValueError, match="time_col 'when' is not a column of forecast"):
        plot_forecast(quantiles, time_col="when")
    with pytest.raises(TypeError, match="forecast must be a pandas or polars DataFrame"):
        plot_forecast([1.0, 2.0])
    plt.close("all")


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
    assert top.get_title() == "backtest of load: 4 windows"
    assert (bottom.get_xlabel(), top.get_ylabel(), bottom.get_ylabel()) == (
        "ds", "load", "window MSE")
    assert legend_texts(top) == ["actual", "forecast", "window MSE"]
    beside(figure, top)
    png(figure)
    figure, axis = plt.subplots()
    plot_backtest(result, ax=axis)
    twin = [other for other in figure.axes if other is not axis][0]
    assert (axis.get_xlabel(), axis.get_ylabel(), twin.get_ylabel()) == (
        "ds", "load", "window MSE")
    beside(figure, axis, twin)  # right of the twin's tick labels, not over them
    png(figure)
    with pytest.raises(ValueError, match=r"choose one of \['load'\]"):
        plot_backtest(result, column="nope")
    with pytest.raises(TypeError, match="result must be a BacktestResult"):
        plot_backtest(result.forecasts)


def test_the_detectors_probation_is_a_shaded_gap_not_zeros(detected):
    data, scored = detected
    window = (data["ds"].iloc[740], data["ds"].iloc[760])
    padded = np.r_[np.zeros(600), scored]  # what a caller gets by padding the unscored rows
    for scores in (padded, scored):  # every row, or only the scored ones
        figure = plot_surprise(data, scores, threshold=0.5, windows=[window], probation=600)
        top, bottom = figure.axes
        drawn = bottom.get_lines()[0].get_ydata()
        assert np.isnan(drawn[:600]).all()
        np.testing.assert_allclose(drawn[600:], scored)
        marked = top.collections[0].get_offsets()
        assert len(marked) >= 1 and np.isclose(marked[:, 1], data["load"].iloc[750],
                                               atol=1e-6).any()
        for axis in (top, bottom):
            probation, labelled = axis.patches
            np.testing.assert_allclose(span_x(probation),
                                       date2num(data["ds"].iloc[[0, 600]].to_numpy()))
            np.testing.assert_allclose(span_x(labelled), date2num(np.array(window)))
        assert top.get_title() == "surprise of load"
        assert (bottom.get_xlabel(), top.get_ylabel(), bottom.get_ylabel()) == (
            "ds", "load", "score")
        assert legend_texts(top) == ["load", "probation: 600 rows, not scored",
                                     "score > 0.5", "labelled window"]
        assert legend_texts(bottom) == ["score", "threshold 0.5"]
        beside(figure, top)
        beside(figure, bottom)
        png(figure)
    unmarked = plot_surprise(data, padded)  # no probation: the scores are drawn as given
    assert (unmarked.axes[1].get_lines()[0].get_ydata()[:600] == 0).all()
    assert not unmarked.axes[0].patches
    png(unmarked)


def test_surprise_of_a_forecaster_on_a_given_axis_and_refusals(fitted, detected):
    data = cycle().iloc[:600]
    surprise = fitted.surprise()
    figure, axis = plt.subplots()
    plot_surprise(data, surprise, column="load", ax=axis)
    twin = [other for other in figure.axes if other is not axis][0]
    drawn = twin.get_lines()[0].get_ydata()
    expected = surprise["load"].to_numpy()
    assert np.isnan(expected[0]) and np.isnan(drawn[0])  # the first row has no forecast
    np.testing.assert_allclose(drawn, expected)
    assert axis.get_title() == "surprise of load" and axis.get_xlabel() == "ds"
    assert legend_texts(axis) == ["load", "score"]
    beside(figure, axis, twin)
    png(figure)
    stream, scored = detected
    with pytest.raises(ValueError, match="one score per row"):
        plot_surprise(stream, scored[:-1], probation=600)
    with pytest.raises(ValueError, match="probation must be an int from 0 to 900"):
        plot_surprise(stream, scored, probation=-1)
    with pytest.raises(ValueError, match=r"\(start, end\) pairs"):
        plot_surprise(stream, scored, probation=600, windows=[(1, 2, 3)])
    with pytest.raises(ValueError, match=r"choose one of \['load'\]"):
        plot_surprise(stream, scored, probation=600, column="nope")
    with pytest.raises(TypeError, match="scores must be a table or an array of numbers"):
        plot_surprise(stream, "high")
    with pytest.raises(ValueError, match="threshold must be a finite number"):
        plot_surprise(stream, scored, probation=600, threshold="high")
    plt.close("all")


def test_a_missing_matplotlib_gets_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match="needs matplotlib: pip install"):
        plot_surprise(cycle(), np.zeros(700))

"""Several series read and forecast together equal each series alone: the network's batched
methods, the state's concatenation, and the forecaster's predict, update and backtest on a
long table."""

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from titans_seq import TitansForecaster
from titans_seq.forecasting import long_memory
from titans_seq.forecasting.interface import concat_states, map_state, split_state
from titans_seq.forecasting.online import ErrorMemory, ErrorMemorySettings

from .test_forecaster import SMALL, hourly
from .test_interface import networks, series


def leaves(state):
    found = []
    map_state(state, lambda tensor: found.append(tensor) or tensor)
    return found


@pytest.mark.parametrize("mode, lane_rows", [
    ("stream", long_memory.LANE_ROWS), ("stream", 1), ("window", None)])
def test_series_read_and_forecast_together_equal_each_alone(mode, lane_rows, monkeypatch):
    if lane_rows is not None:  # 1: one series per call
        monkeypatch.setattr(long_memory, "LANE_ROWS", lane_rows)
    net = networks()[mode]
    items = [series(90, 0), series(90, 1), series(61, 2)]
    # two fresh streams that read the same rows (one batch), one that has read 20 rows
    streams = [net.open_stream(2), net.open_stream(2), net.read(net.open_stream(2), items[2], 20)]
    upto = [70, 70, 50]
    together = net.read_many(streams, items, upto)
    alone = [net.read(stream, item, rows) for stream, item, rows in zip(streams, items, upto)]
    for one, other in zip(together, alone):
        assert one.rows_read == other.rows_read
        for a, b in zip(leaves(one.state), leaves(other.state)):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    forecasts = net.forecast_many(together, items, upto)
    for forecast, stream, item, origin in zip(forecasts, alone, items, upto):
        torch.testing.assert_close(forecast, net.forecast_from(stream, item, origin),
                                   rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("learn", [True, False])
def test_error_memories_read_and_forecast_together_equal_each_alone(learn):
    net = ErrorMemory(networks()["stream"], ErrorMemorySettings(forgetting=0.99), learn=learn)
    items = [series(90, 0), series(90, 1), series(90, 3), series(61, 2)]
    streams = [net.read(net.open_stream(2), item, 30) for item in items]
    # 10 pairs complete in two series (written in step), 50 (one pass), 31 (origin by origin)
    upto = [40, 40, 80, 61]
    together = net.read_many(streams, items, upto)
    alone = [net.read(stream, item, rows) for stream, item, rows in zip(streams, items, upto)]
    for one, other, stream in zip(together, alone, streams):
        assert one.state.next_pair == other.state.next_pair > stream.state.next_pair
        torch.testing.assert_close(one.state.weights, other.state.weights, rtol=1e-9,
                                   atol=1e-12)
        assert learn == (not torch.equal(one.state.weights, stream.state.weights))
    forecasts = net.forecast_many(together, items, upto)
    for forecast, stream, item, origin in zip(forecasts, alone, items, upto):
        torch.testing.assert_close(forecast, net.forecast_from(stream, item, origin),
                                   rtol=1e-9, atol=1e-9)


def test_states_concatenate_and_split_back_exactly():
    net = networks()["stream"]
    first = net.read(net.open_stream(2), series(90, 0), 40).state
    second = net.read(net.open_stream(2), series(90, 1), 40).state
    joined = concat_states([first, second])
    assert joined.recent.shape[0] == 4  # 2 + 2 lanes
    for part, original in zip(split_state(joined, [2, 2]), (first, second)):
        assert all(torch.equal(a, b) for a, b in zip(leaves(part), leaves(original)))
    # a state at another place in its chunk (20 rows: 5 patches, chunk 2) cannot join
    other = net.read(net.open_stream(2), series(90, 2), 20).state
    with pytest.raises(ValueError, match="cannot share a batch"):
        concat_states([first, other])


@pytest.fixture(scope="module")
def panel():
    """Three series of a long table, two of one length and a shorter one."""
    frames = []
    for key, seed, rows in (("a", 0, 400), ("b", 1, 400), ("c", 2, 300)):
        frame = hourly(rows, seed)
        frames.append(pd.DataFrame({"unique_id": key, "ds": frame["date"], "y": frame["load"]}))
    long = pd.concat(frames, ignore_index=True)
    return long, TitansForecaster(**SMALL).fit(long)


def test_forecaster_predicts_and_backtests_the_panel_as_each_series_alone(panel):
    long, model = panel
    together = model.predict()
    backtest = model.backtest(long, n_windows=3).forecasts
    for key in ("a", "b", "c"):
        one = long[long["unique_id"] == key]
        alone = model.predict(one)
        np.testing.assert_allclose(together[together["unique_id"] == key]["y"], alone["y"],
                                   rtol=1e-5, atol=1e-5)
        mine = backtest[backtest["unique_id"] == key]
        np.testing.assert_allclose(mine["y"], model.backtest(one, n_windows=3).forecasts["y"],
                                   rtol=1e-5, atol=1e-5)


def test_update_of_several_series_equals_one_at_a_time(panel):
    long, model = panel
    later = []
    for key, seed, start in (("a", 5, 400), ("b", 6, 400)):
        frame = hourly(430, seed).iloc[start:]
        later.append(pd.DataFrame({"unique_id": key, "ds": frame["date"], "y": frame["load"]}))
    together = copy.deepcopy(model).update(pd.concat(later, ignore_index=True))
    one_by_one = copy.deepcopy(model)
    for part in later:
        one_by_one.update(part)
    np.testing.assert_allclose(together.predict()["y"], one_by_one.predict()["y"],
                               rtol=1e-5, atol=1e-5)
    assert not np.allclose(together.predict()["y"], model.predict()["y"])

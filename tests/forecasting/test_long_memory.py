"""The long-memory forecaster (``mode="stream"``): decoder-style training equals streaming,
no look-ahead, unbounded history, the linear path's start, frozen memory."""

import copy
import pickle

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import pytest
import torch

from datamodules import TimeSeriesDataModule
from datamodules.timeseries import LaneSegments, PreparedSeries
from titans_seq import ForecastingModule, TitansForecaster
from titans_seq.forecasting import LongMemoryForecastNet
from titans_seq.memory import frozen_memory
from titans_seq.training import quiet_lightning

from .test_forecaster import hourly

P, H, L, LL = 4, 5, 8, 12  # patch, horizon, lookback, linear lookback
SMALL = dict(horizon=6, lookback=12, linear_lookback=24, patch_len=4, dim=16, max_epochs=2,
             segment_tokens=8, head_hidden=16, random_state=0)


def tiny_net(covariates=0, static=0, memory=True, dtype=torch.float64):
    torch.manual_seed(0)
    net = LongMemoryForecastNet(H, lookback=L, linear_lookback=LL, patch_len=P,
                                n_covariates=covariates, n_static=static, head_hidden=16,
                                head_dropout=0.0, memory=memory, dim=16, depth=1, heads=2,
                                memory_heads=2, chunk_size=2).to(dtype).eval()
    for parameter in [*net.head[-1].parameters(), *net.linear.parameters()]:
        torch.nn.init.normal_(parameter, std=0.1)  # not the zero start: every path counts
    return net


def series_of(rows=160, channels=2, covariates=1, static=2, seed=0, missing=0.1):
    generator = torch.Generator().manual_seed(seed)
    # float32-representable values: the lane items are float32, the check is float64
    values = torch.randn(rows, channels, generator=generator).double()
    observed = torch.rand(rows, channels, generator=generator) > missing
    return PreparedSeries(values * observed, observed,
                          torch.randn(rows + H, covariates, generator=generator).double(),
                          torch.randn(static, generator=generator).double())


def training_pass(net, series, tokens=5, lanes=3, stop=None):
    """Every scored forecast of a decoder-style pass, keyed by (series, channel, origin)."""
    stops = [stop or s.values.shape[0] for s in series]
    dataset = LaneSegments(series, [(LL, n - H) for n in stops], stops, max(L, LL), H, P,
                           tokens, lanes)
    forecasts, state = {}, None
    with torch.no_grad():
        for item in dataset:
            item = {k: v.double() if v.is_floating_point() else v for k, v in item.items()}
            state = None if int(item["segment"]) == 0 else state
            forecast, state = net.segment(item["values"], item["observed"],
                                          item["covariates"], item["static"], tokens, state)
            for row, (index, channel) in enumerate(item["lane"].tolist()):
                for column, origin in enumerate(item["origin"].tolist()):
                    if index >= 0 and item["scored"][row, column]:
                        forecasts[index, channel, origin] = forecast[row, column]
    return forecasts, dataset


def streamed(net, series, origin, pieces=()):
    stream = net.open_stream(series.values.shape[1])
    for upto in (*pieces, origin):
        stream = net.read(stream, series, upto)
    return net.forecast_from(stream, series, origin)  # (H, C)


@pytest.mark.parametrize("covariates,static", [(0, 0), (1, 2)])
def test_training_pass_equals_streaming_window_by_window(covariates, static):
    net = tiny_net(covariates, static)
    series = [series_of(160, covariates=covariates, static=static),
              series_of(131, channels=2, covariates=covariates, static=static, seed=1)]
    forecasts, dataset = training_pass(net, series)
    assert len(forecasts) == dataset.scored == sum(2 * (n - H - LL + 1) for n in (160, 131))
    for index, origin in [(0, LL), (0, LL + 1), (0, 37), (0, 155), (1, 64), (1, 126)]:
        alone = streamed(net, series[index], origin)
        for channel in range(2):
            torch.testing.assert_close(alone[:, channel], forecasts[index, channel, origin],
                                       rtol=0, atol=1e-12)
    # reading in pieces (any cut, not only patch boundaries) is the same memory
    torch.testing.assert_close(streamed(net, series[0], 120, pieces=(13, 14, 15, 61, 90)),
                               streamed(net, series[0], 120), rtol=0, atol=1e-12)


def test_no_look_ahead_in_training_batches_and_streaming():
    net = tiny_net(1, 0)
    series = series_of(160, static=0)
    before, _ = training_pass(net, [series])
    origin = 77
    changed = PreparedSeries(series.values.clone(), series.observed, series.covariates.clone(),
                             series.static)
    changed.values[origin:] += 5.0
    changed.covariates[origin + H:] += 5.0  # covariates of rows past every horizon it reads
    after, _ = training_pass(net, [changed])
    for (index, channel, at), forecast in before.items():
        if at <= origin:
            torch.testing.assert_close(after[index, channel, at], forecast, rtol=0, atol=0)
    assert not torch.allclose(after[0, 0, origin + 1], before[0, 0, origin + 1])
    torch.testing.assert_close(streamed(net, changed, origin), streamed(net, series, origin),
                               rtol=0, atol=0)


def test_memory_reads_history_beyond_every_window():
    """A row far before both windows changes the forecast only through the memory."""
    series = series_of(200, covariates=0, static=0, missing=0.0)
    far = PreparedSeries(series.values.clone(), series.observed, series.covariates,
                         series.static)
    far.values[3] += 3.0  # 190 rows before the origin; the windows read the last 12
    with_memory, without = tiny_net(), tiny_net(memory=False)
    assert not torch.allclose(streamed(with_memory, far, 196), streamed(with_memory, series, 196))
    torch.testing.assert_close(streamed(without, far, 196), streamed(without, series, 196),
                               rtol=0, atol=0)


def test_frozen_memory_reads_without_writing():
    net = tiny_net(dtype=torch.float32)
    tokens = torch.randn(3, 10, 16)
    _, state = net.encoder(tokens)
    with frozen_memory(net):
        out_frozen, after = net.encoder(tokens, state)
    weights = lambda s: [w for w in s.blocks[0].memory.memory.weights]
    for before_w, after_w in zip(weights(state), weights(after)):
        torch.testing.assert_close(after_w, before_w, rtol=0, atol=0)
    _, written = net.encoder(tokens, state)
    assert any(not torch.allclose(a, b) for a, b in zip(weights(state), weights(written)))
    assert all(m.writes for m in net.modules() if hasattr(m, "writes"))  # restored


def test_linear_path_starts_at_the_ridge_solution():
    """Closed form: on a noiseless AR process the ridge path alone forecasts it."""
    net = tiny_net(memory=False, dtype=torch.float32)
    torch.nn.init.zeros_(net.head[-1].weight)
    torch.nn.init.zeros_(net.head[-1].bias)
    rng = np.random.default_rng(0)
    x = np.zeros(3000)
    for t in range(2, 3000):
        x[t] = 1.6 * x[t - 1] - 0.8 * x[t - 2] + rng.normal()
    values = torch.tensor(x, dtype=torch.float32)
    windows = values.unfold(0, LL, 1)[:-H]
    targets = values[LL:].unfold(0, H, 1)
    net.fit_linear(windows, targets)
    assert bool(net.linear_fitted)
    forecast = net.forecast(windows[None, -200:], torch.ones(1, 200, LL, dtype=torch.bool),
                            None, None)[0]
    error = ((forecast - targets[-200:]) ** 2).mean()
    naive = ((windows[-200:, -1:] - targets[-200:]) ** 2).mean()
    assert error < 0.6 * naive


def frame(rows=400, seed=0):
    return hourly(rows, seed)


@pytest.fixture(scope="module")
def fitted():
    return TitansForecaster(**SMALL).fit(frame())


def test_estimator_defaults_are_the_long_memory_mode():
    model = TitansForecaster(horizon=4)
    assert model.mode == "stream" and model.linear_lookback is None
    fitted = TitansForecaster(horizon=4, max_epochs=1, dim=16, random_state=0).fit(frame(300))
    assert isinstance(fitted.module_.net, LongMemoryForecastNet)
    assert fitted.linear_lookback_ == min(720, (int(300 * 0.9) - 4) // 2)
    assert bool(fitted.module_.net.linear_fitted)


def test_training_forecast_equals_predict_on_the_cut_history(fitted):
    """What the training pass emits at origin t is what predict(y=rows[:t]) returns from the
    network (the error memory, which learns only after fit, set aside)."""
    data = frame()
    fitted = copy.deepcopy(fitted)
    fitted.module_.error_memory = None  # the network's own forecasts
    module = fitted.module_
    prepared = fitted._prepared(fitted.series_, fitted.scaler_)
    context = module.context
    dataset = LaneSegments(prepared, [(context, 390)], [400], context, 6, 4, 8, 2)
    found = {}
    with torch.no_grad():
        for item in dataset:
            forecast = module._forecasts(item, "check").forecast
            for row, (_, channel) in enumerate(item["lane"].tolist()):
                for column, origin in enumerate(item["origin"].tolist()):
                    if item["scored"][row, column]:
                        found[channel, origin] = forecast[row, column].numpy()
    for origin in (context, 201, 333, 390):
        cut = fitted.predict(data.iloc[:origin])[["load", "temp"]].to_numpy()
        scaled = (cut - fitted.scaler_.mean[0]) / fitted.scaler_.std[0]
        for channel in range(2):
            np.testing.assert_allclose(scaled[:, channel], found[channel, origin], rtol=1e-4,
                                       atol=1e-5)


def test_update_in_pieces_equals_predict_on_everything(fitted):
    data = frame(460)
    first = TitansForecaster(**SMALL).fit(data.iloc[:400])
    for start, stop in ((400, 403), (403, 431), (431, 460)):
        first.update(data.iloc[start:stop])
    whole = first.predict(data)
    np.testing.assert_allclose(first.predict()[["load", "temp"]].to_numpy(),
                               whole[["load", "temp"]].to_numpy(), rtol=1e-5, atol=1e-6)
    restored = pickle.loads(pickle.dumps(first))
    pd.testing.assert_frame_equal(restored.predict(), first.predict())
    restored.update(frame(470).iloc[460:470])
    first.update(frame(470).iloc[460:470])
    pd.testing.assert_frame_equal(restored.predict(), first.predict())


def test_fixed_window_mode_is_kept(fitted):
    window = TitansForecaster(**{**SMALL, "mode": "window", "linear_lookback": None,
                                 "lookback": 12}).fit(frame())
    assert type(window.module_.net).__name__ == "TitansForecastNet"
    assert window.predict().shape == fitted.predict().shape


@pytest.mark.parametrize("name,value,message", [
    ("mode", "memory", "mode must be"),
    ("linear_lookback", -1, "linear_lookback"),
    ("linear_lookback", True, "linear_lookback"),
    ("linear_lookback", 2.5, "linear_lookback"),
    ("segment_tokens", 0, "segment_tokens"),
    ("head_hidden", -1, "head_hidden"),
    ("warmup", 12, "warmup is for mode='window'"),
    ("channel_mode", "mixing", "channel_mode='independent'"),
    ("lookback", 2, "at least patch_len"),
])
def test_bad_arguments_are_refused(name, value, message):
    model = TitansForecaster(**{**SMALL, name: value})
    with pytest.raises(ValueError, match=message):
        model.fit(frame())
    assert not hasattr(model, "module_")


def test_too_short_for_the_linear_lookback():
    with pytest.raises(ValueError, match="max\\(lookback, linear_lookback\\) \\+ horizon"):
        TitansForecaster(**{**SMALL, "linear_lookback": 500}).fit(frame())


def test_module_and_datamodule_refuse_bad_stream_options():
    with pytest.raises(ValueError, match="mode must be"):
        ForecastingModule(n_channels=2, mode="streaming")
    with pytest.raises(ValueError, match="segment_tokens"):
        ForecastingModule(n_channels=2, segment_tokens=0)
    with pytest.raises(ValueError, match="warmup is for"):
        TimeSeriesDataModule(frame(), lookback=12, warmup=12)
    with pytest.raises(ValueError, match="patch_len"):
        TimeSeriesDataModule(frame(), patch_len=0)
    data = TimeSeriesDataModule(frame(), lookback=12, horizon=6, linear_lookback=24,
                                patch_len=4, segment_tokens=8)
    module = ForecastingModule(lookback=12, horizon=6, linear_lookback=48, patch_len=4,
                               segment_tokens=8, dim=16, depth=1)
    with quiet_lightning(), pytest.raises(ValueError, match="linear_lookback is 24"):
        pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False,
                   enable_progress_bar=False, enable_model_summary=False).fit(module, data)


def test_lightning_training_scores_every_protocol_window():
    data = TimeSeriesDataModule(frame(600), lookback=12, horizon=6, linear_lookback=24,
                                patch_len=4, segment_tokens=8, split="borders",
                                borders=[400, 500, 600], batch_size=1)
    data.setup("fit")
    test = data.datasets["test"]
    assert test.scored == (600 - 500 - 6 + 1) * 2  # every origin of the test part, stride 1
    assert len(data.datasets["train"]) == 2 * data.datasets["train"].segments  # 1 lane a batch
    module = ForecastingModule(lookback=12, horizon=6, linear_lookback=24, patch_len=4,
                               segment_tokens=8, dim=16, depth=1, head_hidden=16)
    with quiet_lightning():
        trainer = pl.Trainer(max_epochs=2, logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False)
        trainer.fit(module, data)
        scores = trainer.test(module, data, verbose=False)[0]
        assert bool(module.net.linear_fitted) and np.isfinite(scores["test_mse"])
        # training on (as a resumed run does) keeps the linear path: no second closed form
        with torch.no_grad():
            module.net.linear.weight.add_(0.01)
        linear = module.net.linear.weight.detach().clone()
        pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False,
                   enable_progress_bar=False, enable_model_summary=False).fit(module, data)
    torch.testing.assert_close(module.net.linear.weight, linear)
    forecasts = trainer.predict(module, data)
    assert len(forecasts) == 1 and forecasts[0].shape == (1, 6, 2)


def test_lanes_are_shared_between_ranks():
    series = [series_of(100, channels=3), series_of(80, channels=3, seed=1)]
    shards = [LaneSegments(series, [(12, 90), (12, 70)], [100, 80], 12, 5, 4, 4, 2,
                           shuffle=True, seed=3, rank=rank, world_size=2) for rank in (0, 1)]
    lanes = [{tuple(lane) for item in shard for lane in item["lane"].tolist() if lane[0] >= 0}
             for shard in shards]
    assert len(shards[0]) == len(shards[1]) > 0  # DDP: every rank takes the same steps
    assert lanes[0].isdisjoint(lanes[1])
    assert lanes[0] | lanes[1] == {(i, c) for i in range(2) for c in range(3)}

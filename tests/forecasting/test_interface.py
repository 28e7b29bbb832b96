"""One layout, one config, one network interface: the context rule's home, the settings that
travel as one object, and the two networks behind the same methods."""

import copy

import numpy as np
import pytest
import torch

from datamodules import TimeSeriesDataModule
from datamodules.timeseries import ForecastLayout, PreparedSeries
from titans_seq import EncoderConfig, ForecastConfig, ForecastingModule, TitansEncoder
from titans_seq import TitansForecaster
from titans_seq.forecasting import (ForecastNetwork, ForecastStream, LongMemoryForecastNet,
                                    TitansForecastNet)

from .test_forecaster import hourly

H = 5


def networks():
    """Both networks, small, in float64, with every output path non-zero."""
    torch.manual_seed(0)
    encoder = EncoderConfig(dim=16, depth=1, heads=2, memory_heads=2, chunk_size=2)
    stream = LongMemoryForecastNet(H, lookback=8, linear_lookback=12, patch_len=4,
                                   n_covariates=1, head_hidden=16, head_dropout=0.0,
                                   encoder=encoder).double().eval()
    for parameter in [*stream.head[-1].parameters(), *stream.linear.parameters()]:
        torch.nn.init.normal_(parameter, std=0.1)  # not the zero start: every path counts
    window = TitansForecastNet(2, 8, H, patch_len=4, n_covariates=1, warmup=8,
                               encoder=encoder).double().eval()
    return {"stream": stream, "window": window}


def series(rows=90, seed=0):
    generator = torch.Generator().manual_seed(seed)
    values = torch.randn(rows, 2, generator=generator).double()
    observed = torch.rand(rows, 2, generator=generator) > 0.1
    return PreparedSeries(values * observed, observed,
                          torch.randn(rows + H, 1, generator=generator).double(),
                          torch.zeros(0).double())


@pytest.mark.parametrize("mode", ["stream", "window"])
def test_both_networks_are_the_interface_with_the_layouts_rule(mode):
    net = networks()[mode]
    assert isinstance(net, ForecastNetwork) and net.layout.mode == mode
    assert (net.context, net.first_origin) == {"stream": (12, 1), "window": (16, 8)}[mode]


@pytest.mark.parametrize("mode", ["stream", "window"])
def test_reading_gives_a_new_stream_and_every_origin_equals_streaming(mode):
    net, data = networks()[mode], series()
    start = net.open_stream(2)
    kept = copy.deepcopy(start)
    stream = net.read(start, data, 40)
    assert isinstance(stream, ForecastStream) and stream is not start
    assert stream.rows_read > 0 and start.rows_read == 0  # the old stream is as it was
    torch.testing.assert_close(net.forecast_from(net.read(start, data, 40), data, 40),
                               net.forecast_from(stream, data, 40), rtol=0, atol=0)
    assert kept.rows_read == start.rows_read
    first = net.first_origin + 7
    every = net.origin_forecasts(data, first, 60)  # (O, H, C)
    assert every.shape == (60 - first, H, 2)
    for origin in (first, 33, 59):
        alone = net.forecast_from(net.read(net.open_stream(2), data, origin), data, origin)
        torch.testing.assert_close(every[origin - first], alone, rtol=1e-10, atol=1e-10)


def test_the_layout_is_the_one_home_of_the_context_rule():
    stream = ForecastLayout("stream", lookback=96, linear_lookback=720)
    window = ForecastLayout("window", lookback=96, warmup=192)
    assert (stream.context, stream.first_origin) == (720, 1)
    assert (window.context, window.first_origin) == (288, 96)
    assert stream.context_rule == "max(lookback, linear_lookback)"
    assert window.context_rule == "lookback + warmup"
    # the settings that matter for the mode, and only those, must agree
    assert stream.mismatch(ForecastLayout("stream", lookback=96, linear_lookback=336)) == \
        ("linear_lookback", 720, 336)
    assert window.mismatch(ForecastLayout("window", lookback=96, warmup=192,
                                          linear_lookback=0)) is None
    for options, words in ((dict(mode="stream", warmup=96), "warmup is for mode='window'"),
                           (dict(mode="window", lookback=96, warmup=50), "multiple of lookback"),
                           (dict(lookback=8, patch_len=16), "at least patch_len"),
                           (dict(mode="streams"), "mode must be")):
        with pytest.raises(ValueError, match=words):
            ForecastLayout(**options)


def test_the_estimator_defaults_are_the_configs():
    """One set of defaults: the estimator's parameters map onto ForecastConfig()'s."""
    assert TitansForecaster().config() == ForecastConfig()
    assert ForecastingModule(n_channels=1).config == ForecastConfig()


def test_the_config_travels_as_plain_values_and_takes_flat_settings():
    config = ForecastConfig().with_(horizon=48, dim=32, lr=3e-3, loss="quantile")
    assert (config.layout.horizon, config.encoder.dim, config.lr) == (48, 32, 3e-3)
    assert config.quantile_levels == [0.1, 0.5, 0.9]
    plain = config.to_dict()
    assert plain["layout"]["horizon"] == 48 and plain["encoder"]["dim"] == 32
    assert ForecastConfig.coerce(plain) == config
    with pytest.raises(TypeError, match="'dims' is not a forecasting setting"):
        config.with_(dims=32)
    with pytest.raises(TypeError, match="unknown field"):
        ForecastConfig.coerce({**plain, "extra": 1})
    with pytest.raises(ValueError, match="channel_mode='independent'"):
        config.with_(channel_mode="mixing")  # the long-memory network reads lanes
    with pytest.raises(ValueError, match="multiple of patch_len"):
        config.with_(mode="window", lookback=20)
    module = ForecastingModule(config, n_channels=3)
    assert isinstance(module.net, LongMemoryForecastNet) and module.hparams.config == plain
    window = ForecastingModule(n_channels=3, mode="window", linear_lookback=0)
    assert isinstance(window.net, TitansForecastNet)


def test_an_encoder_is_its_config():
    torch.manual_seed(0)
    short = TitansEncoder("mac", dim=16, heads=2, segment_len=8)
    torch.manual_seed(0)
    whole = TitansEncoder(EncoderConfig(variant="mac", dim=16, heads=2, segment_len=8))
    assert short.config == whole.config
    for a, b in zip(short.state_dict().values(), whole.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(TypeError, match="unknown field"):
        TitansEncoder(dims=16)
    with pytest.raises(ValueError, match="memory_depth"):
        EncoderConfig(memory_depth=0)  # checked before any layer is built


def test_a_prepared_series_moves_whole():
    moved = series().to(torch.device("meta"))
    assert {t.device.type for t in (moved.values, moved.observed, moved.covariates,
                                    moved.static)} == {"meta"}


def test_the_estimator_prepares_data_as_the_datamodule_does():
    frame = hourly(300)
    model = TitansForecaster(horizon=6, lookback=12, patch_len=4, dim=16, max_epochs=1,
                             random_state=0, calendar=True).fit(frame)
    data = TimeSeriesDataModule(frame, horizon=6, lookback=12, patch_len=4,
                                linear_lookback=model.linear_lookback_, split="fractions",
                                val_fraction=0.1, test_fraction=0.0, calendar=True)
    data.setup("fit")
    np.testing.assert_array_equal(model.scaler_.mean, data.scaler.mean)
    np.testing.assert_array_equal(model.scaler_.std, data.scaler.std)
    ours = model._prepared(model.series_, model.scaler_)[0]
    torch.testing.assert_close(ours.values, data.prepared[0].values, rtol=0, atol=0)
    torch.testing.assert_close(ours.covariates, data.prepared[0].covariates, rtol=0, atol=0)
    assert data.layout == model.module_.config.layout


def error_memory(mode):
    from titans_seq.forecasting.online import ErrorMemory, ErrorMemorySettings

    return ErrorMemory(networks()[mode], ErrorMemorySettings(forgetting=0.99))


@pytest.mark.parametrize("mode", ["stream", "window"])
def test_the_error_memory_reads_in_any_pieces_and_every_origin_equals_streaming(mode):
    net, data = error_memory(mode), series(200)
    whole = net.read(net.open_stream(2), data, 150)
    pieces = net.open_stream(2)
    for upto in (20, 21, 40, 41, 130, 131, 150):  # few and many pairs a read
        pieces = net.read(pieces, data, upto)
    torch.testing.assert_close(pieces.state.weights, whole.state.weights, rtol=1e-9, atol=1e-9)
    assert torch.count_nonzero(whole.state.weights) > 0  # it learned something
    every = net.origin_forecasts(data, 60, 150)
    for origin in (60, 101, 149):
        alone = net.forecast_from(net.read(net.open_stream(2), data, origin), data, origin)
        torch.testing.assert_close(every[origin - 60], alone, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("mode", ["stream", "window"])
def test_the_error_memory_learns_nothing_before_a_pairs_future_is_complete(mode):
    """Leak-free: rows at or after an origin change no forecast at or before it, and no
    learned state, whatever the pieces they are read in."""
    net, data = error_memory(mode), series(200)
    origin = 120
    changed = PreparedSeries(data.values.clone(), data.observed, data.covariates.clone(),
                             data.static)
    changed.values[origin:] += 5.0
    changed.covariates[origin + H:] += 5.0
    for pieces in ((origin,), (37, 90, origin)):
        streams = []
        for values in (data, changed):
            stream = net.open_stream(2)
            for upto in pieces:
                stream = net.read(stream, values, upto)
            streams.append(stream)
        torch.testing.assert_close(streams[0].state.weights, streams[1].state.weights,
                                   rtol=0, atol=0)
        torch.testing.assert_close(net.forecast_from(streams[0], data, origin),
                                   net.forecast_from(streams[1], changed, origin), rtol=0, atol=0)
    later = net.read(net.open_stream(2), changed, origin + H + 1)
    assert not torch.equal(later.state.weights,
                           net.read(net.open_stream(2), data, origin + H + 1).state.weights)

"""Online gradient descent on the Titans network (the "GD" row of the online-forecasting
papers), for ``benchmarks/online.py``: the fitted long-memory network keeps training, one
optimizer step per complete pair, as the rows arrive.

At each origin ``t`` (every row, in order): the pair of origin ``s = t − H`` has just been
completed, so the network takes one Adam step on its loss (the forecast at ``s`` recomputed with
gradients: the encoder re-reads the last ``memory_tokens`` patches before ``s`` from the memory
state it had there, and the head and the linear path read them); then the memory reads what it
may of the rows before ``t`` with the updated weights, and the network forecasts from ``t``.
Every parameter learns (the linear path too); nothing is learned from a pair before its future
is complete (leak-free), and the memory's state carries on from what it has read (it is not
re-read from the first row after each step). The learning rate is chosen on the validation
origins by the same online pass.
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch

from titans_seq.forecasting.interface import map_state

RATES = (1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 1e-3)


def online_gd(network, series, first_pair: int, first: int, stop: int, lr: float
              ) -> tuple[np.ndarray, float]:
    """The forecasts ``(O, H, C)`` at origins ``[first, stop)`` of ``network`` (a fitted
    :class:`~titans_seq.forecasting.LongMemoryForecastNet`, copied) learning by one Adam step
    on every pair from origin ``first_pair`` on, and the milliseconds each row took."""
    net = copy.deepcopy(network)
    net.eval()  # no dropout: the forecasts are the model's, as at prediction time
    net.requires_grad_(True)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    patch, tokens, horizon = net.patch_len, net.memory_tokens, net.horizon
    channels = series.values.shape[1]
    start = first_pair - first_pair % patch - tokens * patch  # the oldest state a step reads
    stream = net.open_stream(channels)
    if start > 0:
        stream = net.read(stream, series, start)
    states = {stream.rows_read: stream.state}  # the memory's state at each patch border
    forecasts = []
    begin = time.perf_counter()
    for origin in range(max(start, 0), stop):
        pair = origin - horizon
        if pair >= first_pair:
            _step(net, optimizer, series, pair, states)
        stream = net.read(stream, series, origin)
        states.setdefault(stream.rows_read, stream.state)
        for old in [row for row in states if row < origin - horizon - (tokens + 2) * patch]:
            del states[old]
        if origin >= first:
            forecasts.append(net.forecast_from(stream, series, origin).numpy())
    milliseconds = 1000 * (time.perf_counter() - begin) / max(stop - max(start, 0), 1)
    return np.stack(forecasts), milliseconds


def _step(net, optimizer, series, pair: int, states: dict) -> None:
    """One Adam step on the loss of the forecast at ``pair``, its memory outputs recomputed
    with gradients from the state ``memory_tokens`` patches earlier."""
    patch, tokens = net.patch_len, net.memory_tokens
    border = pair - pair % patch
    low = max(border - tokens * patch, 0)
    if border == 0:  # nothing read yet: the initial outputs
        recent = net.initial_state(series.values.shape[1]).recent.flatten(1)
    else:
        # states were made under inference mode: copies that autograd may read
        state = map_state(states[low], lambda tensor: tensor.clone())
        outputs, _ = net.read_rows(series, low, border, state)
        recent = outputs[:, -1]  # (C, K·dim): after the last whole patch before the pair
    forecast = net.forecast_at(series, pair, recent)  # (H, C)
    target = series.values[pair:pair + net.horizon]
    observed = series.observed[pair:pair + net.horizon].to(forecast.dtype)
    loss = (((forecast - target) ** 2) * observed).sum() / observed.sum().clamp_min(1.0)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def gd_row(network, series, train_end: int, val_end: int, stop: int
           ) -> tuple[np.ndarray, dict]:
    """The test forecasts of online GD with its learning rate chosen on the validation
    origins (learning from the first pair after the training rows in both passes), and its
    settings and timings."""
    truth = np.lib.stride_tricks.sliding_window_view(series.values.numpy(), network.horizon, 0)
    chosen, best = None, float("inf")
    for lr in RATES:
        forecast, _ = online_gd(network, series, train_end, train_end, val_end, lr)
        error = float(np.mean((forecast - truth[train_end:val_end].transpose(0, 2, 1)) ** 2))
        if error < best:
            chosen, best = lr, error
    forecast, milliseconds = online_gd(network, series, train_end, val_end, stop, chosen)
    return forecast, {"lr": chosen, "ms_per_row": milliseconds}

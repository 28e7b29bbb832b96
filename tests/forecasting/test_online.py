"""The forecaster learning online from the realised errors of its forecasts (the error memory):
leak-free through `update` in pieces, pieces equal one call, pickle mid-stream, the switch that
freezes it, and what it learns after a regime switch."""

import copy
import pickle

import numpy as np
import pytest
import torch

from titans_seq import TitansForecaster

PERIOD, H, L = 32, 8, 16


def regimes(count, length, generator):
    """Periodic waveforms, a new one every ``length`` rows, with a little noise."""
    k = np.arange(1, 5)
    t = np.arange(PERIOD)[:, None]
    parts = []
    for _ in range(count):
        a, b = generator.normal(size=4) / k, generator.normal(size=4) / k
        wave = (a * np.sin(2 * np.pi * k * t / PERIOD) + b * np.cos(2 * np.pi * k * t / PERIOD))
        parts.append(np.tile(wave.sum(1), length // PERIOD))
    return np.concatenate(parts) + 0.05 * generator.normal(size=count * length)


@pytest.fixture(scope="module")
def fitted():
    model = TitansForecaster(horizon=H, lookback=L, linear_lookback=L, patch_len=4,
                             chunk_size=2, dim=16, dropout=0.0, lr=3e-3, max_epochs=2,
                             random_state=0)
    return model.fit(regimes(12, 256, np.random.default_rng(0)))


def new_regime(rows=256, seed=1):
    return regimes(1, rows, np.random.default_rng(seed))


def memories(model):
    """The error memory's weights and the encoder memory's, of the first series."""
    state = model.streams_[0].state
    encoder = state.lead.state.encoder.blocks[0].memory.memory.weights
    return [state.weights.clone(), *(w.clone() for w in encoder)]


def test_the_error_memory_is_on_and_learns_from_update(fitted):
    assert fitted.error_memory_ is not None
    model = copy.deepcopy(fitted).update(new_regime()[:64])
    assert not torch.equal(memories(model)[0], memories(fitted)[0])


def test_update_in_pieces_equals_one_call_and_pickles_mid_stream(fitted):
    new = new_regime()
    whole = copy.deepcopy(fitted).update(new[:150])
    pieces = copy.deepcopy(fitted)
    for start, stop in ((0, 1), (1, 9), (9, 100), (100, 101), (101, 150)):
        pieces.update(new[start:stop])
    np.testing.assert_allclose(pieces.predict(), whole.predict(), rtol=1e-5, atol=1e-5)
    # equal to rounding: a long read takes the network's forecasts in one pass (float32), a
    # short one origin by origin, and the memory's weights carry that rounding (the first
    # writes, with the keys' precision still at its wide prior, amplify it to ~0.3 %)
    for mine, theirs in zip(memories(pieces), memories(whole)):
        torch.testing.assert_close(mine, theirs, rtol=1e-2, atol=1e-3)
    restored = pickle.loads(pickle.dumps(pieces))
    np.testing.assert_array_equal(restored.predict(), pieces.predict())
    restored.update(new[150:170]), pieces.update(new[150:170])
    np.testing.assert_array_equal(restored.predict(), pieces.predict())


def test_rows_at_or_after_an_origin_change_nothing_before_it(fitted):
    """Leak-free: the forecast at an origin, and what was learned by then, do not depend on
    the rows from that origin on, whatever pieces they come in."""
    new, origin = new_regime(), 120
    changed = new.copy()
    changed[origin:] += 3.0
    for cuts in ((40, origin), (7, 90, origin), (origin,)):
        results = []
        for values in (new, changed):
            model, start = copy.deepcopy(fitted), 0
            for cut in cuts:
                model.update(values[start:cut])
                start = cut
            results.append((model.predict(), memories(model)))
        np.testing.assert_array_equal(results[0][0], results[1][0])
        for a, b in zip(results[0][1], results[1][1]):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    # and the rows after it do count once they are read
    model = copy.deepcopy(fitted).update(changed[:origin + H + 1])
    assert not torch.equal(memories(model)[0], results[0][1][0])


def test_learn_false_reads_without_learning(fitted):
    new = new_regime()
    frozen = copy.deepcopy(fitted).update(new[:100], learn=False)
    for after, before in zip(memories(frozen), memories(fitted)):
        torch.testing.assert_close(after, before, rtol=0, atol=0)
    learning = copy.deepcopy(fitted).update(new[:100])
    assert not np.allclose(frozen.predict(), learning.predict())
    with pytest.raises(ValueError, match="learn must be True or False"):
        copy.deepcopy(fitted).update(new[:5], learn="no")


def test_after_a_regime_switch_learning_beats_freezing(fitted):
    """A waveform the training rows never showed: the forecaster that learns from its errors
    forecasts it far better than the same fit frozen at the switch."""
    new = new_regime(320)
    learning, frozen = copy.deepcopy(fitted), copy.deepcopy(fitted)
    errors = {"learning": [], "frozen": []}
    for origin in range(8, 320 - H + 1, 8):
        learning.update(new[origin - 8:origin])
        frozen.update(new[origin - 8:origin], learn=False)
        if origin >= 160:  # after five periods of the new waveform
            truth = new[origin:origin + H]
            errors["learning"].append(np.mean((learning.predict() - truth) ** 2))
            errors["frozen"].append(np.mean((frozen.predict() - truth) ** 2))
    assert np.mean(errors["learning"]) < 0.6 * np.mean(errors["frozen"])


def autoregressive(phi, rows, start, generator):
    """``y_t = phi · y_{t−1} + e_t`` from ``start``, with unit noise ``e``: the series and
    its noise (the error of the forecast that knows the mapping)."""
    noise = generator.normal(size=rows)
    values, last = np.empty(rows), start
    for index, shock in enumerate(noise):
        last = phi * last + shock
        values[index] = last
    return values, noise


def test_after_a_switch_the_default_recovers_to_the_new_regimes_oracle():
    """Fitted on ``y_t = 0.8 y_{t−1} + e_t`` only, then fed ``y_t = −0.8 y_{t−1} + e_t``: the
    frozen forecaster stays several times worse than the oracle (the new mapping, whose error
    is the noise), and the default, learning from its errors, is within 10 % of the oracle
    within 8,000 rows of the switch (it forgets the old regime at the rate fit chose on a
    validation part of the old regime: about 3,300 rows a half-life)."""
    generator = np.random.default_rng(0)
    old, _ = autoregressive(0.8, 2000, 0.0, generator)
    new, noise = autoregressive(-0.8, 8400, old[-1], generator)
    model = TitansForecaster(horizon=1, lookback=16, linear_lookback=16, patch_len=4,
                             chunk_size=2, dim=16, dropout=0.0, max_epochs=2,
                             val_fraction=0.2, random_state=0).fit(old)
    learning, frozen = copy.deepcopy(model), copy.deepcopy(model)
    learning.update(new[:8000])
    frozen.update(new[:8000], learn=False)
    errors = {"learning": [], "frozen": []}
    for row in range(8000, 8400):  # one step ahead, row by row
        for name, forecaster in (("learning", learning), ("frozen", frozen)):
            errors[name].append(float(forecaster.predict()[0] - new[row]) ** 2)
            forecaster.update(new[row:row + 1], learn=name == "learning")
    oracle = np.mean(noise[8000:8400] ** 2)
    assert np.mean(errors["learning"]) < 1.10 * oracle
    assert np.mean(errors["frozen"]) > 3 * oracle

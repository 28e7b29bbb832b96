"""The chunked memory op against the per-token reference and against the paper's recurrence."""

from __future__ import annotations

import pytest
import torch

from titans_seq.memory import MemoryState, memory_scan, memory_scan_reference

from .helpers import assert_states_close, run_in_pieces, scan_inputs

TOLERANCE = dict(rtol=1e-9, atol=1e-10)


@pytest.fixture(autouse=True, params=["native", "torch"])
def kernel(request, monkeypatch):
    """Every test here runs on both paths of the sequential pass: the native kernel (which must
    build: ``native`` refuses to fall back) and the pure-PyTorch one."""
    monkeypatch.setenv("TITANS_SEQ_KERNEL", request.param)
    return request.param


@pytest.mark.parametrize("chunk_size", [1, 3, 8, 16])
@pytest.mark.parametrize("hidden", [(), (6,), (6, 7)], ids=["linear", "depth2", "depth3"])
@pytest.mark.parametrize("length", [5, 32, 37], ids=["shorter", "divisible", "ragged"])
def test_chunked_equals_reference(chunk_size, hidden, length):
    inputs = scan_inputs(length=length, hidden=hidden)
    y, state = memory_scan(*inputs, chunk_size=chunk_size)
    y_ref, state_ref = memory_scan_reference(*inputs, chunk_size=chunk_size)
    torch.testing.assert_close(y, y_ref, **TOLERANCE)
    assert_states_close(state, state_ref, **TOLERANCE)


def test_linear_memory_matches_hand_written_recurrence():
    """An oracle independent of both paths: linear memory, gradient 2 kᵀ(kW − v) by hand."""
    chunk_size = 4
    q, k, v, theta, eta, alpha, weights = scan_inputs(batch=1, heads=1, length=11, hidden=())
    weight = weights[0][0].clone()
    momentum = torch.zeros_like(weight)
    chunk_start = weight.clone()
    expected = []
    for t in range(11):
        if t % chunk_size == 0:
            chunk_start = weight.clone()
        key, value = k[0, 0, t], v[0, 0, t]
        gradient = 2 * torch.outer(key, key @ chunk_start - value)
        momentum = eta[0, 0, t] * momentum - theta[0, 0, t] * gradient
        weight = (1 - alpha[0, 0, t]) * weight + momentum
        expected.append(q[0, 0, t] @ weight)
    y, state = memory_scan(q, k, v, theta, eta, alpha, weights, chunk_size=chunk_size)
    torch.testing.assert_close(y[0, 0], torch.stack(expected), **TOLERANCE)
    torch.testing.assert_close(state.weights[0][0, 0], weight, **TOLERANCE)
    torch.testing.assert_close(state.momentum[0][0, 0], momentum, **TOLERANCE)


@pytest.mark.parametrize("chunk_size", [1, 4, 16])
@pytest.mark.parametrize("cuts", [[5], [1, 2, 3, 17, 30], list(range(1, 37))],
                         ids=["two", "uneven", "token-by-token"])
def test_split_equals_whole(chunk_size, cuts):
    inputs = scan_inputs(length=37)
    y, state = memory_scan(*inputs, chunk_size=chunk_size)
    y_split, state_split = run_in_pieces(memory_scan, inputs, cuts, chunk_size)
    torch.testing.assert_close(y_split, y, **TOLERANCE)
    assert_states_close(state_split, state, **TOLERANCE)


def test_reference_split_equals_fast_whole():
    inputs = scan_inputs(length=20)
    y, state = memory_scan(*inputs, chunk_size=6)
    y_split, state_split = run_in_pieces(memory_scan_reference, inputs, [7, 13], 6)
    torch.testing.assert_close(y_split, y, **TOLERANCE)
    assert_states_close(state_split, state, **TOLERANCE)


@pytest.mark.parametrize("chunk_size", [1, 4, 16])
def test_trailing_padding_equals_unpadded_rows(chunk_size):
    lengths = [37, 20, 1]
    q, k, v, theta, eta, alpha, weights = scan_inputs(batch=3, length=37)
    mask = torch.arange(37)[None, :] < torch.tensor(lengths)[:, None]
    # Start from a state whose rows sit at different positions inside their chunks.
    prefix_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0]]).bool()
    prefix = scan_inputs(batch=3, length=5, seed=1)
    _, start = memory_scan(*prefix, chunk_size=chunk_size, mask=prefix_mask)
    assert start.tokens_seen.tolist() == [5, 2, 0]

    y, state = memory_scan(q, k, v, theta, eta, alpha, weights, chunk_size=chunk_size,
                           state=start, mask=mask)
    y_ref, state_ref = memory_scan_reference(q, k, v, theta, eta, alpha, weights,
                                             chunk_size=chunk_size, state=start, mask=mask)
    torch.testing.assert_close(y, y_ref, **TOLERANCE)
    assert_states_close(state, state_ref, **TOLERANCE)
    for row, length in enumerate(lengths):
        alone = [t[row:row + 1, :, :length] for t in (q, k, v, theta, eta, alpha)]
        y_row, state_row = memory_scan(*alone, weights, chunk_size=chunk_size,
                                       state=start.select([row]))
        torch.testing.assert_close(y[row:row + 1, :, :length], y_row, **TOLERANCE)
        assert torch.count_nonzero(y[row, :, length:]) == 0
        assert_states_close(state.select([row]), state_row, **TOLERANCE)


def test_fully_padded_row_keeps_its_state():
    inputs = scan_inputs(batch=2, length=9)
    _, start = memory_scan(*scan_inputs(batch=2, length=3, seed=2), chunk_size=4)
    mask = torch.tensor([[True] * 9, [False] * 9])
    _, state = memory_scan(*inputs, chunk_size=4, state=start, mask=mask)
    assert_states_close(state.select([1]), start.select([1]), rtol=0, atol=0)


@pytest.mark.parametrize("hidden", [(), (6,)], ids=["linear", "depth2"])
def test_gradients_match_reference(hidden):
    """The outer loop trains q, k, v, the gates and M_0 through the op: same gradients."""
    def gradients(scan, seed_cut):
        inputs = scan_inputs(length=13, hidden=hidden, requires_grad=True)
        *tensors, weights = inputs
        # Start mid-chunk, from a state that itself depends on the initial weights.
        prefix = scan_inputs(length=seed_cut, hidden=hidden, seed=3)[:-1]
        _, start = scan(*prefix, weights, chunk_size=5)
        y, state = scan(*inputs, chunk_size=5, state=start)
        loss = (y ** 2).sum() + sum((w ** 2).sum() for w in state.weights) \
            + sum(s.sum() for s in state.momentum)
        leaves = [*tensors, *weights]
        return torch.autograd.grad(loss, leaves, allow_unused=True)

    for fast, reference in zip(gradients(memory_scan, 2), gradients(memory_scan_reference, 2)):
        assert fast is not None and reference is not None
        torch.testing.assert_close(fast, reference, **TOLERANCE)


def test_gradcheck_chunked_path():
    q, k, v, theta, eta, alpha, weights = scan_inputs(batch=1, heads=1, length=6, key_dim=2,
                                                      value_dim=2, hidden=(3,))

    def function(q, k, v, theta, eta, alpha, w1, w2):
        return memory_scan(q, k, v, theta, eta, alpha, [w1, w2], chunk_size=4)[0]

    inputs = [t.clone().requires_grad_() for t in (q, k, v, theta, eta, alpha, *weights)]
    assert torch.autograd.gradcheck(function, inputs)


def test_exact_zero_and_one_gates():
    """η = 0 (no momentum) and α = 1 (wipe the memory) are exact, with finite gradients."""
    q, k, v, theta, eta, alpha, weights = scan_inputs(length=12)
    eta = torch.zeros_like(eta)
    alpha = alpha.clone()
    alpha[:, :, 5] = 1.0
    y, state = memory_scan(q, k, v, theta, eta, alpha, weights, chunk_size=4)
    y_ref, state_ref = memory_scan_reference(q, k, v, theta, eta, alpha, weights, chunk_size=4)
    torch.testing.assert_close(y, y_ref, **TOLERANCE)
    assert_states_close(state, state_ref, **TOLERANCE)

    leaves = [t.clone().requires_grad_() for t in (theta, eta, alpha)]
    y, _ = memory_scan(q, k, v, *leaves, weights, chunk_size=4)
    grads = torch.autograd.grad(y.sum(), leaves)
    assert all(torch.isfinite(g).all() for g in grads)


def test_float32_close_to_float64():
    inputs64 = scan_inputs(length=40)
    inputs32 = [t.float() for t in inputs64[:-1]] + [[w.float() for w in inputs64[-1]]]
    y64, _ = memory_scan(*inputs64, chunk_size=8)
    y32, state32 = memory_scan(*inputs32, chunk_size=8)
    assert y32.dtype == torch.float32 and state32.weights[0].dtype == torch.float32
    torch.testing.assert_close(y32.double(), y64, rtol=1e-4, atol=1e-5)


def test_bf16_autocast_keeps_the_state_in_float32():
    inputs = [t.float() for t in scan_inputs(length=24)[:-1]]
    weights = [w.float() for w in scan_inputs(length=24)[-1]]
    y32, _ = memory_scan(*inputs, weights, chunk_size=8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16_inputs = [t.bfloat16() for t in inputs]
        y, state = memory_scan(*bf16_inputs, weights, chunk_size=8)
    assert all(w.dtype == torch.float32 for w in state.weights + state.momentum)
    torch.testing.assert_close(y.float(), y32, rtol=0.05, atol=0.05)


def test_state_helpers():
    _, state = memory_scan(*scan_inputs(length=10, requires_grad=True), chunk_size=4)
    detached = state.detach()
    assert all(not w.requires_grad for w in detached.weights)
    assert state.weights[0].requires_grad
    assert detached.select([1]).batch_size == 1
    assert isinstance(detached.to(torch.float32).weights[0], torch.Tensor)
    assert detached.to(torch.float32).tokens_seen.dtype == torch.long


@pytest.mark.parametrize("change, error, message", [
    (lambda a: a.update(q=a["q"][..., :3]), ValueError, "same shape"),
    (lambda a: a.update(v=a["v"][:, :, :4]), ValueError, "v must be"),
    (lambda a: a.update(theta=a["theta"][:, :1]), ValueError, "theta must be"),
    (lambda a: a.update(k=a["k"].long()), TypeError, "floating-point"),
    (lambda a: a.update(q=a["q"].tolist()), TypeError, "torch.Tensor"),
    (lambda a: a["v"].__setitem__((0, 0, 3, 0), float("nan")), ValueError, "NaN"),
    (lambda a: a["k"].__setitem__((0, 0, 3, 0), float("inf")), ValueError, "infinite"),
    (lambda a: a.update(theta=-a["theta"] - 0.1), ValueError, "theta"),
    (lambda a: a.update(eta=a["eta"] + 1.5), ValueError, r"eta must lie in \[0, 1\]"),
    (lambda a: a.update(chunk_size=0), ValueError, "chunk_size"),
    (lambda a: a.update(chunk_size=2.0), TypeError, "chunk_size"),
    (lambda a: a.update(weights=[]), TypeError, "non-empty"),
    (lambda a: a.update(weights=[a["weights"][0]]), ValueError, "last memory layer"),
    (lambda a: a.update(weights=[a["weights"][1], a["weights"][0]]), ValueError, "weights"),
    (lambda a: a.update(mask=torch.ones(2, 9, dtype=torch.bool)), ValueError, "mask must be"),
    (lambda a: a.update(mask=torch.ones(2, 10)), TypeError, "bool"),
    (lambda a: a.update(mask=torch.tensor([[True] * 10, [False] + [True] * 9])), ValueError,
     "end of a row"),
    (lambda a: a.update(q=a["q"][:, :, :0], k=a["k"][:, :, :0], v=a["v"][:, :, :0],
                        theta=a["theta"][..., :0], eta=a["eta"][..., :0],
                        alpha=a["alpha"][..., :0]), ValueError, "empty"),
])
def test_bad_inputs_are_refused(change, error, message):
    names = ["q", "k", "v", "theta", "eta", "alpha", "weights"]
    arguments = dict(zip(names, scan_inputs(length=10)), chunk_size=4)
    change(arguments)
    for scan in (memory_scan, memory_scan_reference):
        with pytest.raises(error, match=message):
            scan(**arguments)


def test_state_mismatches_are_refused():
    inputs = scan_inputs(length=10)
    _, state = memory_scan(*inputs, chunk_size=4)
    with pytest.raises(ValueError, match="chunk_size=4"):
        memory_scan(*inputs, chunk_size=8, state=state)
    with pytest.raises(ValueError, match="rows"):
        memory_scan(*scan_inputs(batch=3, length=10), chunk_size=4, state=state)
    with pytest.raises(TypeError, match="MemoryState"):
        memory_scan(*inputs, chunk_size=4, state=(state.weights,))
    assert isinstance(state, MemoryState)


def test_compiled_step_matches_eager():
    """``compiled=True`` runs the chunk step through torch.compile: same values and gradients."""
    inputs = scan_inputs(length=21, dtype=torch.float32, requires_grad=True)
    _, start = memory_scan(*[t.detach() for t in inputs[:-1]], inputs[-1], chunk_size=4)
    start = start.detach()
    results = []
    for compiled in (False, True):
        y, state = memory_scan(*inputs, chunk_size=4, state=start, compiled=compiled,
                               kernel="torch")  # compiled applies to the pure-PyTorch path
        grads = torch.autograd.grad(y.square().sum(), inputs[:-1])
        with torch.no_grad():
            y_inference, _ = memory_scan(*inputs, chunk_size=4, compiled=compiled,
                                         kernel="torch")
        results.append((y, state, grads, y_inference))
    (y, state, grads, y_inf), (y_c, state_c, grads_c, y_inf_c) = results
    torch.testing.assert_close(y_c, y, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(y_inf_c, y_inf, rtol=1e-5, atol=1e-5)
    assert_states_close(state_c, state, rtol=1e-5, atol=1e-5)
    for got, want in zip(grads_c, grads):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_checkpointed_blocks_give_the_same_gradients():
    """``checkpoint_blocks=True`` recomputes each block in backward: same values and gradients."""
    inputs = scan_inputs(length=150, requires_grad=True)  # several blocks of 8 chunks of 4
    results = []
    for checkpoint_blocks in (False, True):
        y, state = memory_scan(*inputs, chunk_size=4, checkpoint_blocks=checkpoint_blocks)
        loss = y.square().sum() + sum(w.sum() for w in state.weights + state.chunk_start_weights)
        results.append((y, state, torch.autograd.grad(loss, [*inputs[:-1], *inputs[-1]])))
    (y, state, grads), (y_c, state_c, grads_c) = results
    torch.testing.assert_close(y_c, y, **TOLERANCE)
    assert_states_close(state_c, state, **TOLERANCE)
    for got, want in zip(grads_c, grads):
        torch.testing.assert_close(got, want, **TOLERANCE)


@pytest.mark.parametrize("chunk_size", [1, 4, 16])
@pytest.mark.parametrize("hidden", [(), (6,), (6, 7)], ids=["linear", "depth2", "depth3"])
def test_clipped_surprise_equals_reference(chunk_size, hidden):
    """With ``max_surprise_norm`` small enough to clip most tokens, both paths still agree,
    and the clip changes the result."""
    inputs = scan_inputs(length=37, hidden=hidden)
    y, state = memory_scan(*inputs, chunk_size=chunk_size, max_surprise_norm=0.5)
    y_ref, state_ref = memory_scan_reference(*inputs, chunk_size=chunk_size,
                                             max_surprise_norm=0.5)
    torch.testing.assert_close(y, y_ref, **TOLERANCE)
    assert_states_close(state, state_ref, **TOLERANCE)
    unclipped, _ = memory_scan(*inputs, chunk_size=chunk_size)
    assert not torch.allclose(y, unclipped)
    loose, _ = memory_scan(*inputs, chunk_size=chunk_size, max_surprise_norm=1e6)
    torch.testing.assert_close(loose, unclipped, **TOLERANCE)  # nothing to clip


def test_clipped_surprise_gradients_match_reference():
    def gradients(scan):
        *tensors, weights = scan_inputs(length=13, hidden=(6,), requires_grad=True)
        y, state = scan(*tensors, weights, chunk_size=5, max_surprise_norm=0.5)
        loss = (y ** 2).sum() + sum((w ** 2).sum() for w in state.weights)
        return torch.autograd.grad(loss, [*tensors, *weights])

    for fast, reference in zip(gradients(memory_scan), gradients(memory_scan_reference)):
        assert torch.isfinite(fast).all()
        torch.testing.assert_close(fast, reference, **TOLERANCE)


def test_clipped_surprise_keeps_a_grown_deep_memory_finite():
    """The failure it exists for: once training has grown M_0, a fixed inner step overshoots
    and the deep memory's writes diverge within a sequence; clipped writes stay bounded."""
    q, k, v, theta, eta, alpha, weights = scan_inputs(batch=2, heads=2, length=256,
                                                      key_dim=16, value_dim=16, hidden=(64,),
                                                      dtype=torch.float32)
    grown = [4 * w for w in weights]
    step = torch.full_like(theta, 1 / 16)  # the layer's default bound, max_lr = 1 / chunk
    gates = (step * 0.1, torch.full_like(eta, 0.9), torch.zeros_like(alpha))
    y, _ = memory_scan(q, k, 3 * v, *gates, grown, chunk_size=16)
    assert not torch.isfinite(y).all()
    y, state = memory_scan(q, k, 3 * v, *gates, grown, chunk_size=16, max_surprise_norm=1.0)
    assert torch.isfinite(y).all() and all(torch.isfinite(w).all() for w in state.weights)


@pytest.mark.parametrize("value", [0, -1.0, float("inf"), True, "1"])
def test_bad_max_surprise_norm_is_refused(value):
    with pytest.raises(ValueError, match="max_surprise_norm must be a finite number > 0.0 or None"):
        memory_scan(*scan_inputs(length=4), chunk_size=2, max_surprise_norm=value)

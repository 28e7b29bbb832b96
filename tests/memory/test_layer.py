"""The NeuralMemory layer: streaming, padding, ablations, precision, stability, input checks."""

from __future__ import annotations

import pytest
import torch

from titans_seq import NeuralMemory, NeuralMemoryState
from titans_seq.memory import MemoryState, memory_scan_reference

from .helpers import assert_states_close

TOLERANCE = dict(rtol=1e-9, atol=1e-10)


def make_layer(seed=0, **kwargs):
    torch.manual_seed(seed)
    options = dict(dim=12, heads=2, head_dim=4, chunk_size=4)
    options.update(kwargs)
    return NeuralMemory(**options).double()


def sequence(batch=3, length=23, dim=12, seed=1):
    return torch.randn(batch, length, dim, dtype=torch.float64,
                       generator=torch.Generator().manual_seed(seed))


def assert_layer_states_close(actual, expected):
    assert_states_close(actual.memory, expected.memory, **TOLERANCE)
    if expected.conv_tail is None:
        assert actual.conv_tail is None
    else:
        torch.testing.assert_close(actual.conv_tail, expected.conv_tail, **TOLERANCE)


@pytest.mark.parametrize("cuts", [[10], [1, 2, 9, 17], list(range(1, 23))],
                         ids=["two", "uneven", "token-by-token"])
@pytest.mark.parametrize("convolution", [True, False])
def test_split_equals_whole(cuts, convolution):
    layer = make_layer(convolution=convolution)
    x = sequence()
    y, state = layer(x)
    outputs, piece_state = [], None
    for start, end in zip([0, *cuts], [*cuts, 23]):
        y_piece, piece_state = layer(x[:, start:end], piece_state)
        outputs.append(y_piece)
    torch.testing.assert_close(torch.cat(outputs, 1), y, **TOLERANCE)
    assert_layer_states_close(piece_state, state)


def test_padding_equals_unpadded_rows_and_continues_the_same():
    layer = make_layer()
    x = sequence()
    lengths = [23, 14, 3]
    mask = torch.arange(23)[None, :] < torch.tensor(lengths)[:, None]
    y, state = layer(x, mask=mask)
    follow = sequence(length=6, seed=2)
    y_next, _ = layer(follow, state)
    for row, length in enumerate(lengths):
        y_row, state_row = layer(x[row:row + 1, :length])
        torch.testing.assert_close(y[row:row + 1, :length], y_row, **TOLERANCE)
        assert torch.count_nonzero(y[row, length:]) == 0
        # The padded row's state continues exactly like the unpadded row's.
        y_row_next, _ = layer(follow[row:row + 1], state_row)
        torch.testing.assert_close(y_next[row:row + 1], y_row_next, **TOLERANCE)


def test_layer_memory_matches_reference_op():
    """The layer's memory is the paper's recurrence: rerun it with the per-token reference."""
    layer = make_layer()
    x = sequence(length=10)
    _, state = layer(x)
    # Recompute q, k, v and gates the way forward does, then scan with the reference.
    projected, _ = layer.conv(layer.qkv(x))
    q, k, v = torch.nn.functional.silu(projected).view(3, 10, 3, 2, 4).permute(2, 0, 3, 1, 4)
    q, k = torch.nn.functional.normalize(q, dim=-1), torch.nn.functional.normalize(k, dim=-1)
    gates = torch.sigmoid(layer.gates(x)).view(3, 10, 3, 2).permute(2, 0, 3, 1)
    _, reference_state = memory_scan_reference(
        q, k, v, layer.max_lr * gates[0] * (1 - gates[1]), gates[1], gates[2],
        list(layer.initial_weights),
        chunk_size=4)
    assert_states_close(state.memory, reference_state, **TOLERANCE)


@pytest.mark.parametrize("ablation", [dict(momentum=False), dict(forgetting=False),
                                      dict(convolution=False), dict(memory_depth=1),
                                      dict(memory_depth=3, memory_hidden=5)])
def test_ablations(ablation):
    layer = make_layer(**ablation)
    x = sequence()
    y, state = layer(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert len(state.memory.weights) == ablation.get("memory_depth", 2)
    if "momentum" in ablation or "forgetting" in ablation:
        assert layer.gates.out_features == 2 * 2  # θ plus the one gate left, per head
    if ablation.get("convolution") is False:
        assert layer.conv is None and state.conv_tail is None


@pytest.mark.parametrize("momentum", [False, True])
def test_without_momentum_past_surprise_is_forgotten(momentum):
    """η = 0: S_t = −θ_t u_t, so the momentum carried in the state has no effect on what follows
    (with momentum on, it does)."""
    layer = make_layer(momentum=momentum, chunk_size=1)
    x = sequence(batch=1, length=8)
    _, before = layer(x[:, :5])
    memory = before.memory
    perturbed = NeuralMemoryState(
        MemoryState(memory.weights, tuple(s + torch.randn_like(s) for s in memory.momentum),
                    memory.chunk_start_weights, memory.tokens_seen, memory.chunk_size),
        before.conv_tail)
    y, after = layer(x[:, 5:], before)
    y_perturbed, after_perturbed = layer(x[:, 5:], perturbed)
    same = torch.allclose(y, y_perturbed) and all(
        torch.allclose(a, b)
        for a, b in zip(after.memory.momentum, after_perturbed.memory.momentum))
    assert same is (not momentum)


def test_gradients_reach_every_parameter():
    layer = make_layer()
    y, state = layer(sequence())
    (y.sum() + sum(w.sum() for w in state.memory.weights)).backward()
    for name, parameter in layer.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def test_bf16_autocast_trains_with_float32_memory():
    torch.manual_seed(0)
    layer = NeuralMemory(dim=16, heads=2)
    x = torch.randn(2, 20, 16)
    y32, _ = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, state = layer(x)
    assert y.dtype == torch.bfloat16
    assert all(w.dtype == torch.float32 for w in state.memory.weights + state.memory.momentum)
    torch.testing.assert_close(y.float(), y32, rtol=0.1, atol=0.05)
    y.float().sum().backward()
    assert all(p.grad is not None for p in layer.parameters())


def test_state_detach_and_tokens_seen():
    layer = make_layer()
    _, state = layer(sequence(length=7))
    assert state.tokens_seen.tolist() == [7, 7, 7]
    detached = state.detach()
    assert isinstance(detached, NeuralMemoryState)
    assert not detached.memory.weights[0].requires_grad


def test_stable_over_a_million_streamed_tokens():
    """Default configuration, random data, 1,000,000 tokens in pieces of 4,096: all finite."""
    torch.manual_seed(0)
    layer = NeuralMemory(dim=32)
    state, finite = None, True
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _ in range(-(-1_000_000 // 4096)):
            y, state = layer(torch.randn(1, 4096, 32, generator=generator), state)
            finite &= bool(torch.isfinite(y).all())
    assert state.tokens_seen.item() >= 1_000_000
    assert finite
    assert all(torch.isfinite(w).all() for w in state.memory.weights + state.memory.momentum)


@pytest.mark.parametrize("call, error, message", [
    (lambda m: m(torch.randn(2, 5, 7, dtype=torch.float64)), ValueError, "dim=12"),
    (lambda m: m(torch.randn(2, 5, dtype=torch.float64)), ValueError, "B, T, dim"),
    (lambda m: m(torch.zeros(2, 5, 12, dtype=torch.long)), TypeError, "floating-point"),
    (lambda m: m([[0.0] * 12]), TypeError, "torch.Tensor"),
    (lambda m: m(torch.zeros(2, 0, 12, dtype=torch.float64)), ValueError, "empty"),
    (lambda m: m(torch.full((2, 5, 12), float("nan"), dtype=torch.float64)), ValueError, "NaN"),
    (lambda m: m(sequence(2, 5), mask=torch.tensor([[1, 1, 0, 1, 1], [1] * 5]).bool()),
     ValueError, "end of a row"),
    (lambda m: m(sequence(2, 5), mask=torch.ones(2, 4, dtype=torch.bool)), ValueError, "mask"),
    (lambda m: m(sequence(2, 5), state=m(sequence(3, 5))[1]), ValueError, "rows"),
    (lambda m: m(sequence(2, 5), state="state"), TypeError, "NeuralMemoryState"),
])
def test_bad_inputs_are_refused(call, error, message):
    with pytest.raises(error, match=message):
        call(make_layer())


@pytest.mark.parametrize("arguments, message", [
    (dict(dim=0), "dim"), (dict(dim=8, heads=16), "head_dim"), (dict(dim=8, chunk_size=0),
                                                                  "chunk_size"),
    (dict(dim=8, max_lr=-1.0), "max_lr"), (dict(dim=8, memory_depth=0), "memory_depth"),
])
def test_bad_constructor_arguments_are_refused(arguments, message):
    with pytest.raises(ValueError, match=message):
        NeuralMemory(**arguments)

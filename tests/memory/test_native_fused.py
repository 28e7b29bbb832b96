"""The native kernel's fused stages against the PyTorch path they replace: the gate
coefficients computed inside the scan (``gated_scan_*``), the block-wise op that takes them as
tensors (kept for ``checkpoint_blocks``), and the layer's q/k/v activation and gated output."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from titans_seq.memory import NeuralMemory, memory_scan
from titans_seq.memory.native import (native_available, native_gated_output,
                                      native_qkv_activation)

from .helpers import assert_states_close, scan_inputs, state_tensors

pytestmark = pytest.mark.skipif(not native_available(), reason="no native kernel here")
TOLERANCE = dict(rtol=1e-9, atol=1e-10)


def _scan(kernel, gates=None, checkpoint_blocks=False, chunk_size=4):
    """A masked call continuing a mid-chunk state; outputs, state and input gradients."""
    *tensors, weights = scan_inputs(batch=3, length=45, hidden=(8,), requires_grad=True)
    if gates is not None:
        with torch.no_grad():
            for tensor, value in zip(tensors[3:], gates):
                if value is not None:
                    tensor.fill_(value)
    *prefix, _ = scan_inputs(batch=3, length=3, hidden=(8,), seed=3)
    _, start = memory_scan(*prefix, weights, chunk_size=chunk_size, kernel=kernel)
    mask = torch.arange(45)[None, :] < torch.tensor([45, 30, 7])[:, None]
    y, state = memory_scan(*tensors, weights, chunk_size=chunk_size, state=start, mask=mask,
                           checkpoint_blocks=checkpoint_blocks, kernel=kernel)
    loss = (y * torch.linspace(-1, 1, y.shape[-1], dtype=y.dtype)).sum() \
        + sum((t ** 2).sum() for t in state_tensors(state))
    return y, state, torch.autograd.grad(loss, [*tensors, *weights])


@pytest.mark.parametrize("gates, clamped",
                         [((0.0, None, None), None), ((None, 0.0, None), 4),
                          ((None, None, 1.0), 5)], ids=["theta0", "eta0", "alpha1"])
def test_gates_at_their_bounds_give_the_pytorch_values(gates, clamped):
    """Exact zeros of θ, η and 1 − α (products in the kernel, logarithms in PyTorch)."""
    native, torch_path = _scan("native", gates), _scan("torch", gates)
    torch.testing.assert_close(native[0], torch_path[0], **TOLERANCE)
    assert_states_close(native[1], torch_path[1], **TOLERANCE)
    # PyTorch clamps log(0), which zeroes the gradient of a factor at exactly 0 (input
    # ``clamped``); the kernel's is the exact one. The other gradients agree.
    for index, (got, want) in enumerate(zip(native[2], torch_path[2])):
        if index != clamped:
            torch.testing.assert_close(got, want, **TOLERANCE)


@pytest.mark.parametrize("chunk_size", [1, 4, 16])
def test_block_wise_op_with_given_coefficients_equals_pytorch(chunk_size):
    """checkpoint_blocks keeps the op that takes the coefficients as tensors."""
    native = _scan("native", checkpoint_blocks=True, chunk_size=chunk_size)
    whole = _scan("native", chunk_size=chunk_size)
    torch_path = _scan("torch", checkpoint_blocks=True, chunk_size=chunk_size)
    for result in (native, whole):
        torch.testing.assert_close(result[0], torch_path[0], **TOLERANCE)
        assert_states_close(result[1], torch_path[1], **TOLERANCE)
        for got, want in zip(result[2], torch_path[2]):
            torch.testing.assert_close(got, want, **TOLERANCE)


def _qkv_reference(projected, eps):
    head_dim = projected.shape[-1]
    activated = F.silu(projected)
    query_key = F.rms_norm(activated[:, :, :2], (head_dim,), eps=eps) * head_dim ** -0.5
    q, k = query_key.permute(2, 0, 3, 1, 4)
    return q, k, activated[:, :, 2].transpose(1, 2)


def _output_reference(reads, weight, gate, eps):
    batch, _, length, head_dim = reads.shape
    normed = F.rms_norm(reads.transpose(1, 2), (head_dim,), eps=eps) * weight
    return normed.reshape(batch, length, -1) * F.silu(gate)


def test_qkv_activation_equals_pytorch_with_gradients():
    generator = torch.Generator().manual_seed(0)
    projected = torch.randn(2, 7, 3, 3, 16, dtype=torch.float64, generator=generator)
    projected[0, 0, :2, 0] = 0.0  # a zero vector: the norm's ε keeps it finite
    projected.requires_grad_()
    readouts = [torch.randn(2, 3, 7, 16, dtype=torch.float64, generator=generator)
                for _ in range(3)]
    results = []
    for function in (native_qkv_activation, _qkv_reference):
        outputs = function(projected, 1e-20)
        loss = sum((o * r).sum() for o, r in zip(outputs, readouts))
        results.append((outputs, torch.autograd.grad(loss, projected)[0]))
    for got, want in zip(results[0][0], results[1][0]):
        assert got.is_contiguous()
        torch.testing.assert_close(got, want, **TOLERANCE)
    torch.testing.assert_close(results[0][1], results[1][1], **TOLERANCE)


def test_gated_output_equals_pytorch_with_gradients():
    generator = torch.Generator().manual_seed(1)

    def randn(*shape):
        return torch.randn(*shape, dtype=torch.float64, generator=generator).requires_grad_()
    reads, weight, gate = randn(2, 3, 9, 16), randn(3, 16), randn(2, 9, 48)
    readout = torch.randn(2, 9, 48, dtype=torch.float64, generator=generator)
    results = []
    for function in (native_gated_output, _output_reference):
        y = function(reads, weight, gate, 1e-6)
        results.append((y, torch.autograd.grad((y * readout).sum(), [reads, weight, gate])))
    torch.testing.assert_close(results[0][0], results[1][0], **TOLERANCE)
    for got, want in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(got, want, **TOLERANCE)


def test_layer_retrieve_and_streaming_match_the_pytorch_path():
    """The fused stages inside the layer: a call in pieces and a retrieval, both kernels."""
    torch.manual_seed(0)
    layer = NeuralMemory(32, heads=2, chunk_size=8).double()
    x = torch.randn(2, 40, 32, dtype=torch.float64)
    results = []
    for kernel in ("native", "torch"):
        layer.kernel = kernel
        first, state = layer(x[:, :13])
        second, state = layer(x[:, 13:], state)
        results.append((torch.cat([first, second], 1), layer.retrieve(x[:, :5], state)))
    for got, want in zip(*results):
        torch.testing.assert_close(got, want, **TOLERANCE)

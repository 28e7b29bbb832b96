"""The native CPU kernel of the sequential pass against the pure-PyTorch path and the per-token
reference: outputs, states and the gradients of every input; and its fallback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from datamodules.checks import InvalidParameterError
from titans_seq.memory import NeuralMemory, memory_scan, memory_scan_reference
from titans_seq.memory.native import native_available, uses_native

from .helpers import assert_states_close, scan_inputs, scan_with_gradients

TOLERANCE = dict(rtol=1e-9, atol=1e-10)
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("clip", [None, 0.3], ids=["paper", "clipped"])
@pytest.mark.parametrize("hidden", [(), (6,), (6, 7)], ids=["linear", "depth2", "depth3"])
@pytest.mark.parametrize("chunk_size", [1, 3, 16])
def test_native_equals_pure_pytorch_with_gradients(chunk_size, hidden, clip):
    native = scan_with_gradients(memory_scan, chunk_size, hidden, clip, kernel="native")
    torch_path = scan_with_gradients(memory_scan, chunk_size, hidden, clip, kernel="torch")
    torch.testing.assert_close(native[0], torch_path[0], **TOLERANCE)
    assert_states_close(native[1], torch_path[1], **TOLERANCE)
    for got, want in zip(native[2], torch_path[2]):
        torch.testing.assert_close(got, want, **TOLERANCE)
    if clip is not None:  # the clip was active, so its backward was exercised
        unclipped = scan_with_gradients(memory_scan, chunk_size, hidden, None, kernel="native")
        assert not torch.allclose(unclipped[0], native[0])


@pytest.mark.parametrize("clip", [None, 0.3], ids=["paper", "clipped"])
@pytest.mark.parametrize("hidden", [(), (6, 7)], ids=["linear", "depth3"])
def test_native_gradients_equal_the_per_token_reference(hidden, clip):
    native = scan_with_gradients(memory_scan, 4, hidden, clip, kernel="native")
    reference = scan_with_gradients(memory_scan_reference, 4, hidden, clip)
    torch.testing.assert_close(native[0], reference[0], **TOLERANCE)
    assert_states_close(native[1], reference[1], **TOLERANCE)
    for got, want in zip(native[2], reference[2]):
        torch.testing.assert_close(got, want, **TOLERANCE)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_layer_trains_the_same_on_both_kernels(dtype):
    """A whole layer (several blocks of chunks): the same outputs, states and parameter
    gradients on the native kernel and on the pure-PyTorch path, in float32 too."""
    torch.manual_seed(0)
    layer = NeuralMemory(16, heads=2, chunk_size=4, max_surprise_norm=1.0).to(dtype)
    x = torch.randn(2, 75, 16, dtype=dtype)
    results = []
    for kernel in ("native", "torch"):
        layer.kernel = kernel
        layer.zero_grad()
        y, state = layer(x)
        (y.square().sum() + state.memory.weights[0].sum()).backward()
        results.append((y, state.memory, [p.grad.clone() for p in layer.parameters()]))
    tolerance = TOLERANCE if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-5)
    (y, state, grads), (y_torch, state_torch, grads_torch) = results
    torch.testing.assert_close(y, y_torch, **tolerance)
    assert_states_close(state, state_torch, **tolerance)
    for got, want in zip(grads, grads_torch):
        torch.testing.assert_close(got, want, **tolerance)


def test_auto_takes_the_native_kernel_on_the_cpu():
    assert native_available()
    assert uses_native("auto", torch.zeros(1))


def test_kernel_options_are_checked(monkeypatch):
    inputs = scan_inputs(length=4)
    with pytest.raises(InvalidParameterError, match="kernel must be one of"):
        memory_scan(*inputs, kernel="gpu")
    with pytest.raises(InvalidParameterError, match="kernel must be one of"):
        NeuralMemory(8, heads=2, kernel="fast")
    with pytest.raises(ValueError, match="runs on the CPU"):
        uses_native("native", torch.zeros(1, device="meta"))
    assert not uses_native("auto", torch.zeros(1, device="meta"))
    monkeypatch.setenv("TITANS_SEQ_KERNEL", "torch")
    assert not uses_native("auto", torch.zeros(1))
    assert uses_native("native", torch.zeros(1))  # an explicit option wins over the variable
    monkeypatch.setenv("TITANS_SEQ_KERNEL", "cuda")
    with pytest.raises(ValueError, match="TITANS_SEQ_KERNEL must be one of"):
        memory_scan(*inputs)


_FALLBACK_SCRIPT = textwrap.dedent("""
    import json, sys, warnings
    import torch
    sys.path.insert(0, sys.argv[1])
    from tests.memory.helpers import scan_inputs
    from titans_seq.memory import memory_scan
    from titans_seq.memory.native import NativeKernelWarning
    inputs = scan_inputs(length=21, requires_grad=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y_auto, _ = memory_scan(*inputs, chunk_size=4)
        grads_auto = torch.autograd.grad(y_auto.sum(), inputs[:-1])
        y_again, _ = memory_scan(*inputs, chunk_size=4)
    y_torch, _ = memory_scan(*inputs, chunk_size=4, kernel="torch")
    grads_torch = torch.autograd.grad(y_torch.sum(), inputs[:-1])
    try:
        memory_scan(*inputs, chunk_size=4, kernel="native")
        refused = ""
    except RuntimeError as error:
        refused = str(error)
    notices = [str(w.message) for w in caught if issubclass(w.category, NativeKernelWarning)]
    print(json.dumps(dict(
        notices=notices, refused=refused,
        same=bool(torch.equal(y_auto, y_torch) and torch.equal(y_again, y_torch)
                  and all(torch.equal(a, b) for a, b in zip(grads_auto, grads_torch))))))
""")


def test_without_a_compiler_auto_falls_back_with_one_notice(tmp_path):
    """A real failed build (the compiler is ``false``, the cache empty): ``auto`` runs the
    pure-PyTorch path with a one-line notice, once; ``native`` says why it cannot run."""
    environment = {**os.environ, "CXX": "false", "TORCH_EXTENSIONS_DIR": str(tmp_path)}
    environment.pop("TITANS_SEQ_KERNEL", None)
    done = subprocess.run([sys.executable, "-c", _FALLBACK_SCRIPT, str(ROOT)], env=environment,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["same"]
    assert len(result["notices"]) == 1
    notice = result["notices"][0]
    assert "native memory kernel unavailable" in notice and "pure-PyTorch" in notice
    assert "\n" not in notice
    assert "could not be built" in result["refused"]


def test_native_causal_convolution_equals_conv1d():
    """The layer's depthwise convolution: same outputs, tails and gradients (input, previous
    inputs, weight, bias) on the native kernel as with ``F.conv1d``, streamed with padding."""
    from titans_seq.memory import CausalDepthwiseConv1d
    torch.manual_seed(0)
    conv = CausalDepthwiseConv1d(6, kernel_size=4).double()
    x = torch.randn(3, 9, 6, dtype=torch.float64, requires_grad=True)
    tail = torch.randn(3, 3, 6, dtype=torch.float64, requires_grad=True)
    mask = torch.arange(9)[None, :] < torch.tensor([9, 5, 2])[:, None]
    results = []
    for native in (True, False):
        y, new_tail = conv(x, tail, mask, native=native)
        loss = (y * torch.arange(54, dtype=torch.float64).view(1, 9, 6)).sum() + new_tail.sum()
        results.append((y, new_tail, torch.autograd.grad(loss, [x, tail, *conv.parameters()])))
    (y, new_tail, grads), (y_ref, tail_ref, grads_ref) = results
    torch.testing.assert_close(y, y_ref, **TOLERANCE)
    torch.testing.assert_close(new_tail, tail_ref, **TOLERANCE)
    for got, want in zip(grads, grads_ref):
        torch.testing.assert_close(got, want, **TOLERANCE)


def test_encoder_passes_its_memory_kernel_to_every_memory():
    from titans_seq import TitansEncoder
    encoder = TitansEncoder("mag", dim=16, depth=2, heads=2, memory_heads=2,
                            memory_kernel="torch")
    memories = [m for m in encoder.modules() if isinstance(m, NeuralMemory)]
    assert memories and all(m.kernel == "torch" for m in memories)
    with pytest.raises(InvalidParameterError, match="memory_kernel must be one of"):
        TitansEncoder("lmm", dim=16, memory_kernel="cuda")

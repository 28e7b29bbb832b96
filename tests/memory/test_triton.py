"""The Triton kernels of the memory scan against the per-token reference and the pure-PyTorch
path, on the CPU through Triton's interpreter: outputs, states and the gradients of every input
(memory depths 1 and 2, clipping, padding, calls that start mid-chunk), the backward kernels
also on single blocks (every output's gradient, the gradient point's); and the kernel option's
choices and errors. Sizes are small: the interpreter runs every program in Python."""

from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is imported: kernels on the CPU

import subprocess  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

triton = pytest.importorskip(
    "triton", reason="triton is not installed (pip install 'titans-seq[gpu]'; Linux wheels "
    "only): the Triton kernel cannot be tested")

from titans_seq.memory import NeuralMemory, memory_scan, memory_scan_reference  # noqa: E402
from titans_seq.memory import native  # noqa: E402
from titans_seq.memory.coefficients import chunk_coefficients  # noqa: E402
from titans_seq.memory.native import select_kernel  # noqa: E402

from .helpers import assert_states_close, scan_inputs, scan_with_gradients  # noqa: E402
from .test_native import ROOT, TOLERANCE  # noqa: E402

DEPTHS = pytest.mark.parametrize("hidden", [(), (6,)], ids=["depth1", "depth2"])
CLIPS = pytest.mark.parametrize("clip", [None, 0.3], ids=["paper", "clipped"])


def _scan_with_gradients(scan, chunk_size, hidden, clip, heads=1, **options):
    """``test_native``'s scenario on fewer rows and tokens (the interpreter's time grows with
    both): 10 tokens from the state of an earlier call of 3 (one row all padding)."""
    return scan_with_gradients(scan, chunk_size, hidden, clip, valid=(10, 7, 4),
                               prefix_valid=(3, 1, 0), heads=heads, **options)


def _assert_same(got, want, **tolerance):
    """Outputs, final states and every gradient of two :func:`_scan_with_gradients` runs."""
    torch.testing.assert_close(got[0], want[0], **tolerance)
    assert_states_close(got[1], want[1], **tolerance)
    assert len(got[2]) == len(want[2])
    for got_grad, want_grad in zip(got[2], want[2]):
        torch.testing.assert_close(got_grad, want_grad, **tolerance)


@CLIPS
@DEPTHS
def test_triton_gradients_equal_the_per_token_reference(hidden, clip):
    """A padded call that starts mid-chunk, from a state of an earlier padded call: the reads,
    the state and the gradients of q, k, v, θ, η, α (both calls) and the initial weights."""
    triton_path = _scan_with_gradients(memory_scan, 4, hidden, clip, kernel="triton")
    reference = _scan_with_gradients(memory_scan_reference, 4, hidden, clip)
    _assert_same(triton_path, reference, **TOLERANCE)


@pytest.mark.parametrize("chunk_size", [1, 16])
def test_triton_equals_pure_pytorch_at_other_chunk_sizes(chunk_size):
    """One token per chunk (two blocks of chunks) and a chunk larger than the call (with two
    heads: one chunk per call keeps it short)."""
    heads = 1 if chunk_size == 1 else 2
    triton_path = _scan_with_gradients(memory_scan, chunk_size, (6,), 0.3, heads,
                                       kernel="triton")
    torch_path = _scan_with_gradients(memory_scan, chunk_size, (6,), 0.3, heads, kernel="torch")
    _assert_same(triton_path, torch_path, **TOLERANCE)


def test_the_clip_is_active_in_the_kernel():
    clipped, _ = memory_scan(*scan_inputs(length=9), chunk_size=4, max_surprise_norm=0.3,
                             kernel="triton")
    paper, _ = memory_scan(*scan_inputs(length=9), chunk_size=4, kernel="triton")
    assert not torch.allclose(clipped, paper)


def _block_inputs(depth: int, chunk_size: int, seed: int = 1):
    """One block's arguments for :func:`triton_block` (float64): 3 rows of 2 heads, 3 chunks,
    gates from :func:`chunk_coefficients`, a memory, a gradient point, a selected chunk per row
    (none, the first, the last)."""
    generator = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float64)
    batch, heads, chunks = 3, 2, 3
    queries, keys = (torch.nn.functional.normalize(
        randn(batch, heads, chunks, chunk_size, 4), dim=-1) for _ in range(2))
    values = randn(batch, heads, chunks, chunk_size, 5)
    theta, eta, alpha = (scale * torch.rand(batch, heads, chunks, chunk_size, generator=generator,
                                            dtype=torch.float64) for scale in (0.2, 0.9, 0.2))
    coefficients = chunk_coefficients(theta, eta, alpha, torch.ones(batch, 1, chunks, chunk_size,
                                                                    dtype=torch.bool))
    widths = [4, 6, 5] if depth == 2 else [4, 5]
    memory = [0.5 * randn(batch, heads, 2, a, b) for a, b in zip(widths, widths[1:])]
    point = [0.5 * randn(batch, heads, a, b) for a, b in zip(widths, widths[1:])]
    return queries, keys, values, coefficients, memory, point, torch.tensor([-1, 0, chunks - 1])


def test_kernel_block_equals_its_pytorch_reference():
    """:func:`triton_block` against :func:`reference_block` on one block, with a gradient point
    and a selected chunk per row (none, the first, a later one)."""
    from titans_seq.memory.triton_scan import reference_block, triton_block
    queries, keys, values, coefficients, memory, point, select = _block_inputs(2, 4)
    arguments = (queries, keys, values, coefficients, memory, point, 0.5, select)
    got, want = triton_block(*arguments), reference_block(*arguments)
    for got_tensor, want_tensor in zip([*got[0], got[1], *got[2]], [*want[0], want[1], *want[2]]):
        torch.testing.assert_close(got_tensor, want_tensor, **TOLERANCE)
    assert not got[2][0][0].any() and got[2][0][1:].abs().min() > 0  # −1 gives zeros


@pytest.mark.parametrize("depth, chunk_size, with_point, clip", [
    (1, 4, True, 0.5), (1, 4, False, None), (2, 4, True, 0.5), (2, 4, False, None),
    (2, 1, True, 0.5)], ids=["depth1-point-clipped", "depth1", "depth2-point-clipped",
                             "depth2", "depth2-chunk1-point-clipped"])
def test_kernel_block_gradients_equal_its_pytorch_reference(
        monkeypatch, depth, chunk_size, with_point, clip):
    """The Triton backward kernel on one block against autograd through
    :func:`reference_block`: the gradients of the queries, keys, values, the four coefficient
    tensors, the memory and the gradient point, from a loss on all three outputs (the memory
    after the block, the reads, the selected chunks' start weights)."""
    from titans_seq.memory import triton_scan
    queries, keys, values, coefficients, memory, point, select = _block_inputs(depth, chunk_size)
    point = point if with_point else []
    leaves = [x.requires_grad_() for x in (
        queries, keys, values, coefficients.token_weights, coefficients.read_weights,
        coefficients.transition, coefficients.update_weights, *memory, *point)]
    fields = type(coefficients)(*leaves[3:7])
    generator = torch.Generator().manual_seed(2)

    def gradients(block):
        after, reads, selected = block(queries, keys, values, fields, memory, point or None,
                                       clip, select)
        outputs = [*after, reads, *selected]
        cotangents = [torch.randn(x.shape, generator=generator, dtype=x.dtype) for x in outputs]
        return torch.autograd.grad(outputs, leaves, cotangents)
    want = gradients(triton_scan.reference_block)
    generator.manual_seed(2)  # the same cotangents

    def fail(*args):
        raise AssertionError("the backward pass ran the pure-PyTorch path")
    monkeypatch.setattr(triton_scan, "reference_block", fail)
    got = gradients(triton_scan.triton_block)
    for got_grad, want_grad in zip(got, want, strict=True):
        torch.testing.assert_close(got_grad, want_grad, **TOLERANCE)


def test_float32_and_low_precision_inputs():
    """fp32 inputs run in fp32; bf16 inputs are upcast (the recurrence never runs below fp32),
    as on the pure-PyTorch path; so do their gradients, which come back in the inputs' dtype."""
    for dtype in (torch.float32, torch.bfloat16):
        inputs = scan_inputs(length=11, dtype=dtype, requires_grad=True)
        leaves = [*inputs[:-1], *inputs[-1]]
        results = []
        for kernel in ("triton", "torch"):
            y, state = memory_scan(*inputs, chunk_size=4, max_surprise_norm=0.5, kernel=kernel)
            loss = y.square().sum() + state.weights[0].sum()
            results.append((y, state, torch.autograd.grad(loss, leaves)))
        (y, state, grads), (y_torch, state_torch, grads_torch) = results
        assert y.dtype == state.weights[0].dtype == torch.float32
        torch.testing.assert_close(y, y_torch, rtol=1e-5, atol=1e-6)
        assert_states_close(state, state_torch, rtol=1e-5, atol=1e-6)
        for got, want in zip(grads, grads_torch):
            assert got.dtype == dtype
            if dtype == torch.float32:
                torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
            else:  # both in fp32, then rounded to bf16: one rounding step apart at most
                torch.testing.assert_close(got, want)


def test_layer_trains_the_same_on_the_triton_kernel():
    """A whole layer over several blocks of chunks, streamed in two calls: the same outputs,
    states and parameter gradients as on the pure-PyTorch path."""
    torch.manual_seed(0)
    layer = NeuralMemory(8, heads=2, chunk_size=2, memory_hidden=8,
                         max_surprise_norm=1.0).double()
    x = torch.randn(2, 21, 8, dtype=torch.float64)
    results = []
    for kernel in ("triton", "torch"):
        layer.kernel = kernel
        layer.zero_grad()
        y_first, state = layer(x[:, :3])
        y, state = layer(x[:, 3:], state)
        loss = y_first.square().sum() + y.square().sum() + state.memory.weights[0].sum()
        loss.backward()
        results.append((y, state.memory, [p.grad.clone() for p in layer.parameters()]))
    (y, state, grads), (y_torch, state_torch, grads_torch) = results
    torch.testing.assert_close(y, y_torch, **TOLERANCE)
    assert_states_close(state, state_torch, **TOLERANCE)
    for got, want in zip(grads, grads_torch):
        torch.testing.assert_close(got, want, **TOLERANCE)


# ---- choosing the kernel


def _on(device: str) -> SimpleNamespace:
    """Something on ``device`` for :func:`select_kernel`, which looks at the device only (no
    CUDA is needed to build the device)."""
    return SimpleNamespace(device=torch.device(device))


def test_auto_takes_triton_on_cuda_and_the_native_kernel_on_the_cpu(monkeypatch):
    monkeypatch.delenv("TITANS_SEQ_KERNEL", raising=False)
    assert select_kernel("auto", _on("cuda"), depth=2) == "triton"
    assert select_kernel("auto", _on("cuda"), depth=3) == "torch"  # deeper: not written out
    monkeypatch.setattr(native, "native_available", lambda: True)  # not built here: no need
    assert select_kernel("auto", torch.zeros(1), depth=2) == "native"  # interpreter or not
    assert select_kernel("torch", _on("cuda")) == "torch"
    assert select_kernel("triton", torch.zeros(1)) == "triton"  # under the interpreter
    monkeypatch.setenv("TITANS_SEQ_KERNEL", "triton")
    assert select_kernel("auto", torch.zeros(1)) == "triton"


def test_triton_option_errors(monkeypatch):
    with pytest.raises(ValueError, match="depth 1 or 2.*has 3 layers.*kernel='auto'"):
        memory_scan(*scan_inputs(length=4, hidden=(6, 7)), kernel="triton")
    with pytest.raises(ValueError, match="runs on CUDA tensors.*meta"):
        select_kernel("triton", torch.zeros(1, device="meta"))
    monkeypatch.delenv("TRITON_INTERPRET")
    with pytest.raises(ValueError, match="set TRITON_INTERPRET=1"):
        memory_scan(*scan_inputs(length=4), kernel="triton")
    with pytest.raises(ValueError, match="set TRITON_INTERPRET=1"):
        NeuralMemory(8, heads=2, kernel="triton")(torch.randn(1, 3, 8))


def test_without_triton_the_option_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "triton", None)  # import triton now raises ImportError
    monkeypatch.setattr(native, "_triton", {"tried": False, "loaded": False, "error": None,
                                            "version": None})
    with pytest.raises(RuntimeError, match=r"needs the triton package.*titans-seq\[gpu\]"):
        select_kernel("triton", torch.zeros(1))
    assert select_kernel("auto", _on("cuda"), depth=2) == "torch"


def test_importing_the_package_does_not_import_triton():
    code = ("import sys, titans_seq, titans_seq.memory; "
            "print('triton' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"


_COMPILE_SCRIPT = textwrap.dedent("""
    import torch
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from titans_seq.memory import triton_backward, triton_scan
    sizes = {"num_chunks", "chunk", "d_k", "d_h", "d_v"}
    dtypes = {"fp32": torch.float32, "fp64": torch.float64}
    for kernel, dtype, tiles in (
            (triton_scan._linear_kernel, "fp32", dict(BK=16, BV=16)),
            (triton_scan._deep_kernel, "fp32", dict(BK=16, BH=64, BV=16)),
            (triton_scan._deep_kernel, "fp64", dict(BK=16, BH=16, BV=16)),
            (triton_backward._linear_backward_kernel, "fp64", dict(BK=16, BV=32)),
            (triton_backward._deep_backward_kernel, "fp32", dict(BK=16, BH=32, BV=16))):
        constants = {name: value for name, value in dict(
            HAS_POINT=True, CLIP=True, KEEP_STARTS=True, BC=16, **tiles).items()
            if name in kernel.arg_names}
        signature = {name: "constexpr" if name in constants else "i32" if name in sizes
                     else "*i64" if name == "select" else "*" + dtype
                     for name in kernel.arg_names}
        # the warps a CUDA run would launch with (the tiles stand for the widths)
        warps = triton_scan._warps(list(tiles.values()), dtypes[dtype],
                                   backward=kernel.fn.__module__ == triton_backward.__name__)
        triton.compile(ASTSource(kernel, signature, constexprs=constants),
                       target=GPUTarget("cuda", 90, 32), options=dict(num_warps=warps))
    print("compiled")
""")


def test_the_kernels_compile_for_a_gpu(tmp_path):
    """The interpreter runs the kernels as Python; this compiles them, forward and backward (no
    GPU needed), for an sm_90 target down to a cubin, as a CUDA run would, so that CI catches
    what only the compiler refuses."""
    environment = {**os.environ, "TRITON_CACHE_DIR": str(tmp_path),
                   "TRITON_DEFAULT_FP_FUSION": "1"}
    environment.pop("TRITON_INTERPRET")
    done = subprocess.run([sys.executable, "-c", _COMPILE_SCRIPT], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("compiled")

"""The native CPU kernels of the memory layer, with their pure-PyTorch fallback.

``csrc/chunk_step.cpp`` (with ``dense.h`` and ``chunk_math.h``) runs every chunk of a block for
all batch × head rows at once (rows in parallel across cores, each row's memory kept in cache):
per chunk the sequential step (gradients at the chunk's start weights, the update) and the
chunk's reads, with a hand-written backward. It computes what :func:`.chunked._advance` and
:func:`.chunked._retrieve` compute with PyTorch ops (the gate coefficients stay in PyTorch,
batched over all chunks).
``csrc/causal_conv.cpp`` is the layer's causal depthwise convolution (forward and backward),
which the general convolution routines run slowly at these shapes. It is compiled with
``torch.utils.cpp_extension`` on first use (10-20 s) and cached under
``TORCH_EXTENSIONS_DIR`` (default ``~/.cache/torch_extensions``), keyed by the source, the
flags and the CPU, so a shared home never loads a build made for another processor.

Which path runs is the ``kernel`` option of :func:`.memory_scan` and ``NeuralMemory``:

- ``"auto"`` (default): the native kernel for CPU tensors when it builds, the Triton kernel
  (:mod:`.triton_scan`) for CUDA tensors when triton imports and the memory has 1 or 2
  layers, otherwise (no compiler, no triton, another device, inside ``torch.compile``) the
  pure-PyTorch path; a failed build says so once, in one line, and never raises. The
  environment variable ``TITANS_SEQ_KERNEL`` (``native``, ``triton`` or ``torch``) makes
  ``"auto"`` mean that kernel for a whole process.
- ``"native"``: the native kernel, or an error that says why it cannot run.
- ``"triton"``: the Triton kernel, on CUDA tensors or, under Triton's interpreter
  (``TRITON_INTERPRET=1`` set before the first such call), on CPU tensors; or an error that says
  why it cannot run. triton is optional (``pip install 'titans-seq[gpu]'``) and imported only
  here, on first use.
- ``"torch"``: the pure-PyTorch path (the reference both kernels are tested against).
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import shutil
import threading
import warnings
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .checks import choice

from .coefficients import ChunkCoefficients

KERNELS = ("auto", "native", "torch", "triton")
KERNEL_VARIABLE = "TITANS_SEQ_KERNEL"
INTERPRET_VARIABLE = "TRITON_INTERPRET"  # Triton's own switch to its CPU interpreter
TRITON_DEPTHS = (1, 2)  # the memory depths triton_scan.py writes out
_SOURCES = [Path(__file__).with_name("csrc") / name
            for name in ("chunk_step.cpp", "causal_conv.cpp", "layer_ops.cpp")]
_HEADERS = [Path(__file__).with_name("csrc") / name
            for name in ("dense.h", "gates.h", "chunk_math.h")]
# Tried in order: the fast flags, then plain ones for a compiler without OpenMP or -march.
_FLAG_SETS = (["-O3", "-march=native", "-fopenmp"], ["-O3"])
_logger = logging.getLogger(__name__)


class NativeKernelWarning(UserWarning):
    """The native memory kernel could not be built; the pure-PyTorch path runs instead."""


def check_kernel(kernel: str, name: str = "kernel") -> str:
    """``kernel`` as one of :data:`KERNELS` (``name``: the parameter's name in messages)."""
    return choice(name, kernel, KERNELS)


def uses_native(kernel: str, tensor: Tensor) -> bool:
    """Whether a call with option ``kernel`` on ``tensor``'s device runs the native kernel."""
    return select_kernel(kernel, tensor) == "native"


def select_kernel(kernel: str, tensor: Tensor, depth: int | None = None) -> str:
    """The sweep a call with option ``kernel`` runs on ``tensor``'s device: ``"native"``,
    ``"triton"`` or ``"torch"`` (``depth``: the memory's layers, when known); raises when a
    forced kernel cannot run."""
    if kernel == "auto":
        kernel = os.environ.get(KERNEL_VARIABLE, "auto").strip().lower() or "auto"
        if kernel not in KERNELS:
            raise ValueError(f"the environment variable {KERNEL_VARIABLE} must be one of "
                             f"{', '.join(KERNELS)}, got {os.environ[KERNEL_VARIABLE]!r}; "
                             "unset it for the default")
    if kernel == "torch":
        return "torch"
    if kernel == "auto":
        if torch.compiler.is_compiling():
            return "torch"
        if tensor.device.type == "cuda":
            supported = depth is None or depth in TRITON_DEPTHS
            return "triton" if supported and triton_available() else "torch"
        return "native" if tensor.device.type == "cpu" and native_available() else "torch"
    if kernel == "triton":
        _check_triton(tensor, depth)
        return "triton"
    if tensor.device.type != "cpu":
        raise ValueError(f"kernel='native' runs on the CPU, the inputs are on {tensor.device}; "
                         "use kernel='auto' (the Triton kernel or the pure-PyTorch path on "
                         "other devices)")
    if torch.compiler.is_compiling():
        raise ValueError("kernel='native' cannot be traced by torch.compile; use kernel='auto' "
                         "or 'torch' inside a compiled function")
    if not native_available():
        raise RuntimeError(f"kernel='native': the native memory kernel could not be built "
                           f"({_build['error']}); use kernel='auto' to fall back to PyTorch")
    return "native"


def _check_triton(tensor: Tensor, depth: int | None) -> None:
    """Raise, saying why and what to use instead, when ``kernel='triton'`` cannot run."""
    interpreted = os.environ.get(INTERPRET_VARIABLE, "").strip().lower() in ("1", "true", "on")
    if tensor.device.type != "cuda" and not (tensor.device.type == "cpu" and interpreted):
        raise ValueError(f"kernel='triton' runs on CUDA tensors, the inputs are on "
                         f"{tensor.device}; on the CPU set {INTERPRET_VARIABLE}=1 before the "
                         "first kernel='triton' call (Triton's interpreter: slow, for tests), "
                         "or use kernel='auto'")
    if depth is not None and depth not in TRITON_DEPTHS:
        raise ValueError(f"kernel='triton' implements a memory of depth 1 or 2 (linear, or one "
                         f"hidden layer), this one has {depth} layers; use kernel='auto' (the "
                         "pure-PyTorch path on the GPU) or 'torch'")
    if torch.compiler.is_compiling():
        raise ValueError("kernel='triton' cannot be traced by torch.compile; use kernel='auto' "
                         "or 'torch' inside a compiled function")
    if not triton_available():
        raise RuntimeError(f"kernel='triton' needs the triton package ({_triton['error']}); "
                           "install it with pip install 'titans-seq[gpu]' (triton>=3.2), or "
                           "use kernel='auto'")


_triton: dict = {"tried": False, "loaded": False, "error": None, "version": None}


def triton_available() -> bool:
    """True when triton imports (it is imported on the first call, never with the package)."""
    if not _triton["tried"]:
        try:
            import triton  # optional: only the Triton kernel needs it
            _triton["version"], _triton["loaded"] = triton.__version__, True
        except Exception as error:  # not installed, or broken: the kernel cannot run
            _triton["error"] = _short_reason(error)
        _triton["tried"] = True
    return _triton["loaded"]


# ---- building and loading

_build: dict = {"tried": False, "loaded": False, "error": None}
_build_lock = threading.Lock()


def native_available() -> bool:
    """True when the native kernel is (or can now be) built and loaded; builds it on first call."""
    if not _build["tried"]:
        with _build_lock:
            if not _build["tried"]:
                try:
                    _load()
                    _build["loaded"] = True
                except Exception as error:  # any failure means: use the fallback
                    reason = _short_reason(error)
                    _build["error"] = reason
                    warnings.warn(f"titans_seq: native memory kernel unavailable ({reason}); "
                                  "using the pure-PyTorch path", NativeKernelWarning,
                                  stacklevel=3)
                _build["tried"] = True
    return _build["loaded"]


def _short_reason(error: Exception) -> str:
    """The compiler's first error line when there is one (not the whole command line)."""
    lines = str(error).splitlines()
    reason = next((line for line in lines if "error:" in line), lines[0] if lines else "")
    return " ".join(reason.split())[:240] or type(error).__name__


def _cpu_signature() -> str:
    """What distinguishes one processor's ``-march=native`` build from another's."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith(("flags", "Features")))
    except (OSError, StopIteration):
        flags = ""
    return f"{platform.machine()} {flags}"


def _load() -> None:
    from torch.utils import cpp_extension
    if shutil.which("ninja") is None:  # the ninja wheel's binary, when it is not on PATH
        try:
            import ninja
            os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")
        except ImportError:
            pass
    source = b"\0".join(path.read_bytes() for path in _SOURCES + _HEADERS)
    errors: list[Exception] = []
    for flags in _FLAG_SETS:
        key = hashlib.sha1(b"\0".join([source, " ".join(flags).encode(),
                                       _cpu_signature().encode(),
                                       torch.__version__.encode()])).hexdigest()[:12]
        name = f"titans_seq_chunk_step_{key}"
        _logger.info("loading (or building, once) the native memory kernel %s", name)
        try:
            cpp_extension.load(name=name, sources=[str(path) for path in _SOURCES],
                               extra_cflags=flags,
                               extra_ldflags=[f for f in flags if f == "-fopenmp"],
                               is_python_module=False, verbose=False)
            if errors:  # built, but without the fast flags: parallel rows and vectors lost
                warnings.warn(f"titans_seq: native memory kernel built without "
                              f"{' '.join(_FLAG_SETS[0])} ({_short_reason(errors[0])}); it "
                              "runs serially and slower", NativeKernelWarning, stacklevel=4)
            return
        except Exception as error:
            errors.append(error)
    raise errors[0]


# ---- the op with its hand-written backward

def _backward(ctx, grads: Sequence[Tensor], op) -> tuple[Tensor | None, ...]:
    """Both native scans' backward: ``op`` on what their forward saved (seven inputs, the
    selection, the chunk starts and the gradient point): the gradients of the seven inputs,
    the memory and, when the call had one, the gradient point."""
    depth, saved = ctx.depth, ctx.saved_tensors  # unpacked once (checkpointing asks so)
    inputs, select = saved[:7], saved[7]
    starts, point = saved[8:8 + depth], saved[8 + depth:]
    grads = [g.contiguous() for g in grads]
    grad_after, grad_reads, grad_selected = grads[:depth], grads[depth], grads[depth + 1:]
    *grad_inputs, grad_memory, grad_point = op(
        *inputs, list(starts), list(point), select, ctx.max_norm, grad_after, grad_reads,
        grad_selected)
    return (*grad_inputs, *grad_memory, *(grad_point if ctx.has_point else ()))


class _NativeBlock(torch.autograd.Function):
    """Autograd wrapper: ``forward`` and ``backward`` are the two native ops."""

    @staticmethod
    def forward(ctx, max_norm: float, depth: int, select: Tensor, queries: Tensor, keys: Tensor,
                values: Tensor, transition: Tensor, update_weights: Tensor,
                token_weights: Tensor, read_weights: Tensor, *memory_and_point: Tensor):
        memory, point = list(memory_and_point[:depth]), list(memory_and_point[depth:])
        after, reads, selected, starts = torch.ops.titans_seq.scan_forward(
            queries, keys, values, transition, update_weights, token_weights, read_weights,
            memory, point, select, max_norm, True)
        ctx.save_for_backward(queries, keys, values, transition, update_weights, token_weights,
                              read_weights, select, *starts, *point)
        ctx.max_norm, ctx.depth, ctx.has_point = max_norm, depth, bool(point)
        return (*after, reads, *selected)

    @staticmethod
    @once_differentiable
    def backward(ctx, *grads: Tensor):
        return (None, None, None, *_backward(ctx, grads, torch.ops.titans_seq.scan_backward))


def _sequence_operands(queries: Tensor, keys: Tensor, values: Tensor, rows: int
                       ) -> list[Tensor]:
    """q, k, v ``(B, H, N, C, D)`` as the kernels take them: ``(B·H, N, C, D)``, contiguous."""
    return [x.reshape(rows, *x.shape[2:]).contiguous() for x in (queries, keys, values)]


def _state_operands(memory: Sequence[Tensor], point: Sequence[Tensor] | None, rows: int
                    ) -> list[Tensor]:
    """Per layer ``[W; S]`` ``(B·H, 2, D_in, D_out)``, then the gradient point's weights
    ``(B·H, D_in, D_out)`` when there is one, contiguous."""
    return [m.reshape(rows, *m.shape[2:]).contiguous() for m in memory] + \
        [p.reshape(rows, *p.shape[2:]).contiguous() for p in point or ()]


def _unflat(outputs: Sequence[Tensor], depth: int, shape: torch.Size
            ) -> tuple[list[Tensor], Tensor, list[Tensor]]:
    """The kernels' outputs with the batch and head axes of ``shape`` ``(B, H, N, C, D)`` back:
    the memory ``(B, H, 2, D_in, D_out)`` per layer, the reads ``(B, H, N, C, D_v)``, the
    selected weights ``(B, H, D_in, D_out)`` per layer."""
    batch, heads, chunks, chunk_size, _ = shape
    memory_after = [m.view(batch, heads, *m.shape[1:]) for m in outputs[:depth]]
    reads = outputs[depth].view(batch, heads, chunks, chunk_size, -1)
    selected = [s.view(batch, heads, *s.shape[1:]) for s in outputs[depth + 1:]]
    return memory_after, reads, selected


def native_block(queries: Tensor, keys: Tensor, values: Tensor,
                 coefficients: ChunkCoefficients, memory: Sequence[Tensor],
                 first_gradient_point: Sequence[Tensor] | None,
                 max_surprise_norm: float | None, select: Tensor
                 ) -> tuple[list[Tensor], Tensor, list[Tensor]]:
    """One block of chunks through the native kernel: the sequential pass of
    :func:`.chunked._advance` and the reads of :func:`.chunked._retrieve` in one sweep.

    ``queries, keys, values (B, H, N, C, D)``; ``memory[l]`` ``[W; S]`` (B, H, 2, D_in, D_out);
    ``first_gradient_point[l]`` (B, H, D_in, D_out) or None; ``select (B,)`` int64, a chunk
    of the block per batch row (or −1). Returns the memory after the block, the reads
    ``(B, H, N, C, D_v)`` and per layer the weights at the start of each row's selected chunk
    ``(B, H, D_in, D_out)`` (zeros for −1).
    """
    batch, heads, chunks, chunk_size, _ = keys.shape
    rows = batch * heads
    depth = len(memory)

    def flat(x: Tensor, *shape: int) -> Tensor:
        return x.reshape(rows, *shape).contiguous()
    operands = _sequence_operands(queries, keys, values, rows)  # (B·H, N, C, D) each
    operands += [flat(coefficients.transition, chunks, 2, 2),  # (B·H, N, 2, 2)
                 flat(coefficients.update_weights, chunks, 2, chunk_size),  # (B·H, N, 2, C)
                 flat(coefficients.token_weights, chunks, chunk_size, chunk_size),  # (·, C, C)
                 flat(coefficients.read_weights, chunks, chunk_size, 2)]  # (B·H, N, C, 2)
    operands += _state_operands(memory, first_gradient_point, rows)
    select = select.repeat_interleave(heads).contiguous()  # (B·H,)
    max_norm = float(max_surprise_norm) if max_surprise_norm is not None else 0.0
    if torch.is_grad_enabled() and any(t.requires_grad for t in operands):
        outputs = _NativeBlock.apply(max_norm, depth, select, *operands)
    else:  # no gradients: the chunk starts are not kept
        after, reads, selected, _ = torch.ops.titans_seq.scan_forward(
            *operands[:7], operands[7:7 + depth], operands[7 + depth:], select, max_norm, False)
        outputs = (*after, reads, *selected)
    return _unflat(outputs, depth, keys.shape)


class _NativeScan(torch.autograd.Function):
    """Autograd wrapper of the gated ops: the coefficients come from the gates inside them."""

    @staticmethod
    def forward(ctx, max_norm: float, depth: int, select: Tensor, valid: Tensor,
                queries: Tensor, keys: Tensor, values: Tensor, theta: Tensor, eta: Tensor,
                alpha: Tensor, *memory_and_point: Tensor):
        memory, point = list(memory_and_point[:depth]), list(memory_and_point[depth:])
        after, reads, selected, starts = torch.ops.titans_seq.gated_scan_forward(
            queries, keys, values, theta, eta, alpha, valid, memory, point, select, max_norm,
            True)
        ctx.save_for_backward(queries, keys, values, theta, eta, alpha, valid, select, *starts,
                              *point)
        ctx.max_norm, ctx.depth, ctx.has_point = max_norm, depth, bool(point)
        return (*after, reads, *selected)

    @staticmethod
    @once_differentiable
    def backward(ctx, *grads: Tensor):
        return (None, None, None, None,
                *_backward(ctx, grads, torch.ops.titans_seq.gated_scan_backward))


def native_scan(queries: Tensor, keys: Tensor, values: Tensor,
                gates: tuple[Tensor, Tensor, Tensor], valid: Tensor, memory: Sequence[Tensor],
                first_gradient_point: Sequence[Tensor] | None,
                max_surprise_norm: float | None, select: Tensor
                ) -> tuple[list[Tensor], Tensor, list[Tensor]]:
    """:func:`native_block` with the gate coefficients computed inside the kernel, from the
    gates ``θ, η, α`` ``(B, H, N, C)`` and ``valid`` ``(B, 1, N, C)`` (bool) as
    :func:`.coefficients.chunk_coefficients` takes them, rather than passed in.

    Why: the coefficients in PyTorch are many small ops forward and backward (C × C per chunk);
    the kernel builds them per chunk in cache (``csrc/gates.h``), and the whole call is one
    sweep (no blocks, so no splits, copies and concatenations between them).
    """
    batch, heads, chunks, chunk_size, _ = keys.shape
    rows = batch * heads
    depth = len(memory)
    operands = _sequence_operands(queries, keys, values, rows)
    operands += [gate.reshape(rows, chunks, chunk_size).contiguous()  # (B·H, N, C)
                 for gate in gates]
    operands += _state_operands(memory, first_gradient_point, rows)
    valid = valid.reshape(batch, chunks, chunk_size).to(keys.dtype)  # (B, N, C), 1 or 0
    select = select.repeat_interleave(heads).contiguous()  # (B·H,)
    max_norm = float(max_surprise_norm) if max_surprise_norm is not None else 0.0
    if torch.is_grad_enabled() and any(t.requires_grad for t in operands):
        outputs = _NativeScan.apply(max_norm, depth, select, valid, *operands)
    else:  # no gradients: the chunk starts are not kept
        after, reads, selected, _ = torch.ops.titans_seq.gated_scan_forward(
            *operands[:6], valid, operands[6:6 + depth], operands[6 + depth:], select, max_norm,
            False)
        outputs = (*after, reads, *selected)
    return _unflat(outputs, depth, keys.shape)


class _NativeCausalConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, extended: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        ctx.save_for_backward(extended, weight)
        return torch.ops.titans_seq.causal_conv_forward(extended, weight, bias)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y: Tensor):
        extended, weight = ctx.saved_tensors
        return torch.ops.titans_seq.causal_conv_backward(extended, weight, grad_y.contiguous())


def native_causal_conv(extended: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """The depthwise causal convolution of :class:`.CausalDepthwiseConv1d` through the native
    kernel (``csrc/causal_conv.cpp``): ``extended (B, K − 1 + T, channels)`` (the previous
    inputs, then the call's), ``weight (channels, K)``, ``bias (channels,)`` →
    ``(B, T, channels)``."""
    operands = [extended.contiguous(), weight.contiguous(), bias.contiguous()]
    if torch.is_grad_enabled() and any(t.requires_grad for t in operands):
        return _NativeCausalConv.apply(*operands)
    return torch.ops.titans_seq.causal_conv_forward(*operands)


class _NativeQKV(torch.autograd.Function):
    @staticmethod
    def forward(ctx, projected: Tensor, eps: float):
        ctx.save_for_backward(projected)
        ctx.eps = eps
        return tuple(torch.ops.titans_seq.qkv_activation_forward(projected, eps))

    @staticmethod
    @once_differentiable
    def backward(ctx, *grads: Tensor):
        projected, = ctx.saved_tensors
        return torch.ops.titans_seq.qkv_activation_backward(
            projected, [g.contiguous() for g in grads], ctx.eps), None


def native_qkv_activation(projected: Tensor, eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """``projected (B, T, 3, H, D)`` → ``q, k, v`` each ``(B, H, T, D)`` contiguous: SiLU, and
    for q and k the ℓ2 norm ``s / sqrt(‖s‖² + D·eps)`` (``csrc/layer_ops.cpp``): one pass instead
    of the layer's SiLU, RMSNorm, slices and permutes (and their backward)."""
    projected = projected.contiguous()
    if torch.is_grad_enabled() and projected.requires_grad:
        return _NativeQKV.apply(projected, eps)
    return tuple(torch.ops.titans_seq.qkv_activation_forward(projected, eps))


class _NativeGatedOutput(torch.autograd.Function):
    @staticmethod
    def forward(ctx, reads: Tensor, weight: Tensor, gate: Tensor, eps: float) -> Tensor:
        ctx.save_for_backward(reads, weight, gate)
        ctx.eps = eps
        return torch.ops.titans_seq.gated_output_forward(reads, weight, gate, eps)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y: Tensor):
        reads, weight, gate = ctx.saved_tensors
        grads = torch.ops.titans_seq.gated_output_backward(reads, weight, gate,
                                                           grad_y.contiguous(), ctx.eps)
        return (*grads, None)


def native_gated_output(reads: Tensor, weight: Tensor, gate: Tensor, eps: float) -> Tensor:
    """``reads (B, H, T, D)``, ``weight (H, D)``, ``gate (B, T, H·D)`` → ``(B, T, H·D)``:
    ``rms_norm(reads) · weight``, heads side by side, times ``SiLU(gate)``
    (``csrc/layer_ops.cpp``): one pass instead of a transpose, the norm and the gating."""
    operands = [reads.contiguous(), weight.contiguous(), gate.contiguous()]
    if torch.is_grad_enabled() and any(t.requires_grad for t in operands):
        return _NativeGatedOutput.apply(*operands, eps)
    return torch.ops.titans_seq.gated_output_forward(*operands, eps)

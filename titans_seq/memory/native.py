"""The native CPU kernel of the scan's sequential part, with its pure-PyTorch fallback.

``csrc/chunk_step.cpp`` runs every chunk of a block for all batch × head rows at once (rows in
parallel across cores, each row's memory kept in cache) and has a hand-written backward; it
computes what :func:`.chunked._advance` computes with PyTorch ops. It is compiled with
``torch.utils.cpp_extension`` on first use (about 10 s) and cached under
``TORCH_EXTENSIONS_DIR`` (default ``~/.cache/torch_extensions``), keyed by the source, the
flags and the CPU, so a shared home never loads a build made for another processor.

Which path runs is the ``kernel`` option of :func:`.memory_scan` and ``NeuralMemory``:

- ``"auto"`` (default): the native kernel for CPU tensors when it builds, otherwise (no
  compiler, another device, inside ``torch.compile``) the pure-PyTorch path; a failed build
  says so once, in one line, and never raises. The environment variable
  ``TITANS_SEQ_KERNEL`` (``native`` or ``torch``) makes ``"auto"`` mean that kernel for a whole
  process.
- ``"native"``: the native kernel, or an error that says why it cannot run.
- ``"torch"``: the pure-PyTorch path (the reference the native kernel is tested against).
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

from datamodules.checks import choice

KERNELS = ("auto", "native", "torch")
KERNEL_VARIABLE = "TITANS_SEQ_KERNEL"
_SOURCE = Path(__file__).with_name("csrc") / "chunk_step.cpp"
# Tried in order: the fast flags, then plain ones for a compiler without OpenMP or -march.
_FLAG_SETS = (["-O3", "-march=native", "-fopenmp"], ["-O3"])
_logger = logging.getLogger(__name__)


class NativeKernelWarning(UserWarning):
    """The native memory kernel could not be built; the pure-PyTorch path runs instead."""


def check_kernel(kernel: str) -> str:
    """``kernel`` as one of :data:`KERNELS`."""
    return choice("kernel", kernel, KERNELS)


def uses_native(kernel: str, tensor: Tensor) -> bool:
    """Whether a call with option ``kernel`` on ``tensor``'s device runs the native kernel."""
    if kernel == "auto":
        kernel = os.environ.get(KERNEL_VARIABLE, "auto").strip().lower() or "auto"
        if kernel not in KERNELS:
            raise ValueError(f"the environment variable {KERNEL_VARIABLE} must be one of "
                             f"{', '.join(KERNELS)}, got {os.environ[KERNEL_VARIABLE]!r}; "
                             "unset it for the default")
    if kernel == "torch":
        return False
    if kernel == "auto":
        if tensor.device.type != "cpu" or torch.compiler.is_compiling():
            return False
        return native_available()
    if tensor.device.type != "cpu":
        raise ValueError(f"kernel='native' runs on the CPU, the inputs are on {tensor.device}; "
                         "use kernel='auto' (the pure-PyTorch path on other devices)")
    if torch.compiler.is_compiling():
        raise ValueError("kernel='native' cannot be traced by torch.compile; use kernel='auto' "
                         "or 'torch' inside a compiled function")
    if not native_available():
        raise RuntimeError(f"kernel='native': the native memory kernel could not be built "
                           f"({_build['error']}); use kernel='auto' to fall back to PyTorch")
    return True


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
    source = _SOURCE.read_bytes()
    errors = []
    for flags in _FLAG_SETS:
        key = hashlib.sha1(b"\0".join([source, " ".join(flags).encode(),
                                       _cpu_signature().encode(),
                                       torch.__version__.encode()])).hexdigest()[:12]
        name = f"titans_seq_chunk_step_{key}"
        _logger.info("loading (or building, once) the native memory kernel %s", name)
        try:
            cpp_extension.load(name=name, sources=[str(_SOURCE)], extra_cflags=flags,
                               extra_ldflags=[f for f in flags if f == "-fopenmp"],
                               is_python_module=False, verbose=False)
            return
        except Exception as error:
            errors.append(error)
    raise errors[0]


# ---- the op with its hand-written backward

class _NativeAdvance(torch.autograd.Function):
    """Autograd wrapper: ``forward`` and ``backward`` are the two native ops."""

    @staticmethod
    def forward(ctx, max_norm: float, depth: int, keys: Tensor, values: Tensor,
                transition: Tensor, update_weights: Tensor, *memory_and_point: Tensor):
        memory, point = list(memory_and_point[:depth]), list(memory_and_point[depth:])
        after, inputs, grads, starts = torch.ops.titans_seq.advance_forward(
            keys, values, transition, update_weights, memory, point, max_norm)
        ctx.save_for_backward(keys, values, transition, update_weights, *starts, *point)
        ctx.max_norm, ctx.depth, ctx.has_point = max_norm, depth, bool(point)
        return (*after, *inputs, *grads, *starts)

    @staticmethod
    @once_differentiable
    def backward(ctx, *grads: Tensor):
        depth = ctx.depth
        keys, values, transition, update_weights, *rest = ctx.saved_tensors
        starts, point = rest[:depth], rest[depth:]
        grads = [g.contiguous() for g in grads]
        grad_after = grads[:depth]
        grad_inputs = grads[depth:2 * depth - 1]
        grad_factors = grads[2 * depth - 1:3 * depth - 1]
        grad_starts = grads[3 * depth - 1:]
        grad_keys, grad_values, grad_transition, grad_update, grad_memory, grad_point = \
            torch.ops.titans_seq.advance_backward(
                keys, values, transition, update_weights, list(starts), list(point),
                ctx.max_norm, grad_after, grad_inputs, grad_factors, grad_starts)
        return (None, None, grad_keys, grad_values, grad_transition, grad_update,
                *grad_memory, *(grad_point if ctx.has_point else ()))


def native_advance(keys: Tensor, values: Tensor, transition: Tensor, update_weights: Tensor,
                   memory: Sequence[Tensor], first_gradient_point: Sequence[Tensor] | None,
                   max_surprise_norm: float | None
                   ) -> tuple[list[Tensor], list[tuple[Tensor, Tensor]], list[Tensor]]:
    """:func:`.chunked._advance` through the native kernel: same arguments and results.

    ``keys, values (B, H, N, C, D)``, ``transition (B, H, N, 2, 2)``,
    ``update_weights (B, H, N, 2, 1, C)``, ``memory[l]`` ``[W; S]`` (B, H, 2, D_in, D_out),
    ``first_gradient_point[l]`` (B, H, D_in, D_out) or None.
    """
    batch, heads, chunks, chunk_size, _ = keys.shape
    rows = batch * heads
    depth = len(memory)
    flat = [keys.reshape(rows, chunks, chunk_size, -1).contiguous(),  # (B·H, N, C, D_k)
            values.reshape(rows, chunks, chunk_size, -1).contiguous(),  # (B·H, N, C, D_v)
            transition.reshape(rows, chunks, 2, 2).contiguous(),  # (B·H, N, 2, 2)
            update_weights.reshape(rows, chunks, 2, chunk_size).contiguous()]  # (B·H, N, 2, C)
    flat += [m.reshape(rows, 2, *m.shape[-2:]).contiguous() for m in memory]  # (B·H, 2, Di, Do)
    if first_gradient_point:
        flat += [p.reshape(rows, *p.shape[-2:]).contiguous()
                 for p in first_gradient_point]  # (B·H, D_in, D_out)
    max_norm = float(max_surprise_norm) if max_surprise_norm is not None else 0.0
    if torch.is_grad_enabled() and any(t.requires_grad for t in flat):
        outputs = _NativeAdvance.apply(max_norm, depth, *flat)
    else:
        after, inputs, grads, starts = torch.ops.titans_seq.advance_forward(
            *flat[:4], flat[4:4 + depth], flat[4 + depth:], max_norm)
        outputs = (*after, *inputs, *grads, *starts)
    after = outputs[:depth]
    inputs = outputs[depth:2 * depth - 1]
    grads = outputs[2 * depth - 1:3 * depth - 1]
    starts = outputs[3 * depth - 1:]
    memory_after = [m.view(batch, heads, *m.shape[1:]) for m in after]  # (B, H, 2, D_in, D_out)
    layer_inputs = [keys] + [a.view(batch, heads, chunks, chunk_size, -1)
                             for a in inputs]  # (B, H, N, C, D_in)
    factors = [(a, d.view(batch, heads, chunks, chunk_size, -1))  # (B, H, N, C, D_out)
               for a, d in zip(layer_inputs, grads)]
    starts = [s.view(batch, heads, *s.shape[1:]) for s in starts]  # (B, H, N, 2, D_in, D_out)
    return memory_after, factors, starts

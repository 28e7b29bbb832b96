"""The per-chunk sweep of the memory scan as a Triton kernel (CUDA, or the CPU under Triton's
interpreter), with a readable PyTorch reference of the same signature.

:func:`triton_block` takes and returns what :func:`.native.native_block` does: one block of
chunks, the sequential pass of :func:`.chunked._advance` and the reads of
:func:`.chunked._retrieve` fused into one sweep. :func:`reference_block` computes the same block
with those two PyTorch functions; the tests compare the two, and the backward pass runs it.

The forward kernel
------------------
One program per batch × head row walks the block's chunks in order and holds the row's memory
``[W; S]`` (every layer, fp32 or fp64: the op's compute dtype, so bf16/fp16 inputs under autocast
arrive upcast) in registers from the first chunk to the last. Per chunk, with ``[W; S]`` its
start memory and ``P`` its gradient point (``W``, or for a call that begins mid-chunk the open
chunk's start weights):

1. the surprise factors (Eqs. 12 and 16): the chunk's keys through the memory MLP at ``P`` and
   back, ``a_0 = k``, ``z_l = a_l P_l``, ``a_{l+1} = silu(z_l)``, ``δ_{L−1} = 2 (z_{L−1} − v)``,
   ``δ_l = (δ_{l+1} P_{l+1}ᵀ) ⊙ silu'(z_l)``, each token's ``δ`` scaled by
   ``min(1, τ / ‖u_i‖)`` with ``max_surprise_norm = τ``;
2. the reads, every token at its own weights (Eq. 15):
   ``o_l = diag(R_0) h_l W_l + diag(R_1) h_l S_l − ((h_l a_lᵀ) ⊙ TW) δ_l``, ``h_0 = q``,
   ``h_{l+1} = silu(o_l)``, the read ``y = o_{L−1}``;
3. the update (Eqs. 13 and 18), for the slots ``s`` of ``[W; S]``:
   ``[W'; S']_l[s] = Σ_r T[s, r] [W; S]_l[r] + a_lᵀ diag(U_s) δ_l``,

``T, U, TW, R`` being the chunk's gate coefficients (:mod:`.coefficients`, computed for all chunks
in PyTorch before the sweep). A chunk's activations never leave the program; only its reads are
written, and the memory once, after the block. Memory depths 1 and 2 (a linear memory, or one
hidden layer) are written out; deeper memories are refused before the call (:mod:`.native`).

Every dimension is padded to a power of two of at least 16 (``tl.dot``'s smallest tile) with
zeros, which is exact: a zero key, value or weight adds nothing to any product, and
``silu(0) = 0``. The products run in IEEE precision (no TF32), since the recurrence compounds
every rounding from chunk to chunk. Each program holds ``2 · D_in · D_out`` values per layer in
registers, which suits small heads: compiled ahead of time for sm_90, a 16-64-16 memory spills
4 bytes (8 warps), a 32-128-32 one about 6 KB even at 16 warps; larger memories would want the
state split across programs or kept in shared memory. The kernel's speed is not yet measured on
a GPU.

The backward pass: recomputation
--------------------------------
The backward pass recomputes the block through the pure-PyTorch chunked path
(:func:`reference_block`) and takes its exact gradients with ``torch.autograd.grad``, as fla
recomputes some forward passes in backward instead of storing them: the kernel saves only its
inputs. Training therefore runs the block's forward twice (once in Triton, once in PyTorch); a
hand-written Triton backward, as ``csrc/chunk_step.cpp`` has on the CPU, would remove that.

Triton is optional: :mod:`titans_seq` never imports this module at import time; the scan imports
it on the first ``kernel="triton"`` block (:mod:`.native` checks first that triton imports). Its
kernels are decorated then, so ``TRITON_INTERPRET=1`` (the interpreter, for CPU tensors) must be
set before that first call.
"""

from __future__ import annotations

import contextlib
from typing import Sequence

import torch
import triton
import triton.language as tl
from torch import Tensor
from torch.autograd.function import once_differentiable

from .chunked import _advance, _retrieve, _select_chunk_start
from .coefficients import ChunkCoefficients

# ---- the kernel's pieces: tiles, the surprise, the reads, the update


@triton.jit
def _load(base, n_rows, n_cols, ROWS: tl.constexpr, COLS: tl.constexpr):
    """A row-major ``n_rows × n_cols`` matrix at ``base`` as a ``ROWS × COLS`` tile, zero-padded."""
    rows = tl.arange(0, ROWS)[:, None]
    cols = tl.arange(0, COLS)[None, :]
    return tl.load(base + rows * n_cols + cols, mask=(rows < n_rows) & (cols < n_cols), other=0.0)


@triton.jit
def _store(base, tile, n_rows, n_cols, ROWS: tl.constexpr, COLS: tl.constexpr):
    """Write the ``n_rows × n_cols`` corner of ``tile`` at ``base`` (row-major)."""
    rows = tl.arange(0, ROWS)[:, None]
    cols = tl.arange(0, COLS)[None, :]
    tl.store(base + rows * n_cols + cols, tile, mask=(rows < n_rows) & (cols < n_cols))


@triton.jit
def _store_if(base, tile, n_rows, n_cols, keep, ROWS: tl.constexpr, COLS: tl.constexpr):
    """:func:`_store` when the scalar ``keep`` is true (no rows otherwise: a mask, no branch)."""
    _store(base, tile, tl.where(keep, n_rows, 0), n_cols, ROWS, COLS)


@triton.jit
def _mm(a, b):
    # IEEE products, not TF32: a rounding error in one chunk's update is carried to all later ones
    return tl.dot(a, b, input_precision="ieee")


# No calls of triton.language's own @jit helpers (tl.sum, tl.sigmoid) below: they are compiled
# for the GPU when triton was imported before TRITON_INTERPRET was set (torch's dynamo imports
# triton whenever it is installed), and then cannot run under the interpreter.

@triton.jit
def _row_sums(x):
    # tl.sum's own reduction: the interpreter recognises its combine function and sums in numpy
    return tl.reduce(x, 1, tl.standard._sum_combine)


@triton.jit
def _sigmoid(x):
    return 1 / (1 + tl.exp(-x))


@triton.jit
def _gates(transition, update, read, token, index, chunk, BC: tl.constexpr):
    """Chunk ``index``'s coefficients: ``T`` (four scalars), ``U_0, U_1, R_0, R_1`` (per token)
    and ``TW`` (tokens × tokens), zero beyond the chunk's ``chunk`` tokens."""
    tokens = tl.arange(0, BC)
    inside = tokens < chunk
    t = transition + index * 4
    u0 = tl.load(update + index * 2 * chunk + tokens, mask=inside, other=0.0)
    u1 = tl.load(update + index * 2 * chunk + chunk + tokens, mask=inside, other=0.0)
    r0 = tl.load(read + index * 2 * chunk + 2 * tokens, mask=inside, other=0.0)
    r1 = tl.load(read + index * 2 * chunk + 2 * tokens + 1, mask=inside, other=0.0)
    token_weights = _load(token + index * chunk * chunk, chunk, chunk, BC, BC)
    return (tl.load(t), tl.load(t + 1), tl.load(t + 2), tl.load(t + 3), u0, u1, r0, r1,
            token_weights)


@triton.jit
def _clip_factor(squared, tau):
    """``min(1, τ / ‖u_i‖)`` from ``‖u_i‖²`` (:func:`.chunked.clip_factor`)."""
    return tau / tl.sqrt(tl.maximum(squared, tau * tau))


@triton.jit
def _linear_surprise(k, v, P, tau, CLIP: tl.constexpr):
    """``δ = 2 (k P − v)`` (Eq. 12), the gradient ``u_i = k_iᵀ δ_i`` of a linear memory."""
    d = 2 * (_mm(k, P) - v)
    if CLIP:  # ‖k_iᵀ δ_i‖_F = ‖k_i‖ ‖δ_i‖ for a rank-1 term
        d = d * _clip_factor(_row_sums(k * k) * _row_sums(d * d), tau)[:, None]
    return d


@triton.jit
def _deep_surprise(k, v, P1, P2, tau, CLIP: tl.constexpr):
    """The factors ``a = silu(k P1)``, ``δ_1``, ``δ_2`` of ``u_i`` for a two-layer memory."""
    z = _mm(k, P1)
    gate = _sigmoid(z)
    a = z * gate
    d2 = 2 * (_mm(a, P2) - v)
    d1 = _mm(d2, tl.trans(P2)) * gate * (1 + z * (1 - gate))  # silu'(z) = σ (1 + z (1 − σ))
    if CLIP:  # ‖u_i‖² sums both layers' rank-1 terms
        squared = _row_sums(k * k) * _row_sums(d1 * d1) + _row_sums(a * a) * _row_sums(d2 * d2)
        factor = _clip_factor(squared, tau)[:, None]
        d1 = d1 * factor
        d2 = d2 * factor
    return a, d1, d2


@triton.jit
def _read(h, a, d, W, S, token_weights, r0, r1):
    """One layer's read of every token at its own weights:
    ``diag(R_0) h W + diag(R_1) h S − ((h aᵀ) ⊙ TW) δ`` (the ``θ u`` terms enter with a minus)."""
    scores = _mm(h, tl.trans(a)) * token_weights
    return r0[:, None] * _mm(h, W) + r1[:, None] * _mm(h, S) - _mm(scores, d)


@triton.jit
def _update(W, S, a, d, t00, t01, t10, t11, u0, u1):
    """One layer's ``[W; S]`` after the chunk: ``T [W; S] + [U_0; U_1] ⊙ aᵀ δ``."""
    new_w = t00 * W + t01 * S + _mm(tl.trans(a * u0[:, None]), d)
    new_s = t10 * W + t11 * S + _mm(tl.trans(a * u1[:, None]), d)
    return new_w, new_s


# ---- the kernels: one program per batch × head row, a loop over the block's chunks


@triton.jit
def _linear_kernel(queries, keys, values, transition, update, token, read, memory, point,
                   select, max_norm, after, reads, selected, num_chunks, chunk, d_k, d_v,
                   HAS_POINT: tl.constexpr, CLIP: tl.constexpr, BC: tl.constexpr,
                   BK: tl.constexpr, BV: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    size = d_k * d_v
    W = _load(memory + row * 2 * size, d_k, d_v, BK, BV)
    S = _load(memory + row * 2 * size + size, d_k, d_v, BK, BV)
    first_point = W
    if HAS_POINT:  # the call begins mid-chunk: chunk 0's gradients at the open chunk's start
        first_point = _load(point + row * size, d_k, d_v, BK, BV)
    tau = tl.load(max_norm)
    chosen = tl.load(select + row)
    for n in range(num_chunks):
        index = row * num_chunks + n
        t00, t01, t10, t11, u0, u1, r0, r1, token_weights = _gates(
            transition, update, read, token, index, chunk, BC)
        k = _load(keys + index * chunk * d_k, chunk, d_k, BC, BK)
        v = _load(values + index * chunk * d_v, chunk, d_v, BC, BV)
        q = _load(queries + index * chunk * d_k, chunk, d_k, BC, BK)
        d = _linear_surprise(k, v, tl.where(n == 0, first_point, W), tau, CLIP)
        y = _read(q, k, d, W, S, token_weights, r0, r1)
        _store(reads + index * chunk * d_v, y, chunk, d_v, BC, BV)
        _store_if(selected + row * size, W, d_k, d_v, n == chosen, BK, BV)
        W, S = _update(W, S, k, d, t00, t01, t10, t11, u0, u1)
    _store(after + row * 2 * size, W, d_k, d_v, BK, BV)
    _store(after + row * 2 * size + size, S, d_k, d_v, BK, BV)


@triton.jit
def _deep_kernel(queries, keys, values, transition, update, token, read, memory_1, memory_2,
                 point_1, point_2, select, max_norm, after_1, after_2, reads, selected_1,
                 selected_2, num_chunks, chunk, d_k, d_h, d_v, HAS_POINT: tl.constexpr,
                 CLIP: tl.constexpr, BC: tl.constexpr, BK: tl.constexpr, BH: tl.constexpr,
                 BV: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    size_1 = d_k * d_h
    size_2 = d_h * d_v
    W1 = _load(memory_1 + row * 2 * size_1, d_k, d_h, BK, BH)
    S1 = _load(memory_1 + row * 2 * size_1 + size_1, d_k, d_h, BK, BH)
    W2 = _load(memory_2 + row * 2 * size_2, d_h, d_v, BH, BV)
    S2 = _load(memory_2 + row * 2 * size_2 + size_2, d_h, d_v, BH, BV)
    first_1 = W1
    first_2 = W2
    if HAS_POINT:  # the call begins mid-chunk: chunk 0's gradients at the open chunk's start
        first_1 = _load(point_1 + row * size_1, d_k, d_h, BK, BH)
        first_2 = _load(point_2 + row * size_2, d_h, d_v, BH, BV)
    tau = tl.load(max_norm)
    chosen = tl.load(select + row)
    for n in range(num_chunks):
        index = row * num_chunks + n
        t00, t01, t10, t11, u0, u1, r0, r1, token_weights = _gates(
            transition, update, read, token, index, chunk, BC)
        k = _load(keys + index * chunk * d_k, chunk, d_k, BC, BK)
        v = _load(values + index * chunk * d_v, chunk, d_v, BC, BV)
        q = _load(queries + index * chunk * d_k, chunk, d_k, BC, BK)
        a, d1, d2 = _deep_surprise(k, v, tl.where(n == 0, first_1, W1),
                                   tl.where(n == 0, first_2, W2), tau, CLIP)
        hidden = _read(q, k, d1, W1, S1, token_weights, r0, r1)
        hidden = hidden * _sigmoid(hidden)  # silu
        y = _read(hidden, a, d2, W2, S2, token_weights, r0, r1)
        _store(reads + index * chunk * d_v, y, chunk, d_v, BC, BV)
        _store_if(selected_1 + row * size_1, W1, d_k, d_h, n == chosen, BK, BH)
        _store_if(selected_2 + row * size_2, W2, d_h, d_v, n == chosen, BH, BV)
        W1, S1 = _update(W1, S1, k, d1, t00, t01, t10, t11, u0, u1)
        W2, S2 = _update(W2, S2, a, d2, t00, t01, t10, t11, u0, u1)
    _store(after_1 + row * 2 * size_1, W1, d_k, d_h, BK, BH)
    _store(after_1 + row * 2 * size_1 + size_1, S1, d_k, d_h, BK, BH)
    _store(after_2 + row * 2 * size_2, W2, d_h, d_v, BH, BV)
    _store(after_2 + row * 2 * size_2 + size_2, S2, d_h, d_v, BH, BV)


# ---- the launch


def _tile(width: int) -> int:
    """A tile side for ``width``: a power of two, at least ``tl.dot``'s 16."""
    return max(16, triton.next_power_of_2(width))


def _warps(widths: Sequence[int], dtype: torch.dtype) -> int:
    """Warps per program, more for a larger ``[W; S]`` (the state all lives in registers).

    From ptxas's spill report for sm_90, not from timings: 4 warps hold a 16 × 16 linear
    memory without spills, 8 a 16-64-16 one in fp32 (4 bytes spilled, 352 with 4 warps);
    16 warps still spill about 6 KB for 32-128-32.
    """
    tiles = [_tile(width) for width in widths]
    state_bytes = 2 * sum(a * b for a, b in zip(tiles, tiles[1:])) * dtype.itemsize
    return 4 if state_bytes <= 4096 else 8 if state_bytes <= 16384 else 16


def _launch(select: Tensor, max_norm: float | None, queries: Tensor, keys: Tensor,
            values: Tensor, transition: Tensor, update_weights: Tensor, token_weights: Tensor,
            read_weights: Tensor, memory: Sequence[Tensor], point: Sequence[Tensor]
            ) -> tuple[list[Tensor], Tensor, list[Tensor]]:
    """Run the kernel on the block (shapes as in :func:`triton_block`, ``select`` per row)."""
    batch, heads, chunks, chunk_size, _ = keys.shape
    widths = [keys.shape[-1], *(m.shape[-1] for m in memory)]
    dtype = torch.float64 if keys.dtype == torch.float64 else torch.float32
    operands = [x.to(dtype).contiguous() for x in (
        queries, keys, values, transition, update_weights, token_weights, read_weights)]
    memory = [m.to(dtype).contiguous() for m in memory]  # (B, H, 2, D_in, D_out)
    has_point = bool(point)
    point = [p.to(dtype).contiguous() for p in point] or memory  # a placeholder, never read
    after = [torch.empty_like(m) for m in memory]
    selected = [torch.zeros_like(m[:, :, 0]) for m in memory]  # zeros where select is −1
    reads = values.new_empty(values.shape, dtype=dtype)  # (B, H, N, C, D_v)
    # τ as a tensor of the compute dtype: a Python float would reach the kernel as fp32
    tau = torch.tensor([max_norm or 1.0], dtype=dtype, device=keys.device)
    select_rows = select.repeat_interleave(heads).contiguous()  # (B·H,)
    options = dict(HAS_POINT=has_point, CLIP=max_norm is not None,
                   BC=_tile(chunk_size), BK=_tile(widths[0]), BV=_tile(widths[-1]),
                   num_warps=_warps(widths, dtype))
    grid = (batch * heads,)
    with torch.cuda.device(keys.device) if keys.is_cuda else contextlib.nullcontext():
        if len(memory) == 1:
            _linear_kernel[grid](*operands, memory[0], point[0], select_rows, tau, after[0],
                                 reads, selected[0], chunks, chunk_size, *widths, **options)
        else:
            _deep_kernel[grid](*operands, *memory, *point, select_rows, tau, *after, reads,
                               *selected, chunks, chunk_size, *widths, BH=_tile(widths[1]),
                               **options)
    return after, reads, selected


# ---- the op: the kernel forward, the recomputed backward, and the PyTorch reference


def reference_block(queries: Tensor, keys: Tensor, values: Tensor,
                    coefficients: ChunkCoefficients, memory: Sequence[Tensor],
                    first_gradient_point: Sequence[Tensor] | None,
                    max_surprise_norm: float | None, select: Tensor
                    ) -> tuple[list[Tensor], Tensor, list[Tensor]]:
    """:func:`triton_block` through the pure-PyTorch chunked path (:func:`.chunked._advance`
    and :func:`.chunked._retrieve`): same arguments, same results to rounding."""
    after, factors, starts = _advance(keys, values, coefficients, list(memory),
                                      list(first_gradient_point or []) or None,
                                      max_surprise_norm=max_surprise_norm)
    reads = _retrieve(queries, coefficients, factors, starts)
    zeros = [torch.zeros_like(m[:, :, 0]) for m in memory]  # (B, H, D_in, D_out)
    selected = _select_chunk_start(zeros, starts, select >= 0, select.clamp_min(0))
    return after, reads, selected


class _TritonBlock(torch.autograd.Function):
    """The kernel forward; the backward recomputes the block in PyTorch (module docstring)."""

    @staticmethod
    def forward(ctx, max_norm: float | None, depth: int, select: Tensor, queries: Tensor,
                keys: Tensor, values: Tensor, transition: Tensor, update_weights: Tensor,
                token_weights: Tensor, read_weights: Tensor, *memory_and_point: Tensor):
        memory, point = memory_and_point[:depth], memory_and_point[depth:]
        after, reads, selected = _launch(select, max_norm, queries, keys, values, transition,
                                         update_weights, token_weights, read_weights, memory,
                                         point)
        ctx.save_for_backward(select, queries, keys, values, transition, update_weights,
                              token_weights, read_weights, *memory_and_point)
        ctx.max_norm, ctx.depth = max_norm, depth
        return (*after, reads, *selected)

    @staticmethod
    @once_differentiable
    def backward(ctx, *grads: Tensor):
        select, *saved = ctx.saved_tensors
        needs = ctx.needs_input_grad[3:]
        with torch.enable_grad():
            inputs = [x.detach().requires_grad_(need) for x, need in zip(saved, needs)]
            queries, keys, values, transition, update_weights, token_weights, read_weights = \
                inputs[:7]
            coefficients = ChunkCoefficients(token_weights, read_weights, transition,
                                             update_weights)
            memory, point = inputs[7:7 + ctx.depth], inputs[7 + ctx.depth:]
            after, reads, selected = reference_block(queries, keys, values, coefficients,
                                                     memory, point, ctx.max_norm, select)
            outputs = [(o, g) for o, g in zip((*after, reads, *selected), grads)
                       if o.requires_grad]
            wanted = [x for x in inputs if x.requires_grad]
            found = iter(torch.autograd.grad([o for o, _ in outputs], wanted,
                                             [g for _, g in outputs], allow_unused=True)
                         if outputs and wanted else [None] * len(wanted))
        return (None, None, None, *(next(found) if x.requires_grad else None for x in inputs))


def triton_block(queries: Tensor, keys: Tensor, values: Tensor,
                 coefficients: ChunkCoefficients, memory: Sequence[Tensor],
                 first_gradient_point: Sequence[Tensor] | None,
                 max_surprise_norm: float | None, select: Tensor
                 ) -> tuple[list[Tensor], Tensor, list[Tensor]]:
    """One block of chunks through the Triton kernel: the sequential pass of
    :func:`.chunked._advance` and the reads of :func:`.chunked._retrieve` in one sweep
    (Eqs. 12-18 per chunk; the module docstring gives the equations).

    Parameters
    ----------
    queries, keys, values : Tensor
        ``(B, H, N, C, D)``: the block's N chunks of C tokens.
    coefficients : ChunkCoefficients
        The block's gate coefficients (:func:`.chunk_coefficients`).
    memory : sequence of Tensor
        Per layer ``[W; S]`` before the block, ``(B, H, 2, D_in, D_out)``; 1 or 2 layers.
    first_gradient_point : sequence of Tensor, optional
        Per layer the weights at which chunk 0's gradients are taken ``(B, H, D_in, D_out)``,
        or None for chunk 0's own start weights.
    max_surprise_norm : float, optional
        Clip each token's surprise to this norm (see :func:`.memory_scan`).
    select : Tensor
        ``(B,)`` int64, a chunk of the block per batch row, or −1.

    Returns
    -------
    memory : list of Tensor
        Per layer ``[W; S]`` after the block, ``(B, H, 2, D_in, D_out)``.
    reads : Tensor
        ``(B, H, N, C, D_v)``, every token read at its own weights (Eq. 15).
    selected : list of Tensor
        Per layer the weights at the start of each row's selected chunk ``(B, H, D_in, D_out)``
        (zeros for −1).
    """
    if len(memory) not in (1, 2):
        raise ValueError(f"kernel='triton' implements memories of depth 1 and 2, this one has "
                         f"{len(memory)} layers; use kernel='auto' or 'torch'")
    operands = [queries, keys, values, coefficients.transition, coefficients.update_weights,
                coefficients.token_weights, coefficients.read_weights, *memory,
                *(first_gradient_point or [])]
    if torch.is_grad_enabled() and any(t.requires_grad for t in operands):
        outputs = _TritonBlock.apply(max_surprise_norm, len(memory), select, *operands)
        depth = len(memory)
        return list(outputs[:depth]), outputs[depth], list(outputs[depth + 1:])
    return _launch(select, max_surprise_norm, *operands[:7], memory,
                   list(first_gradient_point or []))

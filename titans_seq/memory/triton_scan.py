"""The per-chunk sweep of the memory scan as a Triton kernel (CUDA, or the CPU under Triton's
interpreter), with a readable PyTorch reference of the same signature.

:func:`triton_block` takes and returns what :func:`.native.native_block` does: one block of
chunks, the sequential pass of :func:`.chunked._advance` and the reads of
:func:`.chunked._retrieve` fused into one sweep. :func:`reference_block` computes the same block
with those two PyTorch functions; the tests compare the two.

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
written (and, for the backward pass, its start memory), and the memory once, after the block.
Memory depths 1 and 2 (a linear memory, or one hidden layer) are written out; deeper memories
are refused before the call (:mod:`.native`).

Every dimension is padded to a power of two of at least 16 (``tl.dot``'s smallest tile) with
zeros, which is exact: a zero key, value or weight adds nothing to any product, and
``silu(0) = 0``. The products run in IEEE precision (no TF32), since the recurrence compounds
every rounding from chunk to chunk. Each program holds ``2 · D_in · D_out`` values per layer in
registers, which suits small heads: compiled ahead of time for sm_90, a 16-64-16 memory spills
32 bytes (8 warps), a 32-128-32 one about 6.5 KB even at 16 warps; larger memories would want
the state split across programs or kept in shared memory. The kernel's speed is not yet
measured on a GPU.

The backward pass
-----------------
:mod:`.triton_backward` holds the hand-written backward kernels, the same math as the CPU
kernel's (``csrc/chunk_step.cpp``). With gradients, the forward kernel also writes each chunk's
start memory ``[W; S]`` per layer (``KEEP_STARTS``; without gradients nothing more is written).
The backward kernel walks each row's chunks from the last to the first, carrying the gradient of
the memory after the chunk; per chunk it recomputes the surprise factors (and a two-layer
memory's first-layer reads) from the stored start, then takes the gradients through the update,
the reads, the clip and the surprise in turn. Storing the starts costs ``2 · D_in · D_out``
values per layer and chunk; recomputing the activations costs about one more forward pass. A
backward program holds twice the forward's state in registers (the carried gradient and the
chunk's start, a third tile where the gradient point is not ``W``) and spills more
(:func:`_warps`); its speed is not measured on a GPU either.

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
    """A row-major ``n_rows × n_cols`` matrix at ``base``, zero-padded to ``ROWS × COLS``."""
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
def _load_pair(base, n_rows, n_cols, ROWS: tl.constexpr, COLS: tl.constexpr):
    """A layer's ``[W; S]`` at ``base`` (two row-major matrices) as the tuple ``(W, S)``."""
    return (_load(base, n_rows, n_cols, ROWS, COLS),
            _load(base + n_rows * n_cols, n_rows, n_cols, ROWS, COLS))


@triton.jit
def _store_pair(base, pair, n_rows, n_cols, ROWS: tl.constexpr, COLS: tl.constexpr):
    """Write the tuple ``(W, S)`` at ``base`` as ``[W; S]``."""
    _store(base, pair[0], n_rows, n_cols, ROWS, COLS)
    _store(base + n_rows * n_cols, pair[1], n_rows, n_cols, ROWS, COLS)


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
def _rank_one_norms(a, d):
    """``‖a_iᵀ δ_i‖²_F = ‖a_i‖² ‖δ_i‖²`` per token: one layer's share of ``‖u_i‖²``."""
    return _row_sums(a * a) * _row_sums(d * d)


@triton.jit
def _silu_slope(z, gate):
    """``silu'(z) = σ (1 + z (1 − σ))`` from ``z`` and ``gate = σ(z)``."""
    return gate * (1 + z * (1 - gate))


@triton.jit
def _linear_surprise(k, v, P, tau, CLIP: tl.constexpr):
    """``δ = 2 (k P − v)`` (Eq. 12), the gradient ``u_i = k_iᵀ δ_i`` of a linear memory."""
    d = 2 * (_mm(k, P) - v)
    if CLIP:
        d = d * _clip_factor(_rank_one_norms(k, d), tau)[:, None]
    return d


@triton.jit
def _deep_factors(k, v, P1, P2):
    """A two-layer memory's unclipped factors of ``u_i`` and what their backward reuses:
    ``z = k P1``, ``σ(z)``, ``a = silu(z)``, ``g = δ_2 P2ᵀ``, ``δ_1 = g ⊙ silu'(z)`` and
    ``δ_2 = 2 (a P2 − v)`` (Eqs. 12 and 16)."""
    z = _mm(k, P1)
    gate = _sigmoid(z)
    a = z * gate
    d2 = 2 * (_mm(a, P2) - v)
    g = _mm(d2, tl.trans(P2))
    return z, gate, a, g, g * _silu_slope(z, gate), d2


@triton.jit
def _deep_surprise(k, v, P1, P2, tau, CLIP: tl.constexpr):
    """The factors ``a = silu(k P1)``, ``δ_1``, ``δ_2`` of ``u_i`` for a two-layer memory."""
    z, gate, a, g, d1, d2 = _deep_factors(k, v, P1, P2)
    if CLIP:  # ‖u_i‖² sums both layers' rank-1 terms
        factor = _clip_factor(_rank_one_norms(k, d1) + _rank_one_norms(a, d2), tau)[:, None]
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
                   select, max_norm, after, reads, selected, starts, num_chunks, chunk, d_k, d_v,
                   HAS_POINT: tl.constexpr, CLIP: tl.constexpr, KEEP_STARTS: tl.constexpr,
                   BC: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    size = d_k * d_v
    W, S = _load_pair(memory + row * 2 * size, d_k, d_v, BK, BV)
    first_point = W
    if HAS_POINT:  # the call begins mid-chunk: chunk 0's gradients at the open chunk's start
        first_point = _load(point + row * size, d_k, d_v, BK, BV)
    tau = tl.load(max_norm)
    chosen = tl.load(select + row)
    for n in range(num_chunks):
        index = row * num_chunks + n
        t00, t01, t10, t11, u0, u1, r0, r1, token_weights = _gates(
            transition, update, read, token, index, chunk, BC)
        if KEEP_STARTS:  # for the backward pass, which recomputes the chunk from its start
            _store_pair(starts + index * 2 * size, (W, S), d_k, d_v, BK, BV)
        k = _load(keys + index * chunk * d_k, chunk, d_k, BC, BK)
        v = _load(values + index * chunk * d_v, chunk, d_v, BC, BV)
        q = _load(queries + index * chunk * d_k, chunk, d_k, BC, BK)
        d = _linear_surprise(k, v, tl.where(n == 0, first_point, W), tau, CLIP)
        y = _read(q, k, d, W, S, token_weights, r0, r1)
        _store(reads + index * chunk * d_v, y, chunk, d_v, BC, BV)
        _store_if(selected + row * size, W, d_k, d_v, n == chosen, BK, BV)
        W, S = _update(W, S, k, d, t00, t01, t10, t11, u0, u1)
    _store_pair(after + row * 2 * size, (W, S), d_k, d_v, BK, BV)


@triton.jit
def _deep_kernel(queries, keys, values, transition, update, token, read, memory_1, memory_2,
                 point_1, point_2, select, max_norm, after_1, after_2, reads, selected_1,
                 selected_2, starts_1, starts_2, num_chunks, chunk, d_k, d_h, d_v,
                 HAS_POINT: tl.constexpr, CLIP: tl.constexpr, KEEP_STARTS: tl.constexpr,
                 BC: tl.constexpr, BK: tl.constexpr, BH: tl.constexpr, BV: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    size_1 = d_k * d_h
    size_2 = d_h * d_v
    W1, S1 = _load_pair(memory_1 + row * 2 * size_1, d_k, d_h, BK, BH)
    W2, S2 = _load_pair(memory_2 + row * 2 * size_2, d_h, d_v, BH, BV)
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
        if KEEP_STARTS:  # for the backward pass, which recomputes the chunk from its start
            _store_pair(starts_1 + index * 2 * size_1, (W1, S1), d_k, d_h, BK, BH)
            _store_pair(starts_2 + index * 2 * size_2, (W2, S2), d_h, d_v, BH, BV)
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
    _store_pair(after_1 + row * 2 * size_1, (W1, S1), d_k, d_h, BK, BH)
    _store_pair(after_2 + row * 2 * size_2, (W2, S2), d_h, d_v, BH, BV)


# ---- the launch


def _tile(width: int) -> int:
    """A tile side for ``width``: a power of two, at least ``tl.dot``'s 16."""
    return max(16, triton.next_power_of_2(width))


def _warps(widths: Sequence[int], dtype: torch.dtype, backward: bool = False) -> int:
    """Warps per program, more for a larger ``[W; S]`` (the state all lives in registers).

    From ptxas's spill reports for sm_90 (Triton 3.9's flags), not from timings. Forward: 4
    warps hold a 16 × 16 linear memory without spills, 8 a 16-64-16 one in fp32 (32 bytes
    spilled, 464 with 4 warps); 16 warps still spill about 6.5 KB for 32-128-32. The backward
    kernels hold twice the state (the carried gradient and the chunk's start) and more
    temporaries: 8 warps hold a 16 × 16 linear memory without spills (132 bytes with 4) and
    spill 680 bytes for 16-32-16, 1.4 KB for 16-64-16 (3 KB with 16 warps, 17 KB with 4);
    32-128-32 spills about 23 KB at 16 warps.
    """
    tiles = [_tile(width) for width in widths]
    state_bytes = 2 * sum(a * b for a, b in zip(tiles, tiles[1:])) * dtype.itemsize
    if backward:
        return 8 if state_bytes <= 16384 else 16
    return 4 if state_bytes <= 4096 else 8 if state_bytes <= 16384 else 16


def _compute_dtype(keys: Tensor) -> torch.dtype:
    """The kernels' dtype: fp64 for fp64 inputs, fp32 for all others (bf16/fp16 upcast)."""
    return torch.float64 if keys.dtype == torch.float64 else torch.float32


def _scalars(select: Tensor, max_norm: float | None, heads: int, dtype: torch.dtype,
             device: torch.device) -> tuple[Tensor, Tensor]:
    """``select`` per batch × head row, and ``τ`` as a one-element tensor of ``dtype``."""
    # τ as a tensor of the compute dtype: a Python float would reach the kernel as fp32
    tau = torch.tensor([max_norm or 1.0], dtype=dtype, device=device)
    return select.repeat_interleave(heads).contiguous(), tau  # (B·H,), (1,)


def _options(chunk_size: int, widths: Sequence[int], dtype: torch.dtype, has_point: bool,
             max_norm: float | None, backward: bool = False) -> dict:
    """The constexprs and the warps both directions' kernels share."""
    return dict(HAS_POINT=has_point, CLIP=max_norm is not None, BC=_tile(chunk_size),
                BK=_tile(widths[0]), BV=_tile(widths[-1]),
                num_warps=_warps(widths, dtype, backward))


def _launch(select: Tensor, max_norm: float | None, queries: Tensor, keys: Tensor,
            values: Tensor, transition: Tensor, update_weights: Tensor, token_weights: Tensor,
            read_weights: Tensor, memory: Sequence[Tensor], point: Sequence[Tensor],
            keep_starts: bool = False
            ) -> tuple[list[Tensor], Tensor, list[Tensor], list[Tensor]]:
    """Run the kernel on the block (shapes as in :func:`triton_block`, ``select`` per row);
    also returns, with ``keep_starts``, each chunk's start ``[W; S]`` per layer (else [])."""
    batch, heads, chunks, chunk_size, _ = keys.shape
    widths = [keys.shape[-1], *(m.shape[-1] for m in memory)]
    dtype = _compute_dtype(keys)
    operands = [x.to(dtype).contiguous() for x in (
        queries, keys, values, transition, update_weights, token_weights, read_weights)]
    memory = [m.to(dtype).contiguous() for m in memory]  # (B, H, 2, D_in, D_out)
    has_point = bool(point)
    point = [p.to(dtype).contiguous() for p in point] or memory  # a placeholder, never read
    after = [torch.empty_like(m) for m in memory]
    selected = [torch.zeros_like(m[:, :, 0]) for m in memory]  # zeros where select is −1
    reads = values.new_empty(values.shape, dtype=dtype)  # (B, H, N, C, D_v)
    starts = [m.new_empty(batch * heads, chunks, *m.shape[2:])  # (B·H, N, 2, D_in, D_out)
              for m in memory] if keep_starts else []
    select_rows, tau = _scalars(select, max_norm, heads, dtype, keys.device)
    options = _options(chunk_size, widths, dtype, has_point, max_norm)
    grid = (batch * heads,)
    with torch.cuda.device(keys.device) if keys.is_cuda else contextlib.nullcontext():
        if len(memory) == 1:
            _linear_kernel[grid](*operands, memory[0], point[0], select_rows, tau, after[0],
                                 reads, selected[0], (starts or after)[0], chunks, chunk_size,
                                 *widths, KEEP_STARTS=keep_starts, **options)
        else:  # without keep_starts the starts' placeholder (after) is never written
            _deep_kernel[grid](*operands, *memory, *point, select_rows, tau, *after, reads,
                               *selected, *(starts or after), chunks, chunk_size, *widths,
                               KEEP_STARTS=keep_starts, BH=_tile(widths[1]), **options)
    return after, reads, selected, starts


# ---- the op: the kernels forward and backward, and the PyTorch reference


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
    """The kernel forward, keeping each chunk's start memory; the Triton backward kernels
    (:mod:`.triton_backward`) recompute each chunk from it (module docstring)."""

    @staticmethod
    def forward(ctx, max_norm: float | None, depth: int, select: Tensor, queries: Tensor,
                keys: Tensor, values: Tensor, transition: Tensor, update_weights: Tensor,
                token_weights: Tensor, read_weights: Tensor, *memory_and_point: Tensor):
        memory, point = memory_and_point[:depth], memory_and_point[depth:]
        inputs = (queries, keys, values, transition, update_weights, token_weights, read_weights)
        after, reads, selected, starts = _launch(select, max_norm, *inputs, memory, point,
                                                 keep_starts=True)
        ctx.save_for_backward(select, *inputs, *starts, *point)
        ctx.max_norm, ctx.depth = max_norm, depth
        ctx.dtypes = [x.dtype for x in (*inputs, *memory_and_point)]
        return (*after, reads, *selected)

    @staticmethod
    @once_differentiable
    def backward(ctx, *grads: Tensor):
        from .triton_backward import launch_backward  # it imports this module's helpers
        depth, saved = ctx.depth, ctx.saved_tensors  # unpacked once (checkpointing asks so)
        select, inputs = saved[0], saved[1:8]
        starts, point = saved[8:8 + depth], saved[8 + depth:]
        found = launch_backward(select, ctx.max_norm, inputs, starts, point, grads[:depth],
                                grads[depth], grads[depth + 1:])
        # in the inputs' own dtypes (bf16 inputs ran upcast), None where none is needed
        found = [g.to(dtype) if need else None
                 for g, dtype, need in zip(found, ctx.dtypes, ctx.needs_input_grad[3:])]
        return (None, None, None, *found)


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
                   list(first_gradient_point or []))[:3]

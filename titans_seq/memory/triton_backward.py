"""The backward pass of the Triton memory scan (:mod:`.triton_scan`): one program per
batch × head row walks the block's chunks from the last to the first.

The forward kernel, when gradients are needed, writes every chunk's start memory ``[W; S]`` per
layer (``(B·H, N, 2, D_in, D_out)``, as the native ``scan_forward`` keeps them). A program here
carries ``dL/d[W'; S']``, the gradient of the memory after the chunk at hand, starting from that
of the memory after the block. Per chunk it loads the chunk's start and recomputes, with the
forward kernel's own helpers, the surprise factors at the gradient point (Eqs. 12 and 16, the
clip included) and, for a two-layer memory, the first layer's reads; no activation is stored.
Then, the same math as ``csrc/chunk_step.cpp``'s ``scan_backward_kernel`` and
``csrc/chunk_math.h``'s ``read_chunk_backward``, layer by layer:

1. through the update ``[W'; S'] = T [W; S] + [U_0; U_1] ⊙ aᵀ δ`` (Eqs. 13 and 18): the
   gradients of ``T`` and ``U``, of the factors ``a`` and ``δ``, and ``Tᵀ dL/d[W'; S']``;
2. through the read ``o = diag(R_0) h W + diag(R_1) h S − ((h aᵀ) ⊙ TW) δ`` (Eq. 15): the
   gradients of ``R``, ``TW``, ``h`` (the queries, or through ``silu`` the layer below), ``a``,
   ``δ`` and of the start ``[W; S]``;
3. through the clip ``δ'_l = f δ_l``, ``f = min(1, τ / ‖u_i‖)``, ``‖u_i‖² = Σ_l ‖a_l‖² ‖δ_l‖²``;
4. through the surprise ``δ_{L−1} = 2 (z_{L−1} − v)``, ``δ_l = (δ_{l+1} P_{l+1}ᵀ) ⊙ silu'(z_l)``
   (with ``silu''``) and the forward ``z_l = a_l P_l``: the gradients of the keys, the values
   and the gradient point ``P``, which is ``W`` (its gradient joins the carry) except for
   chunk 0 of a call that begins mid-chunk (its own gradient, ``first_gradient_point``'s).

The carry then is ``dL/d[W; S]`` at the chunk's start, plus the ``selected`` output's gradient at
the row's selected chunk; after chunk 0 it is the initial memory's gradient. Each program holds
two state-sized tiles per layer (the carry and the chunk's start; a third while the gradient
point differs from ``W``), twice the forward's, and more temporaries: it runs with more warps
(:func:`.triton_scan._warps`).
"""

from __future__ import annotations

import contextlib
from typing import Sequence

import torch
import triton
import triton.language as tl
from torch import Tensor

from .triton_scan import (_clip_factor, _compute_dtype, _deep_factors, _gates, _load,
                          _load_pair, _mm, _options, _rank_one_norms, _read, _row_sums,
                          _scalars, _sigmoid, _silu_slope, _store, _store_if, _store_pair,
                          _tile)

# ---- the pieces: loads, sums, the backward of one layer's update and read


@triton.jit
def _load_if(base, n_rows, n_cols, keep, ROWS: tl.constexpr, COLS: tl.constexpr):
    """:func:`_load` when the scalar ``keep`` is true, zeros otherwise (a mask, no branch)."""
    return _load(base, tl.where(keep, n_rows, 0), n_cols, ROWS, COLS)


@triton.jit
def _total(x):
    """The sum of a matrix's entries (a scalar), as :func:`_row_sums` sums."""
    return tl.reduce(tl.reduce(x, 1, tl.standard._sum_combine), 0, tl.standard._sum_combine)


@triton.jit
def _silu_curvature(z, gate):
    """``silu''(z) = σ (1 − σ) (2 + z (1 − 2σ))`` from ``z`` and ``gate = σ(z)``."""
    return gate * (1 - gate) * (2 + z * (1 - 2 * gate))


@triton.jit
def _add_shares(x, y):
    """The sum of two layers' gate gradients (tuples ordered as :func:`_gates`)."""
    return (x[0] + y[0], x[1] + y[1], x[2] + y[2], x[3] + y[3], x[4] + y[4], x[5] + y[5],
            x[6] + y[6], x[7] + y[7], x[8] + y[8])


@triton.jit
def _store_gate_grads(transition, update, read, token, index, chunk, grads, BC: tl.constexpr):
    """Write chunk ``index``'s gate gradients ``grads`` where :func:`_gates` reads the gates."""
    tokens = tl.arange(0, BC)
    inside = tokens < chunk
    t = transition + index * 4
    tl.store(t, grads[0])
    tl.store(t + 1, grads[1])
    tl.store(t + 2, grads[2])
    tl.store(t + 3, grads[3])
    tl.store(update + index * 2 * chunk + tokens, grads[4], mask=inside)
    tl.store(update + index * 2 * chunk + chunk + tokens, grads[5], mask=inside)
    tl.store(read + index * 2 * chunk + 2 * tokens, grads[6], mask=inside)
    tl.store(read + index * 2 * chunk + 2 * tokens + 1, grads[7], mask=inside)
    _store(token + index * chunk * chunk, grads[8], chunk, chunk, BC, BC)


@triton.jit
def _layer_backward(carry, start, h, a, d, g_o, gates):
    """One layer's share of a chunk's backward pass, from ``carry = dL/d[W'; S']`` (the memory
    after the chunk) and ``g_o = dL/do`` (the layer's read), with ``start = (W, S)`` and ``d``
    the clipped ``δ``: through the update ``[W'; S'] = T [W; S] + [U_0; U_1] ⊙ aᵀ δ`` (Eqs. 13
    and 18) and the read ``o = diag(R_0) h W + diag(R_1) h S − ((h aᵀ) ⊙ TW) δ`` (Eq. 15).

    Returns ``dL/d[W; S]`` through this chunk, ``dL/dh``, ``dL/da``, ``dL/dδ`` and the gates'
    gradients (a tuple ordered as :func:`_gates`)."""
    G_W, G_S = carry
    W, S = start
    t00, t01, t10, t11, u0, u1, r0, r1, token_weights = gates
    # the update: cross_w = δ dL/dW'ᵀ = dL/d(U_0 ⊙ a), cross_s likewise for S' and U_1
    cross_w = _mm(d, tl.trans(G_W))
    cross_s = _mm(d, tl.trans(G_S))
    g_a = u0[:, None] * cross_w + u1[:, None] * cross_s
    g_d = _mm(a * u0[:, None], G_W) + _mm(a * u1[:, None], G_S)
    # the read: back_w = dL/do Wᵀ gives dL/dh (scaled by R_0) and dL/dR_0 (dotted with h),
    # back_s likewise; g_scores = dL/d((h aᵀ) ⊙ TW), negative as the θ u terms enter with a minus
    back_w = _mm(g_o, tl.trans(W))
    back_s = _mm(g_o, tl.trans(S))
    raw = _mm(h, tl.trans(a))
    g_scores = -_mm(g_o, tl.trans(d))
    g_raw = g_scores * token_weights
    g_h = r0[:, None] * back_w + r1[:, None] * back_s + _mm(g_raw, a)
    g_a += _mm(tl.trans(g_raw), h)
    g_d -= _mm(tl.trans(raw * token_weights), g_o)
    before = (t00 * G_W + t10 * G_S + _mm(tl.trans(h), r0[:, None] * g_o),
              t01 * G_W + t11 * G_S + _mm(tl.trans(h), r1[:, None] * g_o))
    share = (_total(G_W * W), _total(G_W * S), _total(G_S * W), _total(G_S * S),
             _row_sums(a * cross_w), _row_sums(a * cross_s),
             _row_sums(h * back_w), _row_sums(h * back_s), g_scores * raw)
    return before, g_h, g_a, g_d, share


# ---- the clip's and the surprise's backward


@triton.jit
def _clip_weight(through, squared, factor, tau):
    """``dL/d‖u_i‖²`` from ``through = Σ_l ⟨dL/dδ'_l, δ_l⟩`` (``δ'_l = f δ_l``): ``f = τ / ‖u_i‖``
    moves only where the clip bites, ``df/d‖u‖² = −f / (2 ‖u‖²)``."""
    return tl.where(squared > tau * tau, -0.5 * through * factor / tl.maximum(squared, tau * tau),
                    0.0)


@triton.jit
def _clip_backward(g_a, g_d, a, d, factor, weight):
    """One layer through ``δ' = f δ``, ``f`` a function of ``‖u_i‖² = Σ_l ‖a_l‖² ‖δ_l‖²``
    (``weight = dL/d‖u_i‖²``): the gradients of ``a`` and of the unclipped ``δ``."""
    g_d = factor[:, None] * g_d + (2 * weight * _row_sums(a * a))[:, None] * d
    g_a = g_a + (2 * weight * _row_sums(d * d))[:, None] * a
    return g_a, g_d


@triton.jit
def _linear_surprise_backward(k, P, g_k, g_d):
    """Through ``δ = 2 (k P − v)`` (Eq. 12): ``dL/dk`` (added to ``g_k``), ``dL/dv``, ``dL/dP``."""
    g_z = 2 * g_d
    return g_k + _mm(g_z, tl.trans(P)), -g_z, _mm(tl.trans(k), g_z)


@triton.jit
def _deep_surprise_backward(k, factors, P1, P2, g_k, g_a, g_d1, g_d2):
    """Through a two-layer memory's unclipped factors (:func:`_deep_factors`) from the
    gradients of ``a``, ``δ_1`` and ``δ_2``: ``dL/dk`` (added to ``g_k``), ``dL/dv``,
    ``dL/dP1``, ``dL/dP2``."""
    z, gate, a, g, d1, d2 = factors
    slope = _silu_slope(z, gate)
    g_g = g_d1 * slope  # through δ_1 = g ⊙ silu'(z), g = δ_2 P2ᵀ
    g_z = g_d1 * g * _silu_curvature(z, gate)
    g_d2 = g_d2 + _mm(g_g, P2)
    g_z2 = 2 * g_d2  # through δ_2 = 2 (a P2 − v)
    g_P2 = _mm(tl.trans(g_g), d2) + _mm(tl.trans(a), g_z2)
    g_z += (g_a + _mm(g_z2, tl.trans(P2))) * slope  # through a = silu(z)
    return g_k + _mm(g_z, tl.trans(P1)), -g_z2, _mm(tl.trans(k), g_z), g_P2


# ---- one chunk's backward, per depth


@triton.jit
def _gradient_point(point, W, at_point, n_rows, n_cols, HAS_POINT: tl.constexpr,
                    ROWS: tl.constexpr, COLS: tl.constexpr):
    """The chunk's gradient point: ``W``, or at chunk 0 of a call that begins mid-chunk the
    open chunk's start weights (loaded there only)."""
    P = W
    if HAS_POINT:
        P = tl.where(at_point, _load_if(point, n_rows, n_cols, at_point, ROWS, COLS), W)
    return P


@triton.jit
def _carry_in(carry, g_P, grad_point, grad_selected, at_point, chosen, n_rows, n_cols,
              HAS_POINT: tl.constexpr, ROWS: tl.constexpr, COLS: tl.constexpr):
    """``dL/d[W; S]`` at the chunk's start: ``carry`` plus ``dL/dP`` where the gradient point is
    ``W`` (elsewhere it is written as the point's gradient) and the ``selected`` output's
    gradient at the row's selected chunk."""
    if HAS_POINT:
        _store_if(grad_point, g_P, n_rows, n_cols, at_point, ROWS, COLS)
        g_P = tl.where(at_point, 0.0, g_P)
    g_W = carry[0] + g_P + _load_if(grad_selected, n_rows, n_cols, chosen, ROWS, COLS)
    return (g_W, carry[1])


@triton.jit
def _linear_chunk_backward(q, k, v, g_y, start, P, carry, gates, tau, CLIP: tl.constexpr):
    """One chunk of a linear memory: the carry at its start, ``dL/dq``, ``dL/dk``, ``dL/dv``,
    ``dL/dP`` and the gates' gradients, from the carry after it and the reads' gradient."""
    d = 2 * (_mm(k, P) - v)  # the unclipped δ of :func:`_linear_surprise`
    clipped = d
    if CLIP:
        squared = _rank_one_norms(k, d)
        factor = _clip_factor(squared, tau)
        clipped = d * factor[:, None]
    carry, g_q, g_k, g_d, share = _layer_backward(carry, start, q, k, clipped, g_y, gates)
    if CLIP:
        weight = _clip_weight(_row_sums(g_d * d), squared, factor, tau)
        g_k, g_d = _clip_backward(g_k, g_d, k, d, factor, weight)
    g_k, g_v, g_P = _linear_surprise_backward(k, P, g_k, g_d)
    return carry, g_q, g_k, g_v, g_P, share


@triton.jit
def _deep_chunk_backward(q, k, v, g_y, start_1, start_2, P1, P2, carry_1, carry_2, gates, tau,
                         CLIP: tl.constexpr):
    """One chunk of a two-layer memory, as :func:`_linear_chunk_backward`; the first layer's
    read ``o_1`` is recomputed for ``h = silu(o_1)``, the second layer's input."""
    factors = _deep_factors(k, v, P1, P2)
    a, d1, d2 = factors[2], factors[4], factors[5]
    clipped_1, clipped_2 = d1, d2
    if CLIP:  # as in :func:`_deep_surprise`
        squared = _rank_one_norms(k, d1) + _rank_one_norms(a, d2)
        factor = _clip_factor(squared, tau)
        clipped_1, clipped_2 = d1 * factor[:, None], d2 * factor[:, None]
    o = _read(q, k, clipped_1, start_1[0], start_1[1], gates[8], gates[6], gates[7])
    o_gate = _sigmoid(o)
    carry_2, g_h, g_a, g_d2, share_2 = _layer_backward(carry_2, start_2, o * o_gate, a,
                                                       clipped_2, g_y, gates)
    carry_1, g_q, g_k, g_d1, share_1 = _layer_backward(carry_1, start_1, q, k, clipped_1,
                                                       g_h * _silu_slope(o, o_gate), gates)
    if CLIP:
        weight = _clip_weight(_row_sums(g_d1 * d1) + _row_sums(g_d2 * d2), squared, factor, tau)
        g_k, g_d1 = _clip_backward(g_k, g_d1, k, d1, factor, weight)
        g_a, g_d2 = _clip_backward(g_a, g_d2, a, d2, factor, weight)
    g_k, g_v, g_P1, g_P2 = _deep_surprise_backward(k, factors, P1, P2, g_k, g_a, g_d1, g_d2)
    return carry_1, carry_2, g_q, g_k, g_v, g_P1, g_P2, _add_shares(share_1, share_2)


# ---- the kernels: one program per batch × head row, a loop over the chunks, last first


@triton.jit
def _linear_backward_kernel(queries, keys, values, transition, update, token, read, starts,
                            point, select, max_norm, grad_after, grad_reads, grad_selected,
                            grad_queries, grad_keys, grad_values, grad_transition, grad_update,
                            grad_token, grad_read, grad_memory, grad_point, num_chunks, chunk,
                            d_k, d_v, HAS_POINT: tl.constexpr, CLIP: tl.constexpr,
                            BC: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    size = d_k * d_v
    carry = _load_pair(grad_after + row * 2 * size, d_k, d_v, BK, BV)
    tau = tl.load(max_norm)
    chosen = tl.load(select + row)
    for step in range(num_chunks):
        n = num_chunks - 1 - step
        index = row * num_chunks + n
        gates = _gates(transition, update, read, token, index, chunk, BC)
        k = _load(keys + index * chunk * d_k, chunk, d_k, BC, BK)
        v = _load(values + index * chunk * d_v, chunk, d_v, BC, BV)
        q = _load(queries + index * chunk * d_k, chunk, d_k, BC, BK)
        g_y = _load(grad_reads + index * chunk * d_v, chunk, d_v, BC, BV)
        start = _load_pair(starts + index * 2 * size, d_k, d_v, BK, BV)
        P = _gradient_point(point + row * size, start[0], n == 0, d_k, d_v, HAS_POINT, BK, BV)
        carry, g_q, g_k, g_v, g_P, share = _linear_chunk_backward(q, k, v, g_y, start, P, carry,
                                                                  gates, tau, CLIP)
        _store(grad_queries + index * chunk * d_k, g_q, chunk, d_k, BC, BK)
        _store(grad_keys + index * chunk * d_k, g_k, chunk, d_k, BC, BK)
        _store(grad_values + index * chunk * d_v, g_v, chunk, d_v, BC, BV)
        _store_gate_grads(grad_transition, grad_update, grad_read, grad_token, index, chunk,
                          share, BC)
        carry = _carry_in(carry, g_P, grad_point + row * size, grad_selected + row * size,
                          n == 0, n == chosen, d_k, d_v, HAS_POINT, BK, BV)
    _store_pair(grad_memory + row * 2 * size, carry, d_k, d_v, BK, BV)


@triton.jit
def _deep_backward_kernel(queries, keys, values, transition, update, token, read, starts_1,
                          starts_2, point_1, point_2, select, max_norm, grad_after_1,
                          grad_after_2, grad_reads, grad_selected_1, grad_selected_2,
                          grad_queries, grad_keys, grad_values, grad_transition, grad_update,
                          grad_token, grad_read, grad_memory_1, grad_memory_2, grad_point_1,
                          grad_point_2, num_chunks, chunk, d_k, d_h, d_v,
                          HAS_POINT: tl.constexpr, CLIP: tl.constexpr, BC: tl.constexpr,
                          BK: tl.constexpr, BH: tl.constexpr, BV: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    size_1 = d_k * d_h
    size_2 = d_h * d_v
    carry_1 = _load_pair(grad_after_1 + row * 2 * size_1, d_k, d_h, BK, BH)
    carry_2 = _load_pair(grad_after_2 + row * 2 * size_2, d_h, d_v, BH, BV)
    tau = tl.load(max_norm)
    chosen = tl.load(select + row)
    for step in range(num_chunks):
        n = num_chunks - 1 - step
        index = row * num_chunks + n
        gates = _gates(transition, update, read, token, index, chunk, BC)
        k = _load(keys + index * chunk * d_k, chunk, d_k, BC, BK)
        v = _load(values + index * chunk * d_v, chunk, d_v, BC, BV)
        q = _load(queries + index * chunk * d_k, chunk, d_k, BC, BK)
        g_y = _load(grad_reads + index * chunk * d_v, chunk, d_v, BC, BV)
        start_1 = _load_pair(starts_1 + index * 2 * size_1, d_k, d_h, BK, BH)
        start_2 = _load_pair(starts_2 + index * 2 * size_2, d_h, d_v, BH, BV)
        P1 = _gradient_point(point_1 + row * size_1, start_1[0], n == 0, d_k, d_h, HAS_POINT,
                             BK, BH)
        P2 = _gradient_point(point_2 + row * size_2, start_2[0], n == 0, d_h, d_v, HAS_POINT,
                             BH, BV)
        carry_1, carry_2, g_q, g_k, g_v, g_P1, g_P2, share = _deep_chunk_backward(
            q, k, v, g_y, start_1, start_2, P1, P2, carry_1, carry_2, gates, tau, CLIP)
        _store(grad_queries + index * chunk * d_k, g_q, chunk, d_k, BC, BK)
        _store(grad_keys + index * chunk * d_k, g_k, chunk, d_k, BC, BK)
        _store(grad_values + index * chunk * d_v, g_v, chunk, d_v, BC, BV)
        _store_gate_grads(grad_transition, grad_update, grad_read, grad_token, index, chunk,
                          share, BC)
        carry_1 = _carry_in(carry_1, g_P1, grad_point_1 + row * size_1,
                            grad_selected_1 + row * size_1, n == 0, n == chosen, d_k, d_h,
                            HAS_POINT, BK, BH)
        carry_2 = _carry_in(carry_2, g_P2, grad_point_2 + row * size_2,
                            grad_selected_2 + row * size_2, n == 0, n == chosen, d_h, d_v,
                            HAS_POINT, BH, BV)
    _store_pair(grad_memory_1 + row * 2 * size_1, carry_1, d_k, d_h, BK, BH)
    _store_pair(grad_memory_2 + row * 2 * size_2, carry_2, d_h, d_v, BH, BV)


# ---- the launch


def launch_backward(select: Tensor, max_norm: float | None, inputs: Sequence[Tensor],
                    starts: Sequence[Tensor], point: Sequence[Tensor],
                    grad_after: Sequence[Tensor], grad_reads: Tensor,
                    grad_selected: Sequence[Tensor]) -> list[Tensor]:
    """The gradients of a :func:`.triton_scan.triton_block` call's inputs (``inputs``: the
    queries, keys, values and the four coefficient tensors), then of each layer's memory and
    of each layer's gradient point (none without one), in the compute dtype, from the chunk
    starts its forward kept and the gradients of its outputs."""
    keys = inputs[1]
    batch, heads, chunks, chunk_size, _ = keys.shape
    depth = len(starts)
    widths = [keys.shape[-1], *(s.shape[-1] for s in starts)]
    dtype = _compute_dtype(keys)
    operands = [x.to(dtype).contiguous() for x in inputs]
    has_point = bool(point)
    point = [p.to(dtype).contiguous() for p in point]
    outputs = [g.to(dtype).contiguous() for g in (*grad_after, grad_reads, *grad_selected)]
    grads = [torch.empty_like(x) for x in operands]  # q, k, v, T, U, TW, R
    grad_memory = [torch.empty_like(g) for g in outputs[:depth]]
    grad_point = [torch.zeros_like(p) for p in point]
    select_rows, tau = _scalars(select, max_norm, heads, dtype, keys.device)
    options = _options(chunk_size, widths, dtype, has_point, max_norm, backward=True)
    placeholder = list(starts)  # for the point and its gradient: never read nor written
    grid = (batch * heads,)
    with torch.cuda.device(keys.device) if keys.is_cuda else contextlib.nullcontext():
        if depth == 1:
            _linear_backward_kernel[grid](
                *operands, starts[0], (point or placeholder)[0], select_rows, tau, *outputs,
                *grads, grad_memory[0], (grad_point or placeholder)[0], chunks, chunk_size,
                *widths, **options)
        else:
            _deep_backward_kernel[grid](
                *operands, *starts, *(point or placeholder), select_rows, tau, *outputs, *grads,
                *grad_memory, *(grad_point or placeholder), chunks, chunk_size, *widths,
                BH=_tile(widths[1]), **options)
    return [*grads, *grad_memory, *grad_point]

"""The fast chunked memory scan: exact per-token semantics, no per-token weights.

The sequence is cut into chunks of ``chunk_size`` tokens counted from the first token the state
has seen. Per chunk (``W_c`` the weights at its start, the only sequential dependence):

1. one forward and backward pass of the chunk's keys through ``W_c`` gives every token's
   gradient as rank-1 factors ``a_iᵀ δ_i`` per layer (:func:`_chunk_step`);
2. retrieval of every token at its *own* weights ``W_t`` is a causal, attention-like product:
   for a layer input ``h_t``,
   ``h_t W_t = B[t,0] h_t W_0 + G[t,0] h_t S_0 − Σ_{i≤t} G[t,i] θ_i (h_t · a_i) δ_i``;
3. the weights and momentum at the chunk's end are one fused matmul per layer.

Only 1 and 3 are sequential (the recurrence across chunks is non-linear); 2 runs batched over
blocks of chunks (:func:`_retrieve`). The gate coefficients ``B, G, E`` of all chunks come from
:mod:`.coefficients` in one batched pass before the loop.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import Tensor

from .coefficients import ChunkCoefficients, chunk_coefficients
from .state import MemoryState
from .validation import check_scan_inputs, compute_dtype


def memory_scan(q: Tensor, k: Tensor, v: Tensor, theta: Tensor, eta: Tensor, alpha: Tensor,
                weights: Sequence[Tensor], chunk_size: int = 16,
                state: MemoryState | None = None, mask: Tensor | None = None, *,
                max_surprise_norm: float | None = None, compiled: bool = False,
                checkpoint_blocks: bool = False) -> tuple[Tensor, MemoryState]:
    """Run the Titans long-term memory over a sequence (the paper's Eqs. 12-18).

    Parameters
    ----------
    q, k : Tensor
        Queries and keys, ``(B, H, T, D_k)``.
    v : Tensor
        Values, ``(B, H, T, D_v)``.
    theta, eta, alpha : Tensor
        Per-token learning rate ``θ ≥ 0``, momentum decay ``η ∈ [0, 1]`` and forgetting gate
        ``α ∈ [0, 1]``, each ``(B, H, T)``.
    weights : sequence of Tensor
        The memory MLP's initial weights, one ``(H, D_in, D_out)`` per layer; first
        ``D_in = D_k``, last ``D_out = D_v``. One layer is a linear memory. Used only when
        ``state`` is None.
    chunk_size : int
        Tokens per chunk ``b``; all gradients of a chunk are taken at its start weights
        (Eq. 16). ``chunk_size=1`` is plain online gradient descent with momentum and decay.
    state : MemoryState, optional
        The state returned by an earlier call; the call continues that sequence exactly, also
        from the middle of a chunk.
    mask : Tensor, optional
        ``(B, T)`` bool, True = valid, padding only at the end of a row. Padding leaves the state
        untouched and gives zero outputs.
    max_surprise_norm : float, optional
        Clip each token's momentary surprise ``u_t`` (its gradient over all layers) to this
        Frobenius norm before it enters the momentum: ``u_t · min(1, τ / ‖u_t‖)``. None (the
        default) is the paper's update. A deep memory can otherwise diverge within a sequence
        once training has grown its weights (the curvature of ``‖M(k) − v‖²`` grows with them
        and a fixed step overshoots; titans-pytorch issue #29); the clip bounds every write.
    compiled : bool
        Run the sequential per-chunk step through ``torch.compile``: same results, faster once
        compiled (about 2x for the loop, 1.1-1.3x for the whole layer on a 2-core CPU); the
        first call of each shape pays the compilation.
    checkpoint_blocks : bool
        When training, keep only each block of chunks' inputs and recompute its forward during
        the backward pass (measured on a 64 K-token call of a small layer: about half the peak
        memory for 1.3-1.6x the time).

    Returns
    -------
    y : Tensor
        ``(B, H, T, D_v)``, ``y_t = M_{W_t}(q_t)`` read after token t's update (Eq. 15).
    state : MemoryState
        The state after each row's last valid token.
    """
    check_scan_inputs(q, k, v, theta, eta, alpha, weights, chunk_size, state, mask,
                      max_surprise_norm=max_surprise_norm)
    return chunked_memory_scan(q, k, v, theta, eta, alpha, weights, chunk_size, state, mask,
                               max_surprise_norm=max_surprise_norm, compiled=compiled,
                               checkpoint_blocks=checkpoint_blocks)


def _to_grid(x: Tensor, offsets: Tensor | None, grid_length: int) -> Tensor:
    """Place row b's tokens at grid positions ``offsets[b] + j``; ``x`` is (B, H, T, ...)."""
    length = x.shape[2]
    if offsets is None:  # every row starts at a chunk boundary: pad the tail only
        padding = [0, 0] * (x.dim() - 3) + [0, grid_length - length]
        return F.pad(x, padding)
    source = torch.arange(grid_length, device=x.device)[None, :] - offsets[:, None]  # (B, T_grid)
    index = source.clamp(0, length - 1)[:, None, :].expand(x.shape[0], x.shape[1], -1)
    index = index.reshape(*index.shape, *([1] * (x.dim() - 3))).expand(
        *index.shape, *x.shape[3:])  # (B, H, T_grid, ...)
    return x.gather(2, index)


def _from_grid(y: Tensor, offsets: Tensor | None, length: int) -> Tensor:
    """Inverse of :func:`_to_grid` for ``y`` (B, H, T_grid, D)."""
    if offsets is None:
        return y[:, :, :length]
    index = (torch.arange(length, device=y.device)[None, :] + offsets[:, None])  # (B, T)
    index = index[:, None, :, None].expand(y.shape[0], y.shape[1], length, y.shape[3])
    return y.gather(2, index)


def chunked_memory_scan(q: Tensor, k: Tensor, v: Tensor, theta: Tensor, eta: Tensor,
                        alpha: Tensor, weights: Sequence[Tensor], chunk_size: int = 16,
                        state: MemoryState | None = None, mask: Tensor | None = None, *,
                        max_surprise_norm: float | None = None, compiled: bool = False,
                        checkpoint_blocks: bool = False) -> tuple[Tensor, MemoryState]:
    """:func:`memory_scan` without input checks (the caller has done them)."""
    dtype = compute_dtype(q, k, v, theta, eta, alpha, *weights)
    with torch.autocast(q.device.type, enabled=False):  # the recurrence stays in fp32 or fp64
        return _scan(*(t.to(dtype) for t in (q, k, v, theta, eta, alpha)),
                     weights, chunk_size, state, mask, dtype, compiled, checkpoint_blocks,
                     max_surprise_norm)


def _scan(q: Tensor, k: Tensor, v: Tensor, theta: Tensor, eta: Tensor, alpha: Tensor,
          weights: Sequence[Tensor], chunk_size: int, state: MemoryState | None,
          mask: Tensor | None, dtype: torch.dtype, compiled: bool, checkpoint_blocks: bool,
          max_surprise_norm: float | None) -> tuple[Tensor, MemoryState]:
    batch, heads, length, _ = k.shape
    if state is None:
        state = MemoryState.initial(weights, batch, chunk_size, dtype)
    # The memory of each layer as one tensor [W; S]: (B, H, 2, D_in, D_out)
    memory = [torch.stack([w.to(dtype), s.to(dtype)], dim=2)
              for w, s in zip(state.weights, state.momentum)]

    # ---- align every row's chunk boundaries on one grid of N chunks of C tokens
    offsets = state.tokens_seen % chunk_size  # (B,) tokens already in the open chunk
    valid_counts = mask.sum(1) if mask is not None else torch.full_like(offsets, length)
    # Without the hint (after a masked call) assume the worst offset rather than read the
    # tensor: at most one extra all-padding chunk, and no device sync or graph break.
    max_offset = state.chunk_offset if state.chunk_offset is not None else chunk_size - 1
    grid_offsets = offsets if max_offset > 0 else None
    num_chunks = -(-(max_offset + length) // chunk_size)
    grid_length = num_chunks * chunk_size
    positions = torch.arange(grid_length, device=k.device)[None, :] - offsets[:, None]
    valid = (positions >= 0) & (positions < valid_counts[:, None])  # (B, T_grid)

    def chunks(x: Tensor) -> Tensor:  # (B, H, T, ...) -> (B, H, N, C, ...)
        x = _to_grid(x, grid_offsets, grid_length)
        return x.reshape(batch, heads, num_chunks, chunk_size, *x.shape[3:])
    q_chunks, k_chunks, v_chunks = chunks(q), chunks(k), chunks(v)  # (B, H, N, C, D)
    coefficients = chunk_coefficients(
        chunks(theta), chunks(eta), chunks(alpha),
        valid.reshape(batch, 1, num_chunks, chunk_size))

    # A row at a chunk boundary takes its first chunk's gradients at the current weights.
    at_boundary = (offsets == 0)[:, None, None, None]
    first_gradient_point = [torch.where(at_boundary, w.to(dtype), c.to(dtype))
                            for w, c in zip(state.weights, state.chunk_start_weights)]

    # Each row's next token falls into the chunk of its last valid token (its gradient point
    # goes into the state), unless that token closed its chunk: then the current weights do.
    final_offsets = (offsets + valid_counts) % chunk_size  # (B,)
    last_chunk = torch.div(offsets + valid_counts - 1, chunk_size,
                           rounding_mode="floor").clamp_min(0)
    open_chunk_start = first_gradient_point  # right for rows whose last chunk is chunk 0

    outputs = []
    # Blocks come from split (not indexing), so autograd's backward is one cat, not N zero-fills.
    blocks = zip(*(x.split(_CHUNKS_PER_BLOCK, dim=2) for x in (q_chunks, k_chunks, v_chunks)),
                 coefficients.split(_CHUNKS_PER_BLOCK))
    recompute = checkpoint_blocks and torch.is_grad_enabled()
    for index, (queries, keys, values, block_coefficients) in enumerate(blocks):
        arguments = (queries, keys, values, block_coefficients, memory,
                     first_gradient_point if index == 0 else None, open_chunk_start,
                     last_chunk, index * _CHUNKS_PER_BLOCK, compiled, max_surprise_norm)
        if recompute:  # keep only the block's inputs; redo its forward during backward
            memory, output, open_chunk_start = torch.utils.checkpoint.checkpoint(
                _process_block, *arguments, use_reentrant=False)
        else:
            memory, output, open_chunk_start = _process_block(*arguments)
        outputs.append(output)

    y = torch.cat(outputs, dim=2).reshape(batch, heads, grid_length, -1)  # (B, H, T_grid, D_v)
    y = _from_grid(y, grid_offsets, length)  # (B, H, T, D_v)
    if mask is not None:
        y = y * mask[:, None, :, None]

    current = tuple(m[:, :, 0] for m in memory)
    momentum = tuple(m[:, :, 1] for m in memory)
    ends_chunk = (final_offsets == 0)[:, None, None, None]
    chunk_start = tuple(torch.where(ends_chunk, w, c) for w, c in zip(current, open_chunk_start))
    tokens_seen = state.tokens_seen + valid_counts
    chunk_offset = ((state.chunk_offset + length) % chunk_size
                    if mask is None and state.chunk_offset is not None else None)
    return y, MemoryState(current, momentum, chunk_start, tokens_seen, chunk_size, chunk_offset)


def _process_block(queries: Tensor, keys: Tensor, values: Tensor,
                   coefficients: ChunkCoefficients, memory: list[Tensor],
                   first_gradient_point: list[Tensor] | None, open_chunk_start: list[Tensor],
                   last_chunk: Tensor, block_start: int, compiled: bool,
                   max_surprise_norm: float | None = None
                   ) -> tuple[list[Tensor], Tensor, list[Tensor]]:
    """One block of chunks: the sequential pass, the batched reads, the open chunk's start."""
    memory, factors, starts = _advance(keys, values, coefficients, memory, first_gradient_point,
                                       compiled, max_surprise_norm)
    output = _retrieve(queries, coefficients, factors, starts)
    return memory, output, _select_chunk_start(open_chunk_start, starts, last_chunk, block_start)


# The sequential pass keeps each chunk's start memory for the batched retrieval pass; blocks of
# this many chunks keep that working set small (cache-resident) and bounded on long inputs.
_CHUNKS_PER_BLOCK = 8


def _silu_and_derivative(pre_activation: Tensor) -> tuple[Tensor, Tensor]:
    sigmoid = torch.sigmoid(pre_activation)
    activation = pre_activation * sigmoid
    return activation, sigmoid + activation * (1 - sigmoid)


def _chunk_step(keys: Tensor, values: Tensor, memory: tuple[Tensor, ...], transition: Tensor,
                update_weights: Tensor, gradient_point: tuple[Tensor, ...] | None,
                max_surprise_norm: float | None = None
                ) -> tuple[tuple[Tensor, ...], list[Tensor], list[Tensor]]:
    """One chunk of the sequential pass.

    ``keys, values (B, H, C, D)``; ``memory[l] = [W; S]`` (B, H, 2, D_in, D_out);
    ``transition (B, H, 2, 2)``; ``update_weights (B, H, 2, 1, C)``; ``gradient_point``: the
    weights at which this chunk's gradients are taken (None: the memory's own W);
    ``max_surprise_norm``: see :func:`memory_scan`.
    Returns the memory after the chunk and each layer's gradient factors ``a_l, δ_l``.
    """
    depth = len(memory)
    differentiable = torch.is_grad_enabled()
    if gradient_point is None:
        gradient_point = tuple(m[:, :, 0] for m in memory)
    # 1. every token's gradient at the chunk-start weights, factored as a_iᵀ δ_i (Eq. 16)
    layer_inputs = [keys]  # (B, H, C, D_k)
    derivatives = []
    hidden = keys
    for layer in range(depth):
        hidden = hidden @ gradient_point[layer]  # (B, H, C, D_out)
        if layer < depth - 1:
            if differentiable:
                activation, derivative = _silu_and_derivative(hidden)
                derivatives.append(derivative)
            else:
                derivatives.append(hidden)  # the fused silu_backward below takes the input
                activation = F.silu(hidden)
            layer_inputs.append(activation)
            hidden = activation
    output_grad = 2 * (hidden - values)  # ∂‖ŷ − v‖²/∂ŷ (Eq. 12, no ½)
    output_grads = [output_grad]
    for layer in range(depth - 1, 0, -1):
        back = output_grad @ gradient_point[layer].transpose(-1, -2)
        output_grad = back * derivatives[layer - 1] if differentiable else \
            torch.ops.aten.silu_backward(back, derivatives[layer - 1])
        output_grads.append(output_grad)
    output_grads.reverse()
    if max_surprise_norm is not None:
        output_grads = _clip_surprise(layer_inputs, output_grads, max_surprise_norm)

    # 2. [W; S] after the chunk's last token (Eqs. 13 and 18), one fused matmul per layer:
    #    [W_C; S_C] = transition · [W_0; S_0] − [aᵀ diag(G[C]θ); aᵀ diag(E[C]θ)] · δ
    new_memory = []
    for layer in range(depth):
        shape = memory[layer].shape  # (B, H, 2, D_in, D_out)
        rows = shape[0] * shape[1]
        weighted_inputs = update_weights \
            * layer_inputs[layer].transpose(-1, -2).unsqueeze(2)  # (B, H, 2, D_in, C)
        carried = torch.bmm(transition.reshape(rows, 2, 2),
                            memory[layer].reshape(rows, 2, -1))  # (B·H, 2, D_in·D_out)
        new_memory.append(torch.baddbmm(
            carried.view(rows, 2 * shape[3], shape[4]),
            weighted_inputs.reshape(rows, 2 * shape[3], -1),
            output_grads[layer].reshape(rows, -1, shape[4])).view(shape))
    return tuple(new_memory), layer_inputs, output_grads


def clip_factor(squared_norm: Tensor, max_norm: float) -> Tensor:
    """``min(1, τ / ‖u‖)`` from ``‖u‖²``; smooth at ``u = 0`` (no square root of 0)."""
    return max_norm / squared_norm.clamp_min(max_norm ** 2).sqrt()


def _clip_surprise(layer_inputs: list[Tensor], output_grads: list[Tensor], max_norm: float
                   ) -> list[Tensor]:
    """Scale every token's gradient ``u_i = (a_iᵀ δ_i)_l`` to norm at most ``max_norm`` over all
    layers, through its ``δ``: ``‖a_iᵀ δ_i‖_F = ‖a_i‖ ‖δ_i‖`` for a rank-1 term."""
    squared = sum(a.square().sum(-1) * d.square().sum(-1)
                  for a, d in zip(layer_inputs, output_grads))  # (B, H, C)
    factor = clip_factor(squared, max_norm).unsqueeze(-1)  # (B, H, C, 1)
    return [d * factor for d in output_grads]


_compiled_chunk_step = None


def _get_compiled_chunk_step():
    """``torch.compile`` of :func:`_chunk_step`, built on first use (fixed shapes per call)."""
    global _compiled_chunk_step
    if _compiled_chunk_step is None:
        _compiled_chunk_step = torch.compile(_chunk_step, dynamic=False)
    return _compiled_chunk_step


def _advance(keys: Tensor, values: Tensor, coefficients: ChunkCoefficients,
             memory: list[Tensor], first_gradient_point: list[Tensor] | None,
             compiled: bool = False, max_surprise_norm: float | None = None
             ) -> tuple[list[Tensor], list[tuple[Tensor, Tensor]], list[Tensor]]:
    """The sequential part: per chunk, gradients at its start weights, then the state update.

    ``keys, values (B, H, N_block, C, D)``; ``memory[l]`` is ``[W; S]`` (B, H, 2, D_in, D_out).
    Returns the memory after the block, each layer's gradient factors ``(a, δ)`` stacked over
    the block ``(B, H, N_block, C, D_in / D_out)`` and each layer's memory at every chunk start
    ``(B, H, N_block, 2, D_in, D_out)``.
    """
    step = _get_compiled_chunk_step() if compiled else _chunk_step
    depth = len(memory)
    inputs_per_chunk: list[list[Tensor]] = [[] for _ in range(depth)]
    grads_per_chunk: list[list[Tensor]] = [[] for _ in range(depth)]
    starts_per_chunk: list[list[Tensor]] = [[] for _ in range(depth)]
    state = tuple(memory)
    # unbind, not indexing: each per-chunk view's backward is then a single stack
    per_chunk = zip(keys.unbind(2), values.unbind(2), coefficients.transition.unbind(2),
                    coefficients.update_weights.unbind(2))
    for n, (keys_n, values_n, transition, update_weights) in enumerate(per_chunk):
        gradient_point = tuple(first_gradient_point) if (n == 0 and first_gradient_point) \
            else None
        for layer in range(depth):
            starts_per_chunk[layer].append(state[layer])
        state, layer_inputs, output_grads = step(keys_n, values_n, state, transition,
                                                 update_weights, gradient_point,
                                                 max_surprise_norm)
        for layer in range(depth):
            inputs_per_chunk[layer].append(layer_inputs[layer])
            grads_per_chunk[layer].append(output_grads[layer])

    factors = [(torch.stack(inputs_per_chunk[layer], 2), torch.stack(grads_per_chunk[layer], 2))
               for layer in range(depth)]
    starts = [torch.stack(starts_per_chunk[layer], 2) for layer in range(depth)]
    return list(state), factors, starts


def _retrieve(queries: Tensor, coefficients: ChunkCoefficients,
              factors: list[tuple[Tensor, Tensor]], starts: list[Tensor]) -> Tensor:
    """The parallel part: every token read at its own weights ``W_t`` (Eq. 15), all chunks at once.

    For a layer input ``h_t``:
    ``h_t W_t = B[t,0] h_t W_0 + G[t,0] h_t S_0 − Σ_{i≤t} G[t,i] θ_i (h_t · a_i) δ_i``.
    ``queries (B, H, N_block, C, D_k)`` → ``(B, H, N_block, C, D_v)``.
    """
    token_weights = coefficients.token_weights  # (B, H, N, C, C)
    read_weights = coefficients.read_weights  # (B, H, N, C, 2, 1)
    batch, heads, num_chunks, chunk_size, _ = queries.shape
    rows = batch * heads * num_chunks
    hidden = queries
    for layer, (layer_inputs, output_grads) in enumerate(factors):
        scores = (hidden @ layer_inputs.transpose(-1, -2)) * token_weights  # (B, H, N, C, C)
        # [B[t,0] h_t, G[t,0] h_t] · [W_0; S_0] as one matmul over 2·D_in
        weighted_hidden = (read_weights * hidden.unsqueeze(-2)).reshape(rows, chunk_size, -1)
        start = starts[layer]  # (B, H, N, 2, D_in, D_out)
        start = start.reshape(rows, -1, start.shape[-1])  # (B·H·N, 2·D_in, D_out)
        hidden_out = torch.baddbmm(torch.bmm(weighted_hidden, start),
                                   scores.view(rows, chunk_size, chunk_size),
                                   output_grads.reshape(rows, chunk_size, -1), alpha=-1)
        hidden_out = hidden_out.view(batch, heads, num_chunks, chunk_size, -1)
        hidden = F.silu(hidden_out) if layer < len(factors) - 1 else hidden_out
    return hidden


def _select_chunk_start(selected: list[Tensor], starts: list[Tensor], last_chunk: Tensor,
                        block_start: int) -> list[Tensor]:
    """Take, for rows whose last chunk (``last_chunk (B,)``) lies in the block that begins at
    chunk ``block_start`` (chunk 0 aside, whose gradient point is the incoming state's), that
    chunk's start weights from ``starts`` (B, H, N_block, 2, D_in, D_out)."""
    local = last_chunk - block_start
    here = ((local >= 0) & (local < starts[0].shape[2]) & (last_chunk > 0))[:, None, None, None]
    index = local.clamp(0, starts[0].shape[2] - 1)
    rows = torch.arange(last_chunk.shape[0], device=last_chunk.device)
    return [torch.where(here, start[rows, :, index, 0], previous)
            for start, previous in zip(starts, selected)]

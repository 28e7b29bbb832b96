"""The fast chunked memory scan: exact per-token semantics, no per-token weights.

The sequence is cut into chunks of ``chunk_size`` tokens counted from the first token the state
has seen. Per chunk (``W_c`` the weights at its start, the only sequential dependence):

1. one forward and backward pass of the chunk's keys through ``W_c`` gives every token's
   gradient as rank-1 factors ``a_iᵀ δ_i`` per layer (:func:`_surprise_factors`);
2. retrieval of every token at its *own* weights ``W_t`` is a causal, attention-like product:
   for a layer input ``h_t``,
   ``h_t W_t = B[t,0] h_t W_0 + G[t,0] h_t S_0 − Σ_{i≤t} G[t,i] θ_i (h_t · a_i) δ_i``;
3. the weights and momentum at the chunk's end are one fused matmul per layer.

Only 1 and 3 are sequential (the recurrence across chunks is non-linear); 2 runs batched over
blocks of chunks (:func:`_retrieve`). On the CPU the native kernel (:mod:`.native`,
``kernel="auto"``) does 1-3 for a block in one C++ sweep per row instead, on CUDA the Triton
kernel (:mod:`.triton_scan`); this module's path is their fallback and their reference. The
gate coefficients ``B, G, E`` of all chunks come from :mod:`.coefficients` in one batched pass
before the loop.

To change the update rule
-------------------------
The rule is ``u_t = ∂‖M_{W_c}(k_t) − v_t‖²/∂W`` (Eqs. 12, 16), ``S_t = η_t S_{t−1} − θ_t u_t``
(surprise with momentum) and ``W_t = (1 − α_t) W_{t−1} + S_t`` (forgetting, Eq. 13). It is
written in these places, and only these:

- ``coefficients.py`` :func:`.chunk_coefficients`: the ``η, θ, α`` recurrence unrolled over a
  chunk (``E, B, G``, their ``[W; S]`` pairs) and padding as an identity step. A rule that stays
  linear in ``[W; S]`` given the ``u_i`` changes here and in ``csrc/gates.h`` (the native
  kernel builds the same coefficients per chunk from the gates, by their recurrences).
- here, :func:`_surprise_factors`: the inner loss's gradient ``u_t`` (``2 (ŷ − v)`` through
  the MLP) as rank-1 factors; a different inner loss changes its ``output_grad`` line.
- here, :func:`_clip_surprise` and :func:`clip_factor` (shared with the reference): the
  optional clip of ``u_t`` (``max_surprise_norm``).
- here, :func:`_pack_memory`, :func:`_unpack_memory`, ``_WEIGHTS`` / ``_MOMENTUM``: the state as
  the pair ``[W; S]``; a rule with more state adds a slot here, in ``coefficients.py`` and in
  ``state.py``. :func:`_chunk_step`'s write and :func:`_retrieve` apply whatever linear map the
  coefficients give, except the sign of the ``θ u`` term in :func:`_retrieve` (``alpha=-1``:
  ``token_weights`` is ``+Gθ`` while ``update_weights`` carries its minus).
- ``csrc/chunk_math.h`` and ``csrc/chunk_step.cpp``: the native CPU kernel (:mod:`.native`)
  writes the surprise (``surprise``, with its clip), the reads (``read_chunk``), the update
  and all their backward passes by hand; a changed rule changes there too, and
  ``tests/memory/test_native.py`` compares it with this module.
- ``triton_scan.py``: the Triton kernel writes the surprise (``_linear_surprise``,
  ``_deep_surprise``), the reads (``_read``) and the update (``_update``) by hand, and
  ``triton_backward.py`` their backward passes; ``tests/memory/test_triton.py`` compares them
  with this module.
- ``reference.py`` :func:`.memory_scan_reference`: the same rule per token, in float64
  (``_token_loss``, ``new_momentum``, ``new_weights``), the oracle the tests compare to.
- ``state.py`` :class:`.MemoryState`: the state fields (``weights`` W, ``momentum`` S).
- ``validation.py`` :func:`.check_scan_inputs`: the gate ranges ``θ ≥ 0``, ``η, α ∈ [0, 1]``.
- ``layer.py`` ``NeuralMemory.forward``: the gates from the input
  (``θ = max_lr · σ · (1 − η)``, the ablations η = 0 / α = 0, ``writes=False``).
- ``tests/memory/test_memory_scan.py``: ``test_linear_memory_matches_hand_written_recurrence``,
  an oracle independent of both paths; ``tests/memory/test_layer.py``: the ablation tests.
- documentation: ``README.md`` ("What the op computes"), the docstrings of :func:`memory_scan`,
  :func:`.memory_scan_reference`, :mod:`.coefficients` and ``NeuralMemory``;
  ``benchmarks/memory_speed.py`` ``memory_flops_per_token`` counts this module's matmuls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import Tensor

from .coefficients import ChunkCoefficients, chunk_coefficients
from .native import check_kernel, native_block, native_scan, select_kernel
from .state import MemoryState
from .validation import check_scan_inputs, compute_dtype


def memory_scan(q: Tensor, k: Tensor, v: Tensor, theta: Tensor, eta: Tensor, alpha: Tensor,
                weights: Sequence[Tensor], chunk_size: int = 16,
                state: MemoryState | None = None, mask: Tensor | None = None, *,
                max_surprise_norm: float | None = None, compiled: bool = False,
                checkpoint_blocks: bool = False, kernel: str = "auto"
                ) -> tuple[Tensor, MemoryState]:
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
        Run the pure-PyTorch path's sequential per-chunk step through ``torch.compile``: same
        results, faster once compiled (about 2x for the loop, 1.1-1.3x for the whole layer on a
        2-core CPU); the first call of each shape pays the compilation. The native kernel
        needs no compilation and ignores it.
    checkpoint_blocks : bool
        When training, keep only each block of chunks' inputs and recompute its forward during
        the backward pass (measured on a 64 K-token call of a small layer: about half the peak
        memory for 1.3-1.6x the time).
    kernel : {"auto", "native", "triton", "torch"}
        The per-chunk sweep (every chunk's gradients, reads and update): ``"auto"`` runs the native
        CPU kernel (:mod:`.native`, built on first use) on CPU tensors when it builds, the Triton
        kernel (:mod:`.triton_scan`) on CUDA tensors when triton is installed and the memory has
        1 or 2 layers, and the pure-PyTorch path otherwise; ``"native"`` insists on the native
        kernel; ``"triton"`` on the Triton kernel (CUDA tensors, or CPU tensors under Triton's
        interpreter, ``TRITON_INTERPRET=1``; its backward is a Triton kernel too);
        ``"torch"`` forces the pure-PyTorch path. All give the same results to rounding.

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
                               checkpoint_blocks=checkpoint_blocks, kernel=check_kernel(kernel))


def chunked_memory_scan(q: Tensor, k: Tensor, v: Tensor, theta: Tensor, eta: Tensor,
                        alpha: Tensor, weights: Sequence[Tensor], chunk_size: int = 16,
                        state: MemoryState | None = None, mask: Tensor | None = None, *,
                        max_surprise_norm: float | None = None, compiled: bool = False,
                        checkpoint_blocks: bool = False, kernel: str = "auto"
                        ) -> tuple[Tensor, MemoryState]:
    """:func:`memory_scan` without input checks (the caller has done them)."""
    dtype = compute_dtype(q, k, v, theta, eta, alpha, *weights)
    sweep = select_kernel(kernel, q, depth=len(weights))
    with torch.autocast(q.device.type, enabled=False):  # the recurrence stays in fp32 or fp64
        return _scan(*(t.to(dtype) for t in (q, k, v, theta, eta, alpha)),
                     weights, chunk_size, state, mask, dtype, compiled and sweep == "torch",
                     checkpoint_blocks, max_surprise_norm, sweep)


def _scan(q: Tensor, k: Tensor, v: Tensor, theta: Tensor, eta: Tensor, alpha: Tensor,
          weights: Sequence[Tensor], chunk_size: int, state: MemoryState | None,
          mask: Tensor | None, dtype: torch.dtype, compiled: bool, checkpoint_blocks: bool,
          max_surprise_norm: float | None, sweep: str = "torch") -> tuple[Tensor, MemoryState]:
    """The scan in ``dtype``: lay the call out on chunks, run the blocks, assemble the state."""
    if state is None:
        state = MemoryState.initial(weights, k.shape[0], chunk_size, dtype)
    grid = _chunk_grid(state, mask, k.shape[2], chunk_size, k.device)
    # The native kernel reads inputs already on the grid in place; the other paths get copies.
    in_place = sweep == "native"
    queries, keys, values = (_to_chunks(x, grid, in_place) for x in (q, k, v))  # (B, H, N, C, D)
    gates = tuple(_to_chunks(gate, grid, in_place) for gate in (theta, eta, alpha))  # (B, H, N, C)
    memory, first_point = _pack_memory(state, dtype), _first_gradient_point(state, grid, dtype)
    if sweep == "native" and not (checkpoint_blocks and torch.is_grad_enabled()):
        memory, reads, open_chunk_start = _scan_native(queries, keys, values, gates, grid,
                                                       memory, first_point, max_surprise_norm)
    else:
        memory, reads, open_chunk_start = _scan_blocks(
            queries, keys, values, chunk_coefficients(*gates, grid.valid), memory, first_point,
            grid.last_chunk, compiled, checkpoint_blocks, max_surprise_norm, sweep)
    y = _from_chunks(reads, grid, mask)  # (B, H, T, D_v)
    return y, _final_state(state, memory, open_chunk_start, grid, mask)


# ---- (1) the chunk grid: every row's chunk boundaries aligned on one grid of N chunks of C

@dataclass
class _ChunkGrid:
    """Where each row's tokens of this call sit on the shared grid of chunks."""

    offsets: Tensor               # (B,) tokens each row already has in its open chunk
    grid_offsets: Tensor | None   # offsets, or None when all rows start at a chunk boundary
    valid_counts: Tensor          # (B,) valid tokens of each row in this call
    valid: Tensor                 # (B, 1, N, C) True where a grid position holds a valid token
    last_chunk: Tensor            # (B,) the chunk of each row's last valid token (0 if none)
    length: int                   # T, tokens per row in this call
    chunk_size: int               # C
    num_chunks: int               # N

    @property
    def grid_length(self) -> int:
        return self.num_chunks * self.chunk_size


def _chunk_grid(state: MemoryState, mask: Tensor | None, length: int, chunk_size: int,
                device: torch.device) -> _ChunkGrid:
    """The grid for a call of ``length`` tokens per row continuing ``state``."""
    offsets = state.tokens_seen % chunk_size  # (B,)
    valid_counts = mask.sum(1) if mask is not None else torch.full_like(offsets, length)
    # Without the hint (after a masked call) assume the worst offset rather than read the
    # tensor: at most one extra all-padding chunk, and no device sync or graph break.
    max_offset = state.chunk_offset if state.chunk_offset is not None else chunk_size - 1
    num_chunks = -(-(max_offset + length) // chunk_size)
    positions = torch.arange(num_chunks * chunk_size, device=device)[None, :] - offsets[:, None]
    valid = (positions >= 0) & (positions < valid_counts[:, None])  # (B, T_grid)
    last_chunk = torch.div(offsets + valid_counts - 1, chunk_size,
                           rounding_mode="floor").clamp_min(0)  # (B,)
    return _ChunkGrid(offsets=offsets, grid_offsets=offsets if max_offset > 0 else None,
                      valid_counts=valid_counts,
                      valid=valid.reshape(offsets.shape[0], 1, num_chunks, chunk_size),
                      last_chunk=last_chunk, length=length, chunk_size=chunk_size,
                      num_chunks=num_chunks)


def _to_chunks(x: Tensor, grid: _ChunkGrid, in_place: bool = False) -> Tensor:
    """``x`` (B, H, T, ...) placed on the grid and cut into chunks (B, H, N, C, ...);
    ``in_place``: a view of ``x`` when it already fills the grid (no copy)."""
    if not (in_place and grid.grid_offsets is None and grid.grid_length == x.shape[2]):
        x = _to_grid(x, grid.grid_offsets, grid.grid_length)  # (B, H, T_grid, ...)
    return x.reshape(x.shape[0], x.shape[1], grid.num_chunks, grid.chunk_size,
                     *x.shape[3:])  # (B, H, N, C, ...)


def _from_chunks(reads: Tensor, grid: _ChunkGrid, mask: Tensor | None) -> Tensor:
    """The reads (B, H, N, C, D_v) back at the call's positions (B, H, T, D_v), padding zeroed."""
    y = reads.reshape(reads.shape[0], reads.shape[1], grid.grid_length, -1)  # (B, H, T_grid, D_v)
    y = _from_grid(y, grid.grid_offsets, grid.length)  # (B, H, T, D_v)
    if mask is not None:  # padded tokens were read too, at unchanged weights
        y = y * mask[:, None, :, None]
    return y


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


# ---- the memory: per layer one tensor [W; S] (B, H, 2, D_in, D_out), so that one matmul
# advances both; the slots of the update rule's state, in this order.
_WEIGHTS, _MOMENTUM = 0, 1


def _pack_memory(state: MemoryState, dtype: torch.dtype) -> list[Tensor]:
    """Each layer's ``[W; S]`` from the state's weights and momentum."""
    return [torch.stack([w.to(dtype), s.to(dtype)], dim=2)  # (B, H, 2, D_in, D_out)
            for w, s in zip(state.weights, state.momentum)]


def _unpack_memory(memory: Sequence[Tensor]) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
    """The weights and momentum of each layer, (B, H, D_in, D_out), from ``[W; S]``."""
    return (tuple(m[:, :, _WEIGHTS] for m in memory),
            tuple(m[:, :, _MOMENTUM] for m in memory))


def _first_gradient_point(state: MemoryState, grid: _ChunkGrid, dtype: torch.dtype
                          ) -> list[Tensor]:
    """The weights at which chunk 0 takes its gradients, per layer (B, H, D_in, D_out)."""
    # A row at a chunk boundary starts a chunk at its current weights; the other rows continue
    # the open chunk, whose start weights the state holds.
    at_boundary = (grid.offsets == 0)[:, None, None, None]
    return [torch.where(at_boundary, w.to(dtype), c.to(dtype))
            for w, c in zip(state.weights, state.chunk_start_weights)]


# ---- (2) the blocks of chunks: advance the memory, read every token

# The sequential pass keeps each chunk's start memory for the batched retrieval pass; blocks of
# this many chunks keep that working set small (cache-resident) and bounded on long inputs.
_CHUNKS_PER_BLOCK = 8


def _scan_blocks(queries: Tensor, keys: Tensor, values: Tensor,
                 coefficients: ChunkCoefficients, memory: list[Tensor],
                 first_gradient_point: list[Tensor], last_chunk: Tensor, compiled: bool,
                 checkpoint_blocks: bool, max_surprise_norm: float | None, sweep: str = "torch"
                 ) -> tuple[list[Tensor], Tensor, list[Tensor]]:
    """All chunks, block by block: the memory after them, the reads, the open chunk's start.

    ``queries, keys, values (B, H, N, C, D)``; returns ``[W; S]`` per layer, the reads
    ``(B, H, N, C, D_v)`` and per layer the start weights of each row's last chunk
    ``(B, H, D_in, D_out)``; ``sweep``: ``"torch"``, ``"native"`` or ``"triton"``.
    """
    open_chunk_start = first_gradient_point  # right for rows whose last chunk is chunk 0
    reads = []
    # Blocks come from split (not indexing), so autograd's backward is one cat, not N zero-fills.
    blocks = zip(*(x.split(_CHUNKS_PER_BLOCK, dim=2) for x in (queries, keys, values)),
                 coefficients.split(_CHUNKS_PER_BLOCK))
    recompute = checkpoint_blocks and torch.is_grad_enabled()
    for index, (block_queries, block_keys, block_values, block_coefficients) in enumerate(blocks):
        arguments = (block_queries, block_keys, block_values, block_coefficients, memory,
                     first_gradient_point if index == 0 else None, open_chunk_start,
                     last_chunk, index * _CHUNKS_PER_BLOCK, compiled, max_surprise_norm, sweep)
        if recompute:  # keep only the block's inputs; redo its forward during backward
            memory, block_reads, open_chunk_start = torch.utils.checkpoint.checkpoint(
                _process_block, *arguments, use_reentrant=False)
        else:
            memory, block_reads, open_chunk_start = _process_block(*arguments)
        reads.append(block_reads)
    return memory, torch.cat(reads, dim=2), open_chunk_start  # reads (B, H, N, C, D_v)


def _scan_native(queries: Tensor, keys: Tensor, values: Tensor,
                 gates: tuple[Tensor, Tensor, Tensor], grid: _ChunkGrid, memory: list[Tensor],
                 first_gradient_point: list[Tensor], max_surprise_norm: float | None
                 ) -> tuple[list[Tensor], Tensor, list[Tensor]]:
    """:func:`_scan_blocks` for the native kernel: all chunks in one call, the coefficients
    computed inside it from the gates (:func:`.native.native_scan`)."""
    here, index = _open_chunk_in_block(grid.last_chunk, 0, grid.num_chunks)
    memory, reads, selected = native_scan(queries, keys, values, gates, grid.valid, memory,
                                          first_gradient_point, max_surprise_norm,
                                          torch.where(here, index, -1))
    return memory, reads, [torch.where(here[:, None, None, None], new, previous)
                           for new, previous in zip(selected, first_gradient_point)]


def _process_block(queries: Tensor, keys: Tensor, values: Tensor,
                   coefficients: ChunkCoefficients, memory: list[Tensor],
                   first_gradient_point: list[Tensor] | None, open_chunk_start: list[Tensor],
                   last_chunk: Tensor, block_start: int, compiled: bool,
                   max_surprise_norm: float | None = None, sweep: str = "torch"
                   ) -> tuple[list[Tensor], Tensor, list[Tensor]]:
    """One block of chunks: the sequential pass, the batched reads, the open chunk's start."""
    here, index = _open_chunk_in_block(last_chunk, block_start, queries.shape[2])
    if sweep != "torch":  # both passes in one sweep: csrc/chunk_step.cpp or triton_scan.py
        if sweep == "triton":
            from .triton_scan import triton_block as block  # triton is imported on first use
        else:
            block = native_block
        memory, output, selected = block(
            queries, keys, values, coefficients, memory, first_gradient_point,
            max_surprise_norm, torch.where(here, index, -1))
        return memory, output, [torch.where(here[:, None, None, None], new, previous)
                                for new, previous in zip(selected, open_chunk_start)]
    memory, factors, starts = _advance(keys, values, coefficients, memory,
                                       first_gradient_point, compiled, max_surprise_norm)
    output = _retrieve(queries, coefficients, factors, starts)
    return memory, output, _select_chunk_start(open_chunk_start, starts, here, index)


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
    if gradient_point is None:
        gradient_point = tuple(m[:, :, _WEIGHTS] for m in memory)
    layer_inputs, output_grads = _surprise_factors(keys, values, gradient_point,
                                                   max_surprise_norm)

    # [W; S] after the chunk's last token (Eqs. 13 and 18), one fused matmul per layer:
    # [W_C; S_C] = transition · [W_0; S_0] − [aᵀ diag(G[C]θ); aᵀ diag(E[C]θ)] · δ
    new_memory = []
    for layer in range(len(memory)):
        shape = memory[layer].shape  # (B, H, 2, D_in, D_out)
        rows, slots = shape[0] * shape[1], shape[2]
        weighted_inputs = update_weights \
            * layer_inputs[layer].transpose(-1, -2).unsqueeze(2)  # (B, H, 2, D_in, C)
        carried = torch.bmm(transition.reshape(rows, slots, slots),
                            memory[layer].reshape(rows, slots, -1))  # (B·H, 2, D_in·D_out)
        new_memory.append(torch.baddbmm(
            carried.view(rows, slots * shape[3], shape[4]),  # (B·H, 2·D_in, D_out)
            weighted_inputs.reshape(rows, slots * shape[3], -1),  # (B·H, 2·D_in, C)
            output_grads[layer].reshape(rows, -1, shape[4])  # (B·H, C, D_out)
        ).view(shape))  # (B, H, 2, D_in, D_out)
    return tuple(new_memory), layer_inputs, output_grads


def _surprise_factors(keys: Tensor, values: Tensor, gradient_point: tuple[Tensor, ...],
                      max_surprise_norm: float | None) -> tuple[list[Tensor], list[Tensor]]:
    """Every token's surprise ``u_i`` at ``gradient_point``, per layer ``a_iᵀ δ_i`` (Eq. 16).

    ``keys, values (B, H, C, D)``; returns the layer inputs ``a`` (B, H, C, D_in) and the
    output gradients ``δ`` (B, H, C, D_out), clipped when ``max_surprise_norm`` is set.
    """
    depth = len(gradient_point)
    differentiable = torch.is_grad_enabled()
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
    return layer_inputs, output_grads


def _silu_and_derivative(pre_activation: Tensor) -> tuple[Tensor, Tensor]:
    sigmoid = torch.sigmoid(pre_activation)
    activation = pre_activation * sigmoid
    return activation, sigmoid + activation * (1 - sigmoid)


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
        weighted_hidden = (read_weights * hidden.unsqueeze(-2)).reshape(
            rows, chunk_size, -1)  # (B·H·N, C, 2·D_in)
        start = starts[layer]  # (B, H, N, 2, D_in, D_out)
        start = start.reshape(rows, -1, start.shape[-1])  # (B·H·N, 2·D_in, D_out)
        hidden_out = torch.baddbmm(torch.bmm(weighted_hidden, start),
                                   scores.view(rows, chunk_size, chunk_size),
                                   output_grads.reshape(rows, chunk_size, -1),
                                   alpha=-1)  # the θ u terms enter W_t with a minus
        hidden_out = hidden_out.view(batch, heads, num_chunks, chunk_size, -1)  # (B, H, N, C, D)
        hidden = F.silu(hidden_out) if layer < len(factors) - 1 else hidden_out
    return hidden


def _open_chunk_in_block(last_chunk: Tensor, block_start: int, block_chunks: int
                         ) -> tuple[Tensor, Tensor]:
    """For each row's last chunk (``last_chunk (B,)``): whether it lies in the block of
    ``block_chunks`` chunks that begins at chunk ``block_start`` (chunk 0 aside, whose gradient
    point is the incoming state's), and its index inside the block; both (B,)."""
    local = last_chunk - block_start
    here = (local >= 0) & (local < block_chunks) & (last_chunk > 0)
    return here, local.clamp(0, block_chunks - 1)


def _select_chunk_start(selected: list[Tensor], starts: list[Tensor], here: Tensor,
                        index: Tensor) -> list[Tensor]:
    """Take, for rows ``here`` (B,), the start weights of chunk ``index`` (B,) of the block from
    ``starts`` (B, H, N_block, 2, D_in, D_out); the other rows keep ``selected``."""
    rows = torch.arange(index.shape[0], device=index.device)
    return [torch.where(here[:, None, None, None], start[rows, :, index, _WEIGHTS], previous)
            for start, previous in zip(starts, selected)]


# ---- (3) the state after the call

def _final_state(state: MemoryState, memory: list[Tensor], open_chunk_start: list[Tensor],
                 grid: _ChunkGrid, mask: Tensor | None) -> MemoryState:
    """The state after each row's last valid token, from the memory after the last block."""
    weights, momentum = _unpack_memory(memory)
    # The next token falls into the chunk of the row's last valid token (its start weights were
    # picked block by block), unless that token closed its chunk: then the current weights.
    ends_chunk = ((grid.offsets + grid.valid_counts) % grid.chunk_size == 0)[:, None, None, None]
    chunk_start = tuple(torch.where(ends_chunk, w, c) for w, c in zip(weights, open_chunk_start))
    tokens_seen = state.tokens_seen + grid.valid_counts
    # The offset hint survives an unmasked call only: there every row advanced by T tokens.
    chunk_offset = ((state.chunk_offset + grid.length) % grid.chunk_size
                    if mask is None and state.chunk_offset is not None else None)
    return MemoryState(weights, momentum, chunk_start, tokens_seen, grid.chunk_size,
                       chunk_offset)

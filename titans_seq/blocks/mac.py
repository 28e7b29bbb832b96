"""The MAC block: memory as a context (Eqs. 21-25)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..attention import Attention
from ..attention.kernels import ALWAYS
from ..memory import NeuralMemoryState
from .config import BlockConfig
from .parts import BlockState, MemoryGate, RMSNorm, SegmentState, TitansBlock


class MACBlock(TitansBlock):
    """Memory as a context, in the paper's order: retrieve → attend → store → gated read.

    The input is cut into segments of ``segment_len`` tokens, counted from the stream's first
    token. For segment ``s``, with ``M_{s−1}`` the memory after the segments before it:

    1. retrieve ``h_s = M*_{s−1}(q)`` (Eq. 21), ``N_l`` tokens;
    2. attend, causally inside the segment, over ``[P ‖ h_s ‖ segment]`` (Eqs. 22-23):
       ``y = x + Attn(norm x)``;
    3. store ``y`` in the memory (Eq. 24) and read it back, ``M*(y)``;
    4. output ``o = y + gate(y, M*(y))`` (Eq. 25, :class:`MemoryGate`), then ``o + FFN(o)``.

    **Which queries retrieve ``h_s``.** Eq. 21 takes ``q`` from the segment itself. Read
    literally, every token of the segment would then see memory tokens computed from later
    tokens of its own segment: not causal. We retrieve with ``N_l`` *learned query tokens*
    instead (the ``N_l`` long-term memory tokens of the paper's Fig. 3a), so ``h_s`` depends on
    the segments before ``s`` only, through ``M_{s−1}`` — what the memory has learnt decides
    what it returns. Queries from what precedes the segment would also be causal, but would
    tie ``h_s`` to a few arbitrary tokens and make streaming keep the previous segment.

    **Granularity of the read in step 3.** Eq. 25 reads with ``M_t``, the memory after the
    whole segment; that too would let a token see its segment's later tokens. Each token reads
    the memory after its own update (the memory layer's ``y_t = M_{W_t}(q_t)``), which equals
    ``M_t`` at the segment's last token.

    ``attention=False`` drops steps 1-2 (``y = x``).
    """

    def __init__(self, config: BlockConfig) -> None:
        super().__init__(config, persistent=config.attention)  # P is attention context only
        self.segment_len = config.segment_len
        self.attention = None
        self.memory_queries = None
        if config.attention:
            self.attention_norm = RMSNorm(config.dim)
            self.attention = Attention(config.dim, config.heads, config.rotary,
                                       config.attention_backend)
            if config.memory_tokens:
                self.memory_queries = nn.Parameter(
                    torch.randn(config.memory_tokens, config.dim) * 0.02)
                self.retrieved_norm = RMSNorm(config.dim)
        self.memory_norm = RMSNorm(config.dim)
        self.gate = MemoryGate(config.dim)

    def initial_state(self, batch_size: int) -> BlockState:
        """The state before any input: a fresh memory and no open segment."""
        memory_state = self.memory.initial_state(batch_size)
        reference = self.memory.initial_weights[0]
        heads = self.attention.heads if self.attention is not None else 1
        head_dim = self.attention.head_dim if self.attention is not None else 1
        empty = reference.new_zeros(batch_size, heads, 0, head_dim)  # (B, H, 0, D)
        positions = torch.zeros(batch_size, 0, dtype=torch.long, device=reference.device)
        segment = SegmentState(None, None, empty, empty, positions, phase=0)
        return BlockState(memory_state, segment=segment)

    def forward(self, x: Tensor, state: BlockState,
                mask: Tensor | None = None) -> tuple[Tensor, BlockState]:
        """``x (B, T, dim)`` → ``(B, T, dim)`` and the state after each row's last valid token.

        Raises ``ValueError`` when the state's rows stopped at different places inside their
        segments (after a masked call), since the rows would need different segment cuts.
        """
        before = state.segment
        if before.phase is None:
            raise ValueError(
                "this MAC state's rows stopped at different positions inside their segments "
                "(a masked call ended them at different lengths); continue each row on its own "
                "or pad the rows to equal lengths")
        batch, length, _ = x.shape
        sinks = self._sinks()
        first_position = state.memory.tokens_seen  # (B,) position of x[:, 0]
        memory_state, segment, phase = state.memory, before, before.phase
        outputs = []
        start = 0
        while start < length:
            end = min(length, start + self.segment_len - phase)
            piece = x[:, start:end]  # (B, L', dim)
            piece_mask = mask[:, start:end] if mask is not None else None
            if phase == 0:  # a new segment: retrieve from the memory before it (Eq. 21)
                segment = self._open_segment(segment, memory_state, batch)
            y = piece
            if self.attention is not None:
                positions = first_position[:, None] + start + torch.arange(
                    end - start, device=x.device)  # (B, L')
                attended, segment = self._attend(piece, segment, sinks, positions)
                y = piece + self.dropout(attended)
            read, memory_state = self.memory(self.memory_norm(y), memory_state, piece_mask,
                                             validate=False)  # store y (Eq. 24), read M*(y)
            outputs.append(y + self.dropout(self.gate(y, read)))  # Eq. 25
            phase = (phase + end - start) % self.segment_len
            start = end
        h = torch.cat(outputs, dim=1) if len(outputs) > 1 else outputs[0]  # (B, T, dim)
        segment = self._close(segment, before, memory_state.tokens_seen, length, mask)
        return self._feed_forward(h), BlockState(memory_state, segment=segment)

    def _sinks(self) -> tuple[Tensor, Tensor] | None:
        """The persistent tokens' keys and values ``(1, H, N_p, D)``, recomputed per call."""
        if self.persistent is None:
            return None
        return self.attention.keys_values(self.attention_norm(self.persistent(1)), None)

    def _open_segment(self, segment: SegmentState, memory_state: NeuralMemoryState,
                      batch: int) -> SegmentState:
        retrieved_keys = retrieved_values = None
        if self.memory_queries is not None:
            queries = self.memory_queries.unsqueeze(0).expand(batch, -1, -1)  # (B, N_l, dim)
            retrieved = self.memory.retrieve(queries, memory_state)  # (B, N_l, dim)
            retrieved_keys, retrieved_values = self.attention.keys_values(
                self.retrieved_norm(retrieved), None)  # (B, H, N_l, D)
        return SegmentState(retrieved_keys, retrieved_values, segment.keys[:, :, :0],
                            segment.values[:, :, :0], segment.positions[:, :0], 0)

    def _attend(self, piece: Tensor, segment: SegmentState,
                sinks: tuple[Tensor, Tensor] | None,
                positions: Tensor) -> tuple[Tensor, SegmentState]:
        """Causal attention of the piece at ``positions (B, L')`` over
        ``[P ‖ h ‖ segment so far ‖ piece]``."""
        batch = piece.shape[0]
        normed = self.attention_norm(piece)
        q = self.attention.queries(normed, positions)
        k, v = self.attention.keys_values(normed, positions)  # (B, H, L', D)
        keys, values, key_positions = [], [], []
        for fixed_keys, fixed_values in (sinks or (None, None),
                                         (segment.retrieved_keys, segment.retrieved_values)):
            if fixed_keys is not None:
                keys.append(fixed_keys.to(k.dtype).expand(batch, -1, -1, -1))
                values.append(fixed_values.to(v.dtype).expand(batch, -1, -1, -1))
                key_positions.append(positions.new_full((batch, fixed_keys.shape[2]), ALWAYS))
        segment_keys = torch.cat([segment.keys.to(k.dtype), k], dim=2)  # (B, H, n + L', D)
        segment_values = torch.cat([segment.values.to(v.dtype), v], dim=2)
        segment_positions = torch.cat([segment.positions, positions], dim=1)  # (B, n + L')
        attended = self.attention.attend(
            q, torch.cat(keys + [segment_keys], dim=2),
            torch.cat(values + [segment_values], dim=2), positions,
            torch.cat(key_positions + [segment_positions], dim=1), self.segment_len)
        segment = SegmentState(segment.retrieved_keys, segment.retrieved_values, segment_keys,
                               segment_values, segment_positions, segment.phase)
        return attended, segment

    def _close(self, segment: SegmentState, before: SegmentState, tokens_seen: Tensor,
               length: int, mask: Tensor | None) -> SegmentState:
        """The state after each row's last valid token (``tokens_seen (B,)`` after the call).

        The buffer holds the last opened segment from its start; each row keeps its tokens of
        it up to its last valid one. Rows that end at different places, or in an earlier
        segment than the call's last, get ``phase=None``: the next call refuses them. Without
        attention nothing but the count is kept, so any rows continue.
        """
        empty = segment.keys[:, :, :0], segment.values[:, :, :0], segment.positions[:, :0]
        if mask is None:  # every row stopped at the end: the buffer is the open segment
            phase = (before.phase + length) % self.segment_len
            kept = (segment.keys, segment.values, segment.positions) if phase else empty
            return SegmentState(segment.retrieved_keys, segment.retrieved_values, *kept, phase)
        valid = mask.sum(1)  # (B,)
        if not bool(valid.any()):  # all padding: nothing happened
            return before
        if self.attention is None:
            return SegmentState(None, None, *empty, 0)
        phases = set((tokens_seen % self.segment_len).tolist())
        phase = phases.pop() if len(phases) == 1 else None
        last_segment = (before.phase + length - 1) // self.segment_len
        row_segments = (before.phase + valid - 1).div(self.segment_len, rounding_mode="floor")
        if phase and bool((row_segments != last_segment).any()):
            phase = None
        if not phase:  # None, or every row at a segment boundary
            return SegmentState(segment.retrieved_keys, segment.retrieved_values, *empty, phase)
        # Row b's last valid token sits `length − valid_b` places before the buffer's end.
        end = segment.keys.shape[2] - (length - valid)  # (B,)
        index = end[:, None] - phase + torch.arange(phase, device=end.device)  # (B, phase)
        heads, head_dim = segment.keys.shape[1], segment.keys.shape[3]
        gather_index = index[:, None, :, None].expand(-1, heads, -1, head_dim)
        return SegmentState(segment.retrieved_keys, segment.retrieved_values,
                            segment.keys.gather(2, gather_index),  # (B, H, phase, D)
                            segment.values.gather(2, gather_index),
                            segment.positions.gather(1, index), phase)

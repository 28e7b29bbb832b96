"""``NeuralMemory``: the long-term memory as a sequence layer (the paper's §3.1 and §4.4)."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checks import integer, real

from .chunked import chunked_memory_scan
from .conv import CausalDepthwiseConv1d
from .mlp import memory_mlp
from .native import check_kernel, native_gated_output, native_qkv_activation, uses_native
from .state import MemoryState
from .validation import check_max_surprise_norm, check_scan_inputs, check_sequence


_L2_EPS = 1e-20  # q and k: x / sqrt(‖x‖² + D·ε)
_NORM_EPS = 1e-6  # the reads' RMSNorm


def _fused(kernel: str, tensor: Tensor) -> bool:
    """Whether the layer's elementwise stages run through the native ops (csrc/layer_ops.cpp):
    with the native kernel, on float32 and float64."""
    return tensor.dtype in (torch.float32, torch.float64) and uses_native(kernel, tensor)


@dataclass
class NeuralMemoryState:
    """Streaming state of :class:`NeuralMemory`: the memory and the convolution's input tail."""

    memory: MemoryState
    conv_tail: Tensor | None  # (B, kernel − 1, 3 · heads · head_dim), None without convolution

    def detach(self) -> "NeuralMemoryState":
        tail = self.conv_tail.detach() if self.conv_tail is not None else None
        return NeuralMemoryState(self.memory.detach(), tail)

    @property
    def tokens_seen(self) -> Tensor:
        return self.memory.tokens_seen


@contextlib.contextmanager
def frozen_memory(module: nn.Module):
    """Within the block, every :class:`NeuralMemory` inside ``module`` reads without writing:
    its weights (and momentum, which is cleared) no longer learn from the tokens it sees."""
    layers = [m for m in module.modules() if isinstance(m, NeuralMemory)]
    before = [layer.writes for layer in layers]
    for layer in layers:
        layer.writes = False
    try:
        yield
    finally:
        for layer, writes in zip(layers, before):
            layer.writes = writes


class NeuralMemory(nn.Module):
    """The Titans long-term memory (LMM) as a layer: ``forward(x, state, mask) -> (y, state)``.

    Per token (§4.4): ``q, k, v = SiLU(conv(x W_Q)), SiLU(conv(x W_K)), SiLU(conv(x W_V))``
    with causal depthwise convolutions, ℓ2-normalised q and k; data-dependent gates per head
    ``η_t = σ(x W_η)``, ``α_t = σ(x W_α)`` and ``θ_t = max_lr · σ(x W_θ) · (1 − η_t)`` (so
    the momentum's effective step ``θ_t / (1 − η_t)`` never exceeds ``max_lr``); the memory
    MLP is written with ``(k_t, v_t)`` and read with ``q_t`` (Eqs. 12-18, see
    :func:`~titans_seq.memory.memory_scan`); the read is normalised per head (RMSNorm), gated by
    ``SiLU(x W_G)`` and projected back to ``dim``.

    Parameters
    ----------
    dim : int
        Model width of the input and output.
    heads : int
        Number of independent memories.
    head_dim : int, optional
        Key/value width per head (default ``dim // heads``).
    memory_depth : int
        Layers of the memory MLP; 1 is a linear (matrix) memory (Table 5's "Linear Memory").
    memory_hidden : int, optional
        Hidden width of a deep memory (default ``4 * head_dim``).
    chunk_size : int
        Tokens whose gradients share one weight point (Eq. 16's ``b``).
    max_lr : float, optional
        Upper bound of the effective inner step ``θ / (1 − η)`` (θ alone without momentum);
        it starts at about 0.12 · max_lr. Default ``1 / chunk_size``: a chunk sums its tokens'
        gradients taken at one point, so when its keys all point the same way (common in real
        data) its step is ``chunk_size`` times a token's, and ``1 / chunk_size`` keeps that
        worst case at one delta-rule write (stable). Larger values write harder and may
        diverge in training.
    momentum : bool
        Keep the surprise momentum (Eq. 10); False sets η = 0 (Table 5's "w/o Momentum").
    forgetting : bool
        Keep the forgetting gate (Eq. 13); False sets α = 0 (Table 5's "w/o Weight Decay").
    convolution : bool
        Causal depthwise convolution after the q/k/v projections (Table 5's "w/o Convolution").
    conv_kernel : int
        Width of that convolution.
    max_surprise_norm : float, optional
        Clip each token's surprise (the inner gradient over all memory layers) to this norm
        (see :func:`~titans_seq.memory.memory_scan`); None is the paper's update. Worth setting
        for a deep memory trained at a high learning rate: its writes can otherwise diverge.
    compiled : bool
        Run the pure-PyTorch path's sequential chunk step through ``torch.compile`` (same
        results; faster after a one-off compilation per input shape); see ``kernel``.
    checkpoint_blocks : bool
        Recompute the memory's blocks of chunks during backward instead of storing them: less
        memory for long training sequences (about half in one measurement), for more compute.
    kernel : {"auto", "native", "triton", "torch"}
        The scan's sequential pass: ``"auto"`` takes the native CPU kernel on the CPU when it
        builds and the Triton kernel on CUDA when triton is installed (memory_depth 1 or 2),
        the pure-PyTorch path otherwise; ``"native"`` and ``"triton"`` insist on that kernel,
        ``"torch"`` on the pure-PyTorch path; see :func:`~titans_seq.memory.memory_scan`.
        Same results to rounding.
    """

    def __init__(self, dim: int, heads: int = 4, head_dim: int | None = None,
                 memory_depth: int = 2, memory_hidden: int | None = None, chunk_size: int = 16,
                 max_lr: float | None = None, momentum: bool = True, forgetting: bool = True,
                 convolution: bool = True, conv_kernel: int = 4,
                 max_surprise_norm: float | None = None, compiled: bool = False,
                 checkpoint_blocks: bool = False, kernel: str = "auto") -> None:
        super().__init__()
        dim, heads, memory_depth = (integer("dim", dim), integer("heads", heads),
                                    integer("memory_depth", memory_depth))
        chunk_size, conv_kernel = integer("chunk_size", chunk_size), integer("conv_kernel",
                                                                             conv_kernel)
        head_dim = integer("head_dim", head_dim, optional=True)
        memory_hidden = integer("memory_hidden", memory_hidden, optional=True)
        head_dim = head_dim if head_dim is not None else dim // heads
        memory_hidden = memory_hidden if memory_hidden is not None else 4 * head_dim
        if head_dim < 1 or memory_hidden < 1:
            raise ValueError(f"head_dim ({head_dim}) and memory_hidden ({memory_hidden}) must be "
                             f">= 1; with dim={dim} and heads={heads}, pass head_dim explicitly")
        max_lr = 1.0 / chunk_size if max_lr is None else max_lr
        max_lr = real("max_lr", max_lr, 0.0, low_open=True)
        self.dim, self.heads, self.head_dim = dim, heads, head_dim
        self.memory_depth, self.memory_hidden = memory_depth, memory_hidden
        self.chunk_size, self.max_lr = chunk_size, max_lr
        self.momentum, self.forgetting, self.convolution = momentum, forgetting, convolution
        check_max_surprise_norm(max_surprise_norm)
        self.compiled, self.checkpoint_blocks = compiled, checkpoint_blocks
        self.kernel = check_kernel(kernel)
        self.max_surprise_norm = max_surprise_norm
        inner = heads * head_dim

        self.qkv = nn.Linear(dim, 3 * inner, bias=False)  # W_Q, W_K, W_V (Eqs. 11, 15)
        self.conv = CausalDepthwiseConv1d(3 * inner, conv_kernel) if convolution else None
        # One projection for the gates that are on: θ always, η and α when enabled.
        self.num_gates = 1 + int(momentum) + int(forgetting)
        self.gates = nn.Linear(dim, self.num_gates * heads)
        with torch.no_grad():
            self.gates.weight.mul_(0.1)
            # The step starts at 0.12 · max_lr: a chunk of aligned keys (real data) sums its
            # gradients at one point, and a larger start step diverges at chunk_size 16.
            biases = [torch.full((heads,), -2.0)]
            if momentum:
                biases.append(torch.full((heads,), 2.0))  # η ≈ 0.88
            if forgetting:
                biases.append(torch.full((heads,), -4.6))  # α ≈ 0.01
            self.gates.bias.copy_(torch.cat(biases))

        # Learned initial memory M_0: one (heads, D_in, D_out) weight per layer.
        widths = [head_dim] + [memory_hidden] * (memory_depth - 1) + [head_dim]
        self.initial_weights = nn.ParameterList(
            nn.Parameter(torch.randn(heads, d_in, d_out) / math.sqrt(d_in))
            for d_in, d_out in zip(widths[:-1], widths[1:]))

        self.output_norm_weight = nn.Parameter(torch.ones(heads, head_dim))
        self.output_gate = nn.Linear(dim, inner, bias=False)
        self.output = nn.Linear(inner, dim, bias=False)
        # False freezes the memory: tokens are read but not written (θ = η = α = 0, so the
        # weights stay where they are); see :func:`frozen_memory`.
        self.writes = True

    def initial_state(self, batch_size: int) -> NeuralMemoryState:
        """The state before any token, for ``batch_size`` independent streams."""
        dtype = torch.promote_types(self.initial_weights[0].dtype, torch.float32)
        memory = MemoryState.initial(list(self.initial_weights), batch_size, self.chunk_size,
                                     dtype)
        tail = None
        if self.conv is not None:
            tail = self.initial_weights[0].new_zeros(
                batch_size, self.conv.kernel_size - 1, 3 * self.heads * self.head_dim)
        return NeuralMemoryState(memory, tail)

    def forward(self, x: Tensor, state: NeuralMemoryState | None = None,
                mask: Tensor | None = None, *,
                validate: bool = True) -> tuple[Tensor, NeuralMemoryState]:
        """``x (B, T, dim)`` → ``y (B, T, dim)`` and the state after each row's last valid token.

        ``mask (B, T)`` bool, True = valid, padding only at the end of a row; padded positions
        do not touch the state and give ``y = 0``. ``validate=False`` skips the input checks
        (for callers that have made them: they read tensor values, which syncs devices and
        breaks ``torch.compile`` graphs).
        """
        if validate:
            self._check_input(x, state, mask)
        batch, length, _ = x.shape
        if state is None:
            state = self.initial_state(batch)

        projected = self.qkv(x)  # (B, T, 3 · H · D)
        conv_tail = None
        kernel = self._kernel
        if self.conv is not None:
            projected, conv_tail = self.conv(projected, state.conv_tail, mask,
                                             native=uses_native(kernel, projected))
        q, k, v = self._activate(projected.view(batch, length, 3, self.heads, self.head_dim),
                                 kernel)  # each (B, H, T, D)

        gates = torch.sigmoid(self.gates(x).to(torch.promote_types(x.dtype, torch.float32))).view(
            batch, length, self.num_gates, self.heads).permute(2, 0, 3, 1)  # (G, B, H, T)
        step = self.max_lr * gates[0]  # the effective step θ / (1 − η), at most max_lr
        eta = gates[1] if self.momentum else torch.zeros_like(step)
        theta = step * (1 - eta) if self.momentum else step
        alpha = gates[-1] if self.forgetting else torch.zeros_like(step)
        if not self.writes:
            theta, eta, alpha = (torch.zeros_like(step),) * 3

        read, memory_state = chunked_memory_scan(
            q, k, v, theta, eta, alpha, list(self.initial_weights), self.chunk_size,
            state.memory, mask, max_surprise_norm=self.max_surprise_norm,
            compiled=self.compiled,
            checkpoint_blocks=self.checkpoint_blocks, kernel=kernel)  # (B, H, T, D)

        y = self._output(read, x, kernel)
        if mask is not None:
            y = y * mask[:, :, None]
        return y, NeuralMemoryState(memory_state, conv_tail)

    def retrieve(self, x: Tensor, state: NeuralMemoryState) -> Tensor:
        """Read the memory at the state's current weights without writing to it.

        ``M*(q)`` of Eqs. 15 and 21: ``x (B, N, dim)`` is projected to queries (SiLU, ℓ2 norm;
        no convolution, since ``x`` need not be a time series) and read through the weights
        after the state's last token; the read takes the same output path as :meth:`forward`.
        Returns ``(B, N, dim)``; the state is unchanged.
        """
        if not isinstance(state, NeuralMemoryState):
            raise TypeError(f"state must be a NeuralMemoryState, got {type(state).__name__}")
        if not isinstance(x, Tensor) or not x.is_floating_point() or x.dim() != 3 \
                or x.shape[-1] != self.dim or x.shape[0] != state.memory.batch_size:
            raise ValueError(f"x must be a float tensor (B={state.memory.batch_size}, N, "
                             f"dim={self.dim}), got "
                             f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
        batch, length, _ = x.shape
        inner = self.heads * self.head_dim
        q = F.silu(F.linear(x, self.qkv.weight[:inner])).view(
            batch, length, self.heads, self.head_dim)  # (B, N, H, D)
        q = self._l2_normalise(q).transpose(1, 2)  # (B, H, N, D)
        weights = state.memory.weights  # each (B, H, D_in, D_out)
        with torch.autocast(x.device.type, enabled=False):
            read = memory_mlp(q.to(weights[0].dtype), weights)  # (B, H, N, D)
        return self._output(read, x, self._kernel)

    @property
    def _kernel(self) -> str:
        """The kernel option (layers pickled before it existed: ``"auto"``)."""
        return getattr(self, "kernel", "auto")

    def _activate(self, projected: Tensor, kernel: str) -> tuple[Tensor, Tensor, Tensor]:
        """``projected (B, T, 3, H, D)`` → q, k, v (B, H, T, D): SiLU, q and k ℓ2-normalised."""
        if _fused(kernel, projected):
            return native_qkv_activation(projected, _L2_EPS)
        projected = F.silu(projected)
        # ℓ2-normalise q and k while each head's features are contiguous.
        query_key = self._l2_normalise(projected[:, :, :2])  # (B, T, 2, H, D)
        q, k = query_key.permute(2, 0, 3, 1, 4)  # each (B, H, T, D)
        return q, k, projected[:, :, 2].transpose(1, 2)

    def _l2_normalise(self, x: Tensor) -> Tensor:
        """ℓ2 norm over the last (head) dimension in one fused op:
        ``rms_norm(x) / sqrt(D) = x / sqrt(‖x‖² + D·ε)``."""
        return F.rms_norm(x, (self.head_dim,), eps=_L2_EPS) * self.head_dim ** -0.5

    def _output(self, read: Tensor, x: Tensor, kernel: str) -> Tensor:
        """Per-head RMSNorm, then the output gate and projection (§4.4 "Gating")."""
        gate = self.output_gate(x)
        if read.dtype == gate.dtype and _fused(kernel, read):
            return self.output(native_gated_output(read, self.output_norm_weight.to(read.dtype),
                                                   gate, _NORM_EPS))
        batch, _, length, _ = read.shape
        read = read.transpose(1, 2)  # (B, T, H, D)
        read = F.rms_norm(read, (self.head_dim,), eps=_NORM_EPS) * self.output_norm_weight
        read = read.reshape(batch, length, -1)  # (B, T, H · D)
        return self.output(read.to(x.dtype) * F.silu(gate))

    def _check_input(self, x: Tensor, state: NeuralMemoryState | None,
                     mask: Tensor | None) -> None:
        check_sequence(x, self.dim)
        if state is not None and not isinstance(state, NeuralMemoryState):
            raise TypeError(f"state must be a NeuralMemoryState (as returned by forward), got "
                            f"{type(state).__name__}")
        # The scan's own checks cover mask and memory state; shapes only, values are fine.
        batch, length, _ = x.shape
        probe = x.new_zeros(batch, self.heads, length, 1).expand(-1, -1, -1, self.head_dim)
        gate = probe[..., 0]
        check_scan_inputs(probe, probe, probe, gate, gate, gate, list(self.initial_weights),
                          self.chunk_size, state.memory if state is not None else None, mask,
                          check_values=False)

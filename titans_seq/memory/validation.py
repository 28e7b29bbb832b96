"""Input checks shared by the reference and the chunked memory scan.

Both paths call :func:`check_scan_inputs` so that they refuse exactly the same inputs, with
messages that name the problem and the fix.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from .checks import integer, real

from .state import MemoryState


def _require_tensor(name: str, value: object) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (float32 or float64), "
                        f"got dtype {value.dtype}; convert it with .float()")
    return value


def _require_finite(name: str, value: Tensor) -> None:
    if not bool(torch.isfinite(value).all()):
        bad = int((~torch.isfinite(value)).sum())
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s); clean or impute "
                         "the input before the memory sees it")


def compute_dtype(*tensors: Tensor) -> torch.dtype:
    """float64 when any input is float64, float32 otherwise: the recurrence never runs below fp32."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def check_max_surprise_norm(value: float | None) -> None:
    """``max_surprise_norm`` is None or a positive finite number."""
    real("max_surprise_norm", value, 0.0, low_open=True, optional=True,
         hint="None: no clipping")


def check_scan_inputs(q: Tensor, k: Tensor, v: Tensor, theta: Tensor, eta: Tensor,
                      alpha: Tensor, weights: Sequence[Tensor], chunk_size: int,
                      state: MemoryState | None, mask: Tensor | None,
                      check_values: bool = True, max_surprise_norm: float | None = None
                      ) -> None:
    """Raise ``TypeError`` / ``ValueError`` for anything :func:`memory_scan` cannot take.

    ``check_values=False`` skips the data-dependent checks (finite values, gate ranges), which
    need a device synchronisation; the layer uses it after checking its own input.
    """
    for name, value in (("q", q), ("k", k), ("v", v), ("theta", theta), ("eta", eta),
                        ("alpha", alpha)):
        _require_tensor(name, value)
    check_max_surprise_norm(max_surprise_norm)
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError("q, k and v must be 4-D (batch, heads, time, features); got shapes "
                         f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if q.shape != k.shape:
        raise ValueError(f"q and k must have the same shape (B, H, T, D_k); got {tuple(q.shape)} "
                         f"and {tuple(k.shape)}")
    batch, heads, length, key_dim = k.shape
    if v.shape[:3] != (batch, heads, length):
        raise ValueError(f"v must be (B, H, T, D_v) = ({batch}, {heads}, {length}, D_v) like k; "
                         f"got {tuple(v.shape)}")
    if length == 0:
        raise ValueError("the sequence is empty (T = 0); pass at least one token")
    for name, gate in (("theta", theta), ("eta", eta), ("alpha", alpha)):
        if gate.shape != (batch, heads, length):
            raise ValueError(f"{name} must be (B, H, T) = ({batch}, {heads}, {length}); "
                             f"got {tuple(gate.shape)}")
    devices = {t.device for t in (q, k, v, theta, eta, alpha)}
    if len(devices) > 1:
        raise ValueError(f"all inputs must be on one device; got {sorted(map(str, devices))}")

    integer("chunk_size", chunk_size)

    if isinstance(weights, Tensor) or not isinstance(weights, Sequence) or len(weights) == 0:
        raise TypeError("weights must be a non-empty sequence of (H, D_in, D_out) tensors, "
                        "one per memory layer")
    previous_out = key_dim
    for layer, weight in enumerate(weights):
        _require_tensor(f"weights[{layer}]", weight)
        if weight.dim() != 3 or weight.shape[0] != heads or weight.shape[1] != previous_out:
            raise ValueError(f"weights[{layer}] must be (H, D_in, D_out) = ({heads}, "
                             f"{previous_out}, D_out); got {tuple(weight.shape)}")
        previous_out = weight.shape[2]
    if previous_out != v.shape[-1]:
        raise ValueError(f"the last memory layer outputs {previous_out} features but v has "
                         f"{v.shape[-1]}; the last weight must be (H, D_in, D_v)")

    if mask is not None:
        check_padding_mask(mask, batch, length)

    if state is not None:
        if not isinstance(state, MemoryState):
            raise TypeError(f"state must be a MemoryState, got {type(state).__name__}")
        if state.chunk_size != chunk_size:
            raise ValueError(f"the state was built with chunk_size={state.chunk_size} but this "
                             f"call uses chunk_size={chunk_size}; keep the chunk size of a stream")
        if state.batch_size != batch:
            raise ValueError(f"the state holds {state.batch_size} rows but the input has {batch}; "
                             "use state.select(rows) to keep a subset of streams")
        if state.chunk_offset is not None and bool(
                (state.tokens_seen % chunk_size != state.chunk_offset).any()):
            raise ValueError(f"state.chunk_offset={state.chunk_offset} disagrees with "
                             "state.tokens_seen; set it to None (it is only a hint)")
        if state.depth != len(weights):
            raise ValueError(f"the state has {state.depth} memory layers but weights has "
                             f"{len(weights)}")
        for layer, (held, weight) in enumerate(zip(state.weights, weights)):
            if held.shape != (batch, *weight.shape):
                raise ValueError(f"state.weights[{layer}] is {tuple(held.shape)}, expected "
                                 f"{(batch, *weight.shape)}")

    if check_values:
        for name, value in (("q", q), ("k", k), ("v", v), ("theta", theta), ("eta", eta),
                            ("alpha", alpha)):
            _require_finite(name, value)
        if bool((theta < 0).any()):
            raise ValueError("theta (the learning rate) must be >= 0; map it with e.g. "
                             "max_lr * sigmoid(.)")
        for name, gate in (("eta", eta), ("alpha", alpha)):
            if bool(((gate < 0) | (gate > 1)).any()):
                raise ValueError(f"{name} must lie in [0, 1]; map it with sigmoid(.)")


def check_sequence(x: Tensor, dim: int) -> None:
    """Refuse anything but a finite float tensor ``(B, T, dim)`` with ``B, T >= 1``."""
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor (B, T, dim), got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {x.dtype}; use x.float()")
    if x.dim() != 3 or x.shape[-1] != dim:
        raise ValueError(f"x must be (B, T, dim={dim}); got {tuple(x.shape)}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"x is empty (shape {tuple(x.shape)}); pass at least one row and one "
                         "time step")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x contains NaN or infinite values; clean or impute the input first")


def check_padding_mask(mask: Tensor, batch: int, length: int) -> None:
    """Refuse a mask that is not ``(B, T)`` bool with padding only at the end of each row."""
    if not isinstance(mask, Tensor):
        raise TypeError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor (True = valid), got {mask.dtype}")
    if mask.shape != (batch, length):
        raise ValueError(f"mask must be (B, T) = ({batch}, {length}); got {tuple(mask.shape)}")
    if length > 1 and bool((mask[:, 1:] & ~mask[:, :-1]).any()):
        rows = torch.nonzero((mask[:, 1:] & ~mask[:, :-1]).any(1)).flatten().tolist()
        raise ValueError(f"mask rows {rows[:10]} have padding before a valid token; padding "
                         "is allowed only at the end of a row (left-align the sequences)")

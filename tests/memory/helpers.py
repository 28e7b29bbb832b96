"""Random but well-conditioned inputs for the memory op (outputs stay O(1), so tolerances mean
something)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def scan_inputs(batch=2, heads=2, length=37, key_dim=4, value_dim=5, hidden=(6,),
                dtype=torch.float64, seed=0, requires_grad=False):
    generator = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=generator, dtype=dtype)

    def rand(*shape):
        return torch.rand(*shape, generator=generator, dtype=dtype)

    q = F.normalize(randn(batch, heads, length, key_dim), dim=-1)
    k = F.normalize(randn(batch, heads, length, key_dim), dim=-1)
    v = randn(batch, heads, length, value_dim)
    theta = 0.2 * rand(batch, heads, length)
    eta = 0.9 * rand(batch, heads, length)
    alpha = 0.2 * rand(batch, heads, length)
    widths = [key_dim, *hidden, value_dim]
    weights = [randn(heads, d_in, d_out) / d_in ** 0.5 for d_in, d_out in zip(widths, widths[1:])]
    tensors = [q, k, v, theta, eta, alpha]
    if requires_grad:
        tensors = [t.requires_grad_() for t in tensors]
        weights = [w.requires_grad_() for w in weights]
    return (*tensors, weights)


def state_tensors(state):
    return [*state.weights, *state.momentum, *state.chunk_start_weights]


def assert_states_close(actual, expected, **tolerance):
    assert torch.equal(actual.tokens_seen, expected.tokens_seen)
    assert actual.chunk_size == expected.chunk_size
    for got, want in zip(state_tensors(actual), state_tensors(expected)):
        torch.testing.assert_close(got, want, **tolerance)


def run_in_pieces(scan, inputs, cuts, chunk_size, state=None):
    """Feed the sequence to ``scan`` in pieces split at ``cuts``; return (y, state)."""
    q, k, v, theta, eta, alpha, weights = inputs
    bounds = [0, *cuts, q.shape[2]]
    outputs = []
    for start, end in zip(bounds[:-1], bounds[1:]):
        piece = [t[:, :, start:end] for t in (q, k, v, theta, eta, alpha)]
        y, state = scan(*piece, weights, chunk_size=chunk_size, state=state)
        outputs.append(y)
    return torch.cat(outputs, dim=2), state


def scan_with_gradients(scan, chunk_size, hidden, clip, valid=(23, 17, 9), prefix_valid=(5, 2, 0),
                        heads=2, **options):
    """A padded call that starts mid-chunk from the state of an earlier padded call of the
    same weights (``valid`` / ``prefix_valid``: each of the 3 rows' valid tokens, the first
    row's the call's length); returns the outputs, the final state and the gradients of every
    input of both calls (the earlier call's reach the loss through the state)."""
    length, prefix_length = valid[0], prefix_valid[0]
    *tensors, weights = scan_inputs(batch=3, heads=heads, length=length, hidden=hidden,
                                    requires_grad=True)
    *prefix, _ = scan_inputs(batch=3, heads=heads, length=prefix_length, hidden=hidden, seed=3,
                             requires_grad=True)
    prefix_mask = torch.arange(prefix_length)[None, :] < torch.tensor(prefix_valid)[:, None]
    mask = torch.arange(length)[None, :] < torch.tensor(valid)[:, None]
    _, start = scan(*prefix, weights, chunk_size=chunk_size, mask=prefix_mask,
                    max_surprise_norm=clip, **options)
    y, state = scan(*tensors, weights, chunk_size=chunk_size, state=start, mask=mask,
                    max_surprise_norm=clip, **options)
    readout = torch.randn(y.shape, generator=torch.Generator().manual_seed(5), dtype=y.dtype)
    loss = (y * readout).sum() + sum((t ** 2).sum() for t in state_tensors(state))
    leaves = [*tensors, *prefix[1:], *weights]  # the prefix's queries reach no output
    return y, state, torch.autograd.grad(loss, leaves)

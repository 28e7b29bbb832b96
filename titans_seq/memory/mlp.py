"""The memory MLP ``M_W(x) = silu(... silu(x @ W1) ...) @ WL`` (no bias), written functionally.

The weights are the memory's state, so the MLP is a function of them rather than a module.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def memory_mlp(x: Tensor, weights: Sequence[Tensor]) -> Tensor:
    """Apply the memory MLP: ``x (..., D_in)`` with weights ``(..., D_in, D_out)`` per layer."""
    hidden = x
    for layer, weight in enumerate(weights):
        hidden = hidden @ weight
        if layer < len(weights) - 1:
            hidden = F.silu(hidden)
    return hidden


def silu_derivative(pre_activation: Tensor) -> Tensor:
    """``d silu(z) / dz = sigmoid(z) * (1 + z * (1 - sigmoid(z)))``."""
    sigmoid = torch.sigmoid(pre_activation)
    return sigmoid * (1 + pre_activation * (1 - sigmoid))


def memory_loss_backward(keys: Tensor, values: Tensor, weights: Sequence[Tensor]
                         ) -> tuple[list[Tensor], list[Tensor]]:
    """Closed-form per-token gradients of ``‖M_W(k_t) − v_t‖²`` (Eq. 12), factored.

    For layer ``l`` the gradient of token ``t`` is the rank-1 outer product
    ``layer_inputs[l][t]ᵀ · output_grads[l][t]``, so it is returned as its two factors and never
    formed. ``keys (..., C, D_k)``, ``values (..., C, D_v)``, ``weights[l] (..., D_in, D_out)``.

    Returns
    -------
    layer_inputs: the activations entering each layer, ``(..., C, D_in)``.
    output_grads: ``∂ loss_t / ∂ (layer output)``, ``(..., C, D_out)``.
    """
    layer_inputs = [keys]
    pre_activations = []
    hidden = keys
    for layer, weight in enumerate(weights):
        hidden = hidden @ weight
        if layer < len(weights) - 1:
            pre_activations.append(hidden)
            hidden = F.silu(hidden)
            layer_inputs.append(hidden)
    output_grad = 2 * (hidden - values)  # d‖ŷ − v‖² / dŷ, summed over features (no ½)
    output_grads = [output_grad]
    for layer in range(len(weights) - 1, 0, -1):
        output_grad = (output_grad @ weights[layer].transpose(-1, -2)) \
            * silu_derivative(pre_activations[layer - 1])
        output_grads.append(output_grad)
    output_grads.reverse()
    return layer_inputs, output_grads

"""Taylor importance: the loss change a weight's removal causes, estimated from gradients
(Molchanov et al., 2019; LLM-Pruner, Ma et al., 2023).

  first order   |w · ∂L/∂w|
  second order  |w · ∂L/∂w| + ½ |w² · (∂L/∂w)²|   (the Fisher diagonal stands in for the Hessian)

`grad` is the mean gradient over the calibration batches, `grad_sq` the mean of its squares.
"""

from __future__ import annotations

import torch


def taylor_scores(
    tensor: torch.Tensor, grad: torch.Tensor, grad_sq: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-entry importance, fp32, the shape of `tensor` (a weight or a bias)."""
    value = tensor.detach().float()
    score = (value * grad.to(value.device)).abs()
    if grad_sq is not None:
        score += 0.5 * (value * value * grad_sq.to(value.device)).abs()
    return score

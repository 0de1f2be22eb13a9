"""Group importance for structured pruning: per-weight importance summed over each group.

  magnitude   |W|
  wanda       |W|·‖X_j‖₂ (input norms from calibration activations; Sun et al., 2023)
  taylor      |W ⊙ ∂L/∂W| (first-order Taylor estimate of the loss change when W is removed)
  taylor_2nd  |W ⊙ ∂L/∂W| + ½|W² ⊙ (∂L/∂W)²| (adds the Fisher-diagonal Hessian term)

Biases (Qwen2's q/k/v) count with their group: |b|, or |b ⊙ ∂L/∂b| (+ ½|b² ⊙ g²|) for Taylor.
"""

from __future__ import annotations

import torch

from secateur.models.geometry import LayerShape
from secateur.structured.gradients import GradientStats
from secateur.structured.groups import attention_group_sums, mlp_group_sums


def element_importance(
    kind: str,
    tensor: torch.Tensor,
    *,
    input_sq: torch.Tensor | None = None,
    gradient: GradientStats | None = None,
) -> torch.Tensor:
    """Importance of each entry of a weight (out, in) or bias (out,), fp32, same shape."""
    value = tensor.detach().float()
    if kind == "magnitude" or (kind == "wanda" and (input_sq is None or value.dim() == 1)):
        return value.abs()
    if kind == "wanda":
        return value.abs() * input_sq.to(value.device).float().sqrt().unsqueeze(0)
    assert gradient is not None, f"{kind} importance needs gradients"
    grad = gradient.mean.to(value.device)
    score = (value * grad).abs()
    if kind == "taylor_2nd":
        score += 0.5 * (value * value * gradient.mean_sq.to(value.device)).abs()
    return score


def layer_group_importance(
    kind: str,
    linears: dict[str, torch.nn.Linear],
    names: dict[str, str],
    shape: LayerShape,
    input_stats: dict | None = None,
    gradients: dict[str, GradientStats] | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(attention group importances (num_kv,), MLP channel importances (intermediate,)); None if removed."""
    input_stats, gradients = input_stats or {}, gradients or {}

    def weight(role: str) -> torch.Tensor:
        stats = input_stats.get(role)
        return element_importance(
            kind,
            linears[role].weight,
            input_sq=None if stats is None else stats.sum_sq,
            gradient=gradients.get(f"{names[role]}.weight"),
        )

    def bias(role: str) -> torch.Tensor | None:
        b = linears[role].bias
        if b is None:
            return None
        return element_importance(kind, b, gradient=gradients.get(f"{names[role]}.bias"))

    attention = mlp = None
    if "q" in linears:
        attention = attention_group_sums(
            weight("q"), weight("k"), weight("v"), weight("o"), shape, (bias("q"), bias("k"), bias("v"))
        )
    if "gate" in linears:
        mlp = mlp_group_sums(weight("gate"), weight("up"), weight("down"))
    return attention, mlp

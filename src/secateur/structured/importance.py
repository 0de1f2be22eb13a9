"""Group importance for structured pruning: per-weight importance summed over each group.

  magnitude   |W|                                  (secateur.scoring.magnitude)
  wanda       |W|·‖X_j‖₂                           (secateur.scoring.wanda)
  taylor      |W ⊙ ∂L/∂W|                          (secateur.scoring.taylor, first order)
  taylor_2nd  |W ⊙ ∂L/∂W| + ½|W² ⊙ (∂L/∂W)²|       (secateur.scoring.taylor, second order)

Biases (Qwen2's q/k/v) count with their group: |b|, or |b ⊙ ∂L/∂b| (+ ½|b² ⊙ g²|) for Taylor.
"""

from __future__ import annotations

import torch

from secateur.models.geometry import LayerShape
from secateur.scoring.magnitude import magnitude_scores
from secateur.scoring.taylor import taylor_scores
from secateur.scoring.wanda import wanda_scores
from secateur.structured.gradients import GradientStats
from secateur.structured.groups import attention_group_sums, mlp_group_sums


def element_importance(
    kind: str,
    tensor: torch.Tensor,
    *,
    input_sq: torch.Tensor | None = None,
    gradient: GradientStats | None = None,
) -> torch.Tensor:
    """Importance of each entry of a weight (out, in) or bias (out,), fp32, same shape.

    The formulas are the scorers' (`secateur.scoring`); a bias has no input norms, so Wanda scores
    it by magnitude.
    """
    if kind == "magnitude" or (kind == "wanda" and (input_sq is None or tensor.dim() == 1)):
        return magnitude_scores(tensor)
    if kind == "wanda":
        return wanda_scores(tensor, input_sq)
    assert gradient is not None, f"{kind} importance needs gradients"
    return taylor_scores(tensor, gradient.mean, gradient.mean_sq if kind == "taylor_2nd" else None)


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

"""Group importance for structured pruning: per-weight importance summed over each group.

  magnitude   |W|                                  (secateur.scoring.magnitude)
  wanda       |W|·‖X_j‖₂                           (secateur.scoring.wanda)
  taylor      |W ⊙ ∂L/∂W|                          (secateur.scoring.taylor, first order)
  taylor_2nd  |W ⊙ ∂L/∂W| + ½|W² ⊙ (∂L/∂W)²|       (secateur.scoring.taylor, second order)

Biases (Qwen2's q/k/v) count with their group: |b|, or |b ⊙ ∂L/∂b| (+ ½|b² ⊙ g²|) for Taylor.
"""

from __future__ import annotations

import torch

from secateur.models.adapter import ModelAdapter
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
    adapter: ModelAdapter,
    index: int,
    shape: LayerShape,
    input_stats: dict | None = None,
    gradients: dict[str, GradientStats] | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(attention group importances (num_kv,), MLP channel importances (intermediate,)); None if removed.

    Importances are computed per Linear, with its own input norms and gradients, then a fused
    Linear's (Phi-3's qkv_proj) are split into the generic roles' rows they hold.
    """
    input_stats, gradients = input_stats or {}, gradients or {}
    linears = adapter.linears(adapter.decoder_layers()[index])
    names = adapter.linear_names(index)
    present = [role for role in adapter.structured_roles() if role in linears]

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

    weights = adapter.unfused({role: weight(role) for role in present}, shape)
    biases = adapter.unfused({role: bias(role) for role in present}, shape)
    attention = mlp = None
    if "q" in weights:
        attention = attention_group_sums(
            weights["q"],
            weights["k"],
            weights["v"],
            weights["o"],
            shape,
            (biases["q"], biases["k"], biases["v"]),
        )
    if "up" in weights:
        mlp = mlp_group_sums(weights.get("gate"), weights["up"], weights["down"])
        # An MLP channel's biases (OPT's fc1) count with it, as the attention groups' do.
        for role in ("gate", "up"):
            if biases.get(role) is not None:
                mlp = mlp + biases[role].float()
    return attention, mlp

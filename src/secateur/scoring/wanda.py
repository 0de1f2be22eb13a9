"""Wanda: importance = |W_ij| · ‖X_j‖₂ (Sun, Liu, Bair, Kolter, 2023, arXiv:2306.11695, eq. 1).

‖X_j‖₂ is the L2 norm of input feature j over every calibration token that reaches the Linear.
Large-magnitude outlier features in LLM activations make some small weights matter; weighting by
the input norm keeps them. The constant by which the original code scales the norms (1/nsamples)
changes no ranking, so it is left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from secateur.calibration.stats import InputCollector, InputStats
from secateur.errors import SecateurError
from secateur.registry import register
from secateur.scoring.base import ScoreMethod


def wanda_scores(weight: torch.Tensor, sum_sq: torch.Tensor) -> torch.Tensor:
    """|W_ij| · ‖X_j‖₂ from the per-input sums of squares, fp32 (mask and structured pruning)."""
    norms = sum_sq.to(weight.device).float().sqrt()
    return weight.detach().float().abs() * norms.unsqueeze(0)


@register("method", "wanda")
@dataclass(frozen=True)
class Wanda(ScoreMethod):
    needs_activations = True

    def collector(self, linears: dict[str, nn.Linear]) -> InputCollector:
        return InputCollector(linears, InputStats.for_module, neutral=InputStats.neutral)

    def score(self, weight: torch.Tensor, stats: InputStats | None) -> torch.Tensor:
        if stats is None:
            raise SecateurError("wanda needs calibration activations; pass calibration windows")
        return wanda_scores(weight, stats.sum_sq)

"""Magnitude pruning: importance = |W|. The classic baseline (Han et al., 2015); needs no data."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from secateur.registry import register
from secateur.scoring.base import ScoreMethod


@register("method", "magnitude")
@dataclass(frozen=True)
class Magnitude(ScoreMethod):
    needs_activations = False

    def score(self, weight: torch.Tensor, stats=None) -> torch.Tensor:
        return weight.detach().abs().float()

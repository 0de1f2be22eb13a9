"""Magnitude pruning: importance = |W|. The classic baseline (Han et al., 2015); needs no data."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from secateur.registry import register
from secateur.scoring.base import ScoreMethod


def magnitude_scores(tensor: torch.Tensor) -> torch.Tensor:
    """|W| (or |b|), fp32: the one place the formula is written (mask and structured pruning)."""
    return tensor.detach().float().abs()


@register("method", "magnitude")
@dataclass(frozen=True)
class Magnitude(ScoreMethod):
    needs_activations = False

    def score(self, weight: torch.Tensor, stats=None) -> torch.Tensor:
        return magnitude_scores(weight)

"""Magnitude pruning: importance = |W|. The classic baseline (Han et al., 2015); needs no data."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from secateur.calibration.stats import InputStats
from secateur.registry import register


@register("method", "magnitude")
@dataclass(frozen=True)
class Magnitude:
    needs_activations = False

    def score(self, weight: torch.Tensor, stats: InputStats | None = None) -> torch.Tensor:
        return weight.detach().abs().float()

"""Score-based methods: rank the weights, let the pattern choose the mask, zero the rest."""

from __future__ import annotations

import torch
from torch import nn

from secateur.calibration.stats import InputCollector
from secateur.patterns.base import PATTERN_KINDS, Pattern


class ScoreMethod:
    """Base for methods that only rank weights: the pattern turns scores into the mask."""

    needs_activations = False
    updates_weights = False  # a mask from scores: cheap, every process computes it
    patterns = PATTERN_KINDS  # scores serve every pattern, tiles and tiers included

    def collector(self, linears: dict[str, nn.Linear]) -> InputCollector | None:
        return None

    def score(self, weight: torch.Tensor, stats) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def prune(self, linear: nn.Linear, stats, pattern: Pattern, sparsity: float) -> torch.Tensor:
        keep = pattern.mask(self.score(linear.weight, stats), sparsity)
        linear.weight.masked_fill_(~keep, 0)
        return keep

"""RIA: relative importance and activations (Zhang et al., 2024, "Plug-and-Play", arXiv:2403.07421).

score_ij = (|W_ij| / Σ_k |W_ik| + |W_ij| / Σ_k |W_kj|) · ‖X_j‖₂^a,  a = 0.5 (the paper's default).

A weight counts relative to the other weights of its output row AND of its input column, so a
column whose weights are all large (an input every output relies on) is not emptied just because
its row neighbours are larger; the activation norm enters with a softer power than Wanda's.
With N:M, `--channel-permutation` first spreads the heavy MLP channels over the groups of M (see
secateur.scoring.channel_permutation).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from secateur.calibration.stats import InputCollector, InputStats
from secateur.errors import SecateurError
from secateur.patterns.base import Pattern
from secateur.patterns.nm import NM
from secateur.registry import register
from secateur.scoring.base import ScoreMethod
from secateur.scoring.channel_permutation import permute_mlp_channels


def ria_scores(weight: torch.Tensor, sum_sq: torch.Tensor, power: float = 0.5) -> torch.Tensor:
    """weight (rows, cols), sum_sq (cols,) Σx² per input -> scores (rows, cols) fp32."""
    w = weight.detach().float().abs()
    relative = w / w.sum(1, keepdim=True).clamp_min(1e-30) + w / w.sum(0, keepdim=True).clamp_min(1e-30)
    return relative * sum_sq.to(w.device).float().sqrt().pow(power).unsqueeze(0)


@register("method", "ria")
@dataclass(frozen=True)
class RIA(ScoreMethod):
    channel_permutation: bool = False  # N:M only: MLP channels dealt out over the groups first
    needs_activations = True

    def prepare_layer(self, linears: dict[str, nn.Linear], stats: dict, pattern: Pattern) -> None:
        """Before any Linear of the layer is pruned: the channel permutation, when asked for."""
        if self.channel_permutation and isinstance(pattern, NM):
            permute_mlp_channels(
                linears, stats, pattern.m, lambda weight, seen: self.score(weight, seen).sum(0)
            )

    def collector(self, linears: dict[str, nn.Linear]) -> InputCollector:
        return InputCollector(linears, InputStats.for_module, neutral=InputStats.neutral)

    def score(self, weight: torch.Tensor, stats: InputStats | None) -> torch.Tensor:
        if stats is None:
            raise SecateurError("ria needs calibration activations; pass calibration windows")
        return ria_scores(weight, stats.sum_sq)

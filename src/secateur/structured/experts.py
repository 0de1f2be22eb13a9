"""Expert pruning: rank each MoE layer's routed experts on the calibration tokens, keep the best.

REAP (Lasby et al., 2025, "REAP the experts: why pruning prevails for one-shot MoE compression"):
an expert's saliency is the mean, over the tokens the router sends it, of its router weight times
the norm of its output, S_j = (1/|X_j|) Σ_{x∈X_j} g_j(x)·‖f_j(x)‖₂: an expert that is chosen often
but contributes little scores low, unlike with frequency alone. `frequency` ranks by |X_j|.
An expert that receives no token scores 0 under both and goes first.
Layers are visited in order with the already-pruned layers in front (as the mask methods do), so
a layer's router sees the activations the pruned model really gives it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class ExpertTally:
    """Per-expert sums over the calibration tokens of one layer."""

    count: int
    tokens: torch.Tensor = field(init=False)  # (experts,) tokens routed to each
    weighted_norm: torch.Tensor = field(init=False)  # (experts,) float64 Σ g·‖f(x)‖₂

    def __post_init__(self) -> None:
        self.tokens = torch.zeros(self.count, dtype=torch.long)
        self.weighted_norm = torch.zeros(self.count, dtype=torch.float64)

    def observe(self, expert: int, token: torch.Tensor, weights: torch.Tensor, output: torch.Tensor) -> None:
        self.tokens[expert] += token.numel()
        norms = output.detach().double().norm(dim=-1)
        self.weighted_norm[expert] += float((weights.detach().double() * norms).sum())

    def scores(self, kind: str) -> torch.Tensor:
        if kind == "frequency":
            return self.tokens.double()
        return self.weighted_norm / self.tokens.clamp(min=1).double()


def experts_to_keep(scores: torch.Tensor, keep: int, groups: int = 1) -> list[int]:
    """The `keep` highest-scoring experts, in index order (ties: the lower index stays).

    With routing groups (consecutive experts, DeepSeek-V3's n_group), each group keeps the same
    number, its best, so group-limited routing still sees equal groups.
    """
    size, per_group = scores.numel() // groups, keep // groups
    kept = []
    for group in range(groups):
        members = range(group * size, (group + 1) * size)
        kept += sorted(members, key=lambda e: (-float(scores[e]), e))[:per_group]
    return sorted(kept)


def kept_count(total: int, ratio: float | None, keep: int | None) -> int:
    """Experts kept per layer from --experts-pruning-ratio (removed, rounded down) or --num-experts."""
    return keep if keep is not None else total - int(total * float(ratio))

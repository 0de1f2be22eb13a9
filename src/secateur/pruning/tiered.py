"""Three-tier pruning through the layer pipeline, one-shot or as one step of a progressive schedule.

Each targeted layer gets fresh statistics on its current weights (the previous layers already
pruned, as Wanda does), every Linear is scored by the method (wanda or magnitude), and the tiered
pattern turns scores into a tier map and a keep-mask. The tier maps are kept on the CPU between
steps; a progressive step starts from them so tiers only move down.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from secateur.calibration.pipeline import LayerContext
from secateur.errors import SecateurError, VerificationError
from secateur.patterns.tiered import DENSE, Tiered
from secateur.pruning.method import PruningMethod
from secateur.pruning.statistics import layer_statistics


@dataclass
class TierState:
    """Tier maps by module name, and whether the next step degrades them (progressive) or starts over."""

    maps: dict[str, torch.Tensor] = field(default_factory=dict)
    progressive: bool = False


@dataclass
class TierPruner:
    """Layer visitor: score each Linear, (re)assign its tiles' tiers, apply the mask, verify it."""

    method: PruningMethod
    pattern: Tiered
    targeted: frozenset[int]
    names: dict[int, dict[str, str]]  # layer -> role -> module name (the tier maps' keys)
    state: TierState
    expert_min_tokens: int = 0
    pruned: dict[tuple[int, str], int] = field(default_factory=dict)
    fallbacks: dict[int, list[int]] = field(default_factory=dict)  # layer -> experts pruned by magnitude
    retier_seconds: float = 0.0  # scoring + tiering + masking, without the statistics pass

    def __post_init__(self) -> None:
        if not hasattr(self.method, "score"):
            raise SecateurError("--pattern tiered needs a scoring method (wanda or magnitude)")

    @torch.no_grad()
    def __call__(self, ctx: LayerContext) -> None:
        if ctx.index not in self.targeted:
            return
        for role, linear in ctx.linears.items():
            self.pattern.check_shape(tuple(linear.weight.shape), f"{ctx.name} {role}_proj")
        stats, starved = layer_statistics(self.method, ctx, self.expert_min_tokens)
        if starved:
            self.fallbacks[ctx.index] = starved
        start = time.perf_counter()
        for role, linear in ctx.linears.items():
            name = self.names[ctx.index][role]
            weight = linear.weight
            scores = self.method.score(weight, stats.get(role))
            if self.state.progressive:
                current = self.state.maps.get(name)
                if current is None:
                    current = self._all_dense(weight)
                tiers, keep = self.pattern.progress(
                    scores, current.to(weight.device), weight != 0, self.pattern.shares
                )
            else:
                tiers = self.pattern.assign(scores)
                keep = self.pattern.keep_mask(scores, tiers)
            weight.masked_fill_(~keep, 0)
            broken = self.pattern.tier_violations(weight, tiers)
            if broken:
                raise VerificationError(
                    f"{name}: {broken} tiles hold more weights than their tier allows; "
                    "please report this as a bug"
                )
            self.state.maps[name] = tiers.cpu()
            self.pruned[(ctx.index, role)] = int((~keep).sum())
        self.retier_seconds += time.perf_counter() - start

    def _all_dense(self, weight: torch.Tensor) -> torch.Tensor:
        shape = (weight.shape[0] // self.pattern.size, weight.shape[1] // self.pattern.size)
        return torch.full(shape, DENSE, dtype=torch.int8)

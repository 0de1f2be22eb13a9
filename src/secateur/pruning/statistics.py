"""A layer's calibration statistics for a mask method, with the fallback for starved experts.

In a mixture-of-experts layer each expert sees only the tokens its router sends it, so an expert
may receive few calibration tokens or none. Below `min_tokens` its input statistics say little
(a norm or a Hessian estimated from a handful of rows), so the expert is pruned by weight
magnitude instead: its statistics are replaced by neutral ones (every input equally strong,
identity Hessian), under which Wanda's score is |W| and SparseGPT neither reweights nor updates.
The experts that fell back are returned, for the summary to count per layer.
"""

from __future__ import annotations

from secateur.calibration.pipeline import LayerContext
from secateur.models.experts import expert_role, parse_expert_role
from secateur.pruning.method import PruningMethod


def layer_statistics(method: PruningMethod, ctx: LayerContext, min_tokens: int = 0) -> tuple[dict, list[int]]:
    """Run the layer's calibration batches with the method's collector attached (if it has one).

    Returns (role -> statistics, experts of this layer scored by magnitude for want of tokens).
    """
    collector = method.collector(ctx.linears)
    if collector is None:
        return {}, []
    with collector.attached() as stats:
        ctx.observe(stop_after=list(ctx.linears.values())[-1])
    # A distributed run: every process saw its share of the windows; the sums of all are used.
    # (Dense layers only: every rank meets the same Linears sharing the same inputs, in order.)
    for shared in {id(s): s for s in stats.values()}.values():
        shared.reduce()
    return stats, _fall_back(stats, ctx, collector.neutral, min_tokens)


def expert_tokens(stats: dict, expert: int) -> int:
    """Calibration tokens routed to `expert` (what its gate/up projections received)."""
    seen = stats.get(expert_role(expert, "gate"))
    return seen.tokens if seen is not None else 0


def _fall_back(stats: dict, ctx: LayerContext, neutral, min_tokens: int) -> list[int]:
    experts = sorted({parsed[0] for role in ctx.linears if (parsed := parse_expert_role(role))})
    starved = [e for e in experts if expert_tokens(stats, e) < max(min_tokens, 1)]
    for role, linear in ctx.linears.items():
        parsed = parse_expert_role(role)
        if parsed is not None and parsed[0] in starved:
            stats[role] = neutral(linear)
    return starved

"""The global planner: one table of every prunable group, ranked by importance per parameter.

Score = importance / cost × prior multiplier. Groups leave in ascending score order while the
parameters removed stay within the target (`--pruning-ratio` of the model's total parameters).
With `uniform`, every layer instead loses the same fraction of its parameters, its own lowest
groups (channels rounded to `round_to`), so the result has a standard config.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from secateur.errors import SecateurError
from secateur.models.geometry import LayerShape
from secateur.structured.groups import ATTENTION, MLP
from secateur.structured.plan import LayerPlan, StructuredPlan


@dataclass
class GroupTable:
    """Columns over all groups of all planned layers (one row per group)."""

    layer: torch.Tensor  # int64
    is_mlp: torch.Tensor  # bool
    group: torch.Tensor  # int64, index within its layer and kind
    importance: torch.Tensor  # float64
    cost: torch.Tensor  # int64 parameters
    multiplier: torch.Tensor  # float64 prior
    pruned: torch.Tensor  # bool

    @property
    def score(self) -> torch.Tensor:
        return self.importance / self.cost.double() * self.multiplier

    def rows(self) -> list[dict]:
        score = self.score
        return [
            {
                "layer": int(self.layer[i]),
                "kind": MLP if self.is_mlp[i] else ATTENTION,
                "group": int(self.group[i]),
                "importance": float(self.importance[i]),
                "cost": int(self.cost[i]),
                "prior": float(self.multiplier[i]),
                "score": float(score[i]),
                "pruned": bool(self.pruned[i]),
            }
            for i in range(self.layer.numel())
        ]


def build_table(
    importances: dict[int, tuple[torch.Tensor | None, torch.Tensor | None]],
    shapes: dict[int, LayerShape],
    attention_prior: dict[int, float],
    mlp_prior: dict[int, float],
) -> GroupTable:
    columns: dict[str, list[torch.Tensor]] = {
        k: [] for k in ("layer", "is_mlp", "group", "imp", "cost", "mult")
    }
    for layer, (attention, mlp) in sorted(importances.items()):
        for values, is_mlp, cost, prior in (
            (attention, False, shapes[layer].attention_group_cost(), attention_prior[layer]),
            (mlp, True, shapes[layer].mlp_group_cost(), mlp_prior[layer]),
        ):
            if values is None or values.numel() == 0:
                continue
            n = values.numel()
            columns["layer"].append(torch.full((n,), layer, dtype=torch.long))
            columns["is_mlp"].append(torch.full((n,), is_mlp, dtype=torch.bool))
            columns["group"].append(torch.arange(n))
            columns["imp"].append(values.detach().double().cpu())
            columns["cost"].append(torch.full((n,), cost, dtype=torch.long))
            columns["mult"].append(torch.full((n,), prior, dtype=torch.float64))
    cat = {k: torch.cat(v) for k, v in columns.items()}
    return GroupTable(
        cat["layer"], cat["is_mlp"], cat["group"], cat["imp"], cat["cost"], cat["mult"],
        torch.zeros_like(cat["is_mlp"]),
    )  # fmt: skip


def plan_global(table: GroupTable, target_params: int) -> int:
    """Prune groups in ascending score order while they fit the budget; returns parameters removed.

    A group too big for what is left of the budget (an attention group near the end) is passed
    over and cheaper groups further down the order fill the rest, so the removed parameters land
    within one MLP channel of the target instead of stopping short at the first overflow.
    """
    order = torch.argsort(table.score, stable=True).tolist()
    costs = table.cost.tolist()
    smallest = min(costs) if costs else 0
    left, removed, chosen = target_params, 0, []
    for index in order:
        if costs[index] <= left:
            chosen.append(index)
            left -= costs[index]
            removed += costs[index]
            if left < smallest:
                break
    table.pruned[torch.tensor(chosen, dtype=torch.long)] = True
    return removed


def plan_global_whole_attention(
    table: GroupTable, target_params: int, keep_attention: set[int] | frozenset[int]
) -> int:
    """plan_global where each layer's attention is one group (all its KV groups: importances and
    costs summed), and the layers in `keep_attention` keep theirs: the plans vLLM's nemotron-nas
    format expresses without padding (its query-head count is global). Returns parameters removed."""
    mlp = table.is_mlp.nonzero().flatten()
    attention = ~table.is_mlp
    layers = [layer for layer in sorted(set(table.layer[attention].tolist())) if layer not in keep_attention]
    blocks = [attention & (table.layer == layer) for layer in layers]

    def column(values: torch.Tensor, whole) -> torch.Tensor:  # the MLP rows, then one row per block
        per_block = [whole(values[block]) for block in blocks]
        return torch.cat([values[mlp], torch.stack(per_block)]) if per_block else values[mlp]

    reduced = GroupTable(
        layer=torch.cat([table.layer[mlp], torch.tensor(layers, dtype=torch.long)]),
        is_mlp=torch.cat([table.is_mlp[mlp], torch.zeros(len(layers), dtype=torch.bool)]),
        group=torch.cat([table.group[mlp], torch.full((len(layers),), -1, dtype=torch.long)]),
        importance=column(table.importance, torch.sum),
        cost=column(table.cost, torch.sum),
        multiplier=column(table.multiplier, lambda values: values[0]),  # one prior per layer's block
        pruned=torch.zeros(mlp.numel() + len(layers), dtype=torch.bool),
    )
    removed = plan_global(reduced, target_params)
    table.pruned[mlp] = reduced.pruned[: mlp.numel()]
    for block, gone in zip(blocks, reduced.pruned[mlp.numel() :].tolist(), strict=True):
        table.pruned[block] = gone
    return removed


def _round_to_multiple(value: float, multiple: int, size: int) -> int:
    if size <= multiple:
        return size
    return min(size, max(multiple, round(value / multiple) * multiple))


def plan_uniform(table: GroupTable, shapes: dict[int, LayerShape], fraction: float, round_to: int) -> int:
    """Every layer removes `fraction` of its prunable parameters: KV groups rounded (>= 1 kept), the
    rest of its share from MLP channels, rounded to a multiple of `round_to`. Lowest importance go."""
    removed = 0
    for layer, shape in shapes.items():
        keep_kv = max(1, round(shape.num_kv_heads * (1 - fraction)))
        still = (
            fraction * shape.prunable_params() - (shape.num_kv_heads - keep_kv) * shape.attention_group_cost()
        )
        keep_channels = _round_to_multiple(
            shape.intermediate - max(still, 0.0) / shape.mlp_group_cost(), round_to, shape.intermediate
        )
        for is_mlp, size, keep in (
            (False, shape.num_kv_heads, keep_kv),
            (True, shape.intermediate, keep_channels),
        ):
            rows = ((table.layer == layer) & (table.is_mlp == is_mlp)).nonzero().flatten()
            if rows.numel() == 0 or keep >= size:
                continue
            lowest = rows[torch.argsort(table.importance[rows], stable=True)[: size - keep]]
            table.pruned[lowest] = True
            removed += int(table.cost[lowest].sum())
    return removed


def _kept(table: GroupTable, layer: int, is_mlp: bool, size: int) -> list[int]:
    rows = (table.layer == layer) & (table.is_mlp == is_mlp)
    gone = set(table.group[rows & table.pruned].tolist())
    return [i for i in range(size) if i not in gone]


def plan_from_table(
    table: GroupTable, shapes: dict[int, LayerShape], model_type: str, ratio: int, head_dim: int
) -> StructuredPlan:
    """The kept groups of every planned layer, as a StructuredPlan."""
    plan = StructuredPlan(model_type=model_type, gqa_ratio=ratio, head_dim=head_dim)
    for layer, shape in sorted(shapes.items()):
        plan.layers.append(
            LayerPlan(
                layer=layer,
                kv_heads=_kept(table, layer, False, shape.num_kv_heads),
                channels=_kept(table, layer, True, shape.intermediate),
                num_kv_heads_before=shape.num_kv_heads,
                intermediate_before=shape.intermediate,
            )
        )
    return plan


def check_target(target_params: int, prunable: int, ratio: float) -> None:
    if target_params >= prunable:
        raise SecateurError(
            f"--pruning-ratio {ratio:g} asks to remove {target_params:,} parameters, but the prunable groups "
            f"hold only {prunable:,}: that would remove every group; choose a smaller ratio"
        )

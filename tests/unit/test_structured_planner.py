"""Structured groups, costs, priors and the planner, against plain-Python references."""

import math

import pytest
import torch

from secateur.models.geometry import LayerShape
from secateur.structured.groups import attention_group_sums, kv_rows, mlp_group_sums, q_rows
from secateur.structured.planner import build_table, plan_global, plan_global_whole_attention, plan_uniform
from secateur.structured.priors import hgsp_priors

SHAPE = LayerShape(hidden=32, num_kv_heads=3, gqa_ratio=2, head_dim=4, intermediate=40, attention_bias=True)


def test_group_costs_add_up_to_the_layer_parameters():
    s = SHAPE
    q, kv = s.num_heads * s.head_dim, s.num_kv_heads * s.head_dim
    weights = q * s.hidden + 2 * kv * s.hidden + s.hidden * q + 3 * s.hidden * s.intermediate
    biases = q + 2 * kv
    assert s.num_kv_heads * s.attention_group_cost() + s.intermediate * s.mlp_group_cost() == weights + biases
    assert s.prunable_params() == weights + biases


def test_group_rows_and_sums_match_a_loop():
    s = SHAPE
    torch.manual_seed(0)
    q, k, v = torch.rand(s.num_heads * s.head_dim, 32), torch.rand(12, 32), torch.rand(12, 32)
    o = torch.rand(32, s.num_heads * s.head_dim)
    qb, kb, vb = torch.rand(24), torch.rand(12), torch.rand(12)
    sums = attention_group_sums(q, k, v, o, s, (qb, kb, vb))
    for g in range(3):
        qs = slice(g * 8, (g + 1) * 8)  # 2 query heads x head_dim 4
        ks = slice(g * 4, (g + 1) * 4)
        expected = (
            q[qs].sum()
            + k[ks].sum()
            + v[ks].sum()
            + o[:, qs].sum()
            + qb[qs].sum()
            + kb[ks].sum()
            + vb[ks].sum()
        )
        assert sums[g].item() == pytest.approx(expected.item(), rel=1e-6)
    assert q_rows(torch.tensor([2, 0]), s).tolist() == [*range(16, 24), *range(0, 8)]
    assert kv_rows(torch.tensor([1]), s).tolist() == [4, 5, 6, 7]
    gate, up, down = torch.rand(40, 32), torch.rand(40, 32), torch.rand(32, 40)
    assert torch.allclose(mlp_group_sums(gate, up, down), gate.sum(1) + up.sum(1) + down.sum(0))


def _importances(seed=0):
    torch.manual_seed(seed)
    return {i: (torch.rand(3), torch.rand(40)) for i in range(4)}


def test_temperature_zero_reproduces_the_plain_importance_per_cost_ranking():
    importances = _importances()
    shapes = dict.fromkeys(importances, SHAPE)
    priors = hgsp_priors(
        {i: {"layer": 0.1 * i, "attention": 0.2, "mlp": 0.3} for i in importances}, 0.0, None
    )
    table = build_table(importances, shapes, priors.attention, priors.mlp)
    target = int(0.3 * sum(s.prunable_params() for s in shapes.values()))
    removed = plan_global(table, target)

    # Reference: score = importance / cost, greedy in ascending order, skipping what no longer fits.
    groups = []
    for layer, (attn, mlp) in importances.items():
        groups += [
            (float(v) / SHAPE.attention_group_cost(), SHAPE.attention_group_cost(), (layer, 0, g))
            for g, v in enumerate(attn)
        ]
        groups += [
            (float(v) / SHAPE.mlp_group_cost(), SHAPE.mlp_group_cost(), (layer, 1, g))
            for g, v in enumerate(mlp)
        ]
    left, expected = target, set()
    for _, cost, key in sorted(groups, key=lambda item: item[0]):
        if cost <= left:
            expected.add(key)
            left -= cost
    chosen = {
        (int(table.layer[i]), int(table.is_mlp[i]), int(table.group[i]))
        for i in table.pruned.nonzero().flatten()
    }
    assert chosen == expected
    assert removed == int(table.cost[table.pruned].sum()) == target - left
    assert target - removed < SHAPE.mlp_group_cost()  # within one channel of the target


def test_priors_follow_tau_and_temperature():
    rows = [(0.5, 0.2, 0.4), (0.05, 0.01, 0.04), (0.1, 0.05, 0.08), (0.3, 0.1, 0.2)]
    influence = {i: dict(zip(("layer", "attention", "mlp"), row, strict=True)) for i, row in enumerate(rows)}
    off = hgsp_priors(influence, 0.0, None)
    assert set(off.attention.values()) == {1.0} and off.tau is None
    block = hgsp_priors(influence, 1.0, 0.0)
    assert not any(block.layer_dominant.values())
    assert block.attention[0] == pytest.approx(math.log1p(0.2)) and block.mlp[0] == pytest.approx(
        math.log1p(0.4)
    )
    layer = hgsp_priors(influence, 2.0, math.inf)
    assert all(layer.layer_dominant.values())
    assert layer.attention[3] == layer.mlp[3] == pytest.approx(math.log1p(0.3) ** 2)
    auto = hgsp_priors(influence, 1.0, None)
    assert auto.tau == pytest.approx(float(torch.quantile(torch.tensor([0.05, 0.1, 0.3, 0.5]), 0.25)))
    assert auto.layer_dominant == {0: False, 1: True, 2: False, 3: False}


def test_uniform_plan_gives_every_layer_the_same_widths():
    importances = _importances(1)
    shapes = dict.fromkeys(
        importances, LayerShape(hidden=32, num_kv_heads=4, gqa_ratio=2, head_dim=4, intermediate=256)
    )
    table = build_table(importances | {i: (torch.rand(4), torch.rand(256)) for i in importances}, shapes,
                        dict.fromkeys(shapes, 1.0), dict.fromkeys(shapes, 1.0))  # fmt: skip
    plan_uniform(table, shapes, 0.3, 64)
    for layer in shapes:
        here = table.layer == layer
        kept_kv = int((here & ~table.is_mlp & ~table.pruned).sum())
        kept_ch = int((here & table.is_mlp & ~table.pruned).sum())
        assert (kept_kv, kept_ch) == (3, 192)
        lowest = torch.argsort(table.importance[here & table.is_mlp])[:64]
        assert table.pruned[here & table.is_mlp][lowest].all()  # the layer's own least important channels


def test_serving_plans_take_or_leave_each_attention_whole():
    """--serve vllm: a layer's KV groups go all together (importance and cost summed), layer 0's
    never; checked against brute force over every attention subset with the MLP channels fixed."""
    torch.manual_seed(4)
    shapes = {i: SHAPE for i in range(4)}
    importances = {i: (torch.rand(3) * (1 + i), torch.rand(40)) for i in range(4)}
    ones = {i: 1.0 for i in range(4)}
    table = build_table(importances, shapes, ones, ones)
    target = 3 * SHAPE.attention_group_cost() * 2 + 10 * SHAPE.mlp_group_cost()
    removed = plan_global_whole_attention(table, target, keep_attention={0})
    for layer in range(4):
        gone = table.pruned[(table.layer == layer) & ~table.is_mlp]
        assert bool(gone.all()) or not bool(gone.any())  # whole or untouched
    assert not table.pruned[(table.layer == 0) & ~table.is_mlp].any()
    assert removed == int(table.cost[table.pruned].sum()) <= target
    assert target - removed < SHAPE.mlp_group_cost()  # filled to within one channel
    # The whole-attention units are ranked by summed importance per summed cost.
    whole = {i: float(importances[i][0].sum()) / (3 * SHAPE.attention_group_cost()) for i in (1, 2, 3)}
    dropped = {i for i in (1, 2, 3) if table.pruned[(table.layer == i) & ~table.is_mlp].all()}
    channel_scores = [float(v) / SHAPE.mlp_group_cost() for i in range(4) for v in importances[i][1]]
    threshold = sorted(channel_scores)[int(table.pruned[table.is_mlp].sum()) - 1]
    assert all(whole[i] <= threshold * 1.0001 or i not in dropped for i in whole)


def test_epsilon_collapses_layers_left_with_less_than_that_share():
    from secateur.structured.collapse import collapse_layers, kept_fraction
    from secateur.structured.plan import LayerPlan, StructuredPlan

    def layer(index, kv, channels):
        return LayerPlan(index, list(range(kv)), list(range(channels)), 4, 100)

    plan = StructuredPlan("llama", 2, 4, [layer(0, 1, 10), layer(1, 4, 30), layer(2, 2, 20), layer(3, 0, 60)])
    assert [kept_fraction(p) for p in plan.layers] == [0.175, 0.65, 0.35, 0.3]
    assert collapse_layers(plan, 0.0) == []  # the default collapses nothing
    assert collapse_layers(plan, 0.32, keep_attention=frozenset({0})) == [0, 3]
    widths = [(len(p.kv_heads), len(p.channels)) for p in plan.layers]
    assert widths == [(1, 0), (4, 30), (2, 20), (0, 0)]  # layer 0 keeps its attention, as asked

"""Channel permutation for N:M (RIA, Zhang et al., 2024, §4): spread heavy input channels over the
groups of M, so that an N:M mask does not have to drop one heavy channel because three others sit
in its group.

Where it is exact, and applied: the MLP's intermediate channels. down_proj's input channel c is
computed by row c of gate_proj and up_proj (and fc1's bias), elementwise; reordering those rows and
down_proj's columns by the same permutation leaves the model's function unchanged (only the order
of down_proj's sum changes), so the saved model needs no runtime permutation. q/k/v/gate/up read
the residual stream and o_proj the attention heads: reordering their inputs would mean reordering
those for every reader, so they keep their order.

The permutation: channels ranked by their total RIA score in down_proj, then dealt out like cards,
rank r to group r mod G (G = channels / M), so every group receives one channel from each tier of
G ranks. The statistics of down_proj's inputs are permuted with the weights.
"""

from __future__ import annotations

import torch
from torch import nn

from secateur.models.fused import MLP_PARTS


def balanced_order(importance: torch.Tensor, m: int) -> torch.Tensor:
    """importance (channels,), channels % m == 0 -> permutation: new position p holds channel order[p];
    positions [g·m, (g+1)·m) hold the channels ranked g, G+g, 2G+g, ... (ties: lower index first)."""
    channels = importance.shape[0]
    groups = channels // m
    ranked = torch.argsort(-importance.double(), stable=True)
    return ranked.view(m, groups).T.reshape(-1)


def _permute_rows(linear: nn.Linear, order: torch.Tensor, parts: int = 1) -> None:
    """Rows of `linear` (stacked `parts` times, e.g. gate_up's [gate | up]) reordered by `order`."""
    size = linear.weight.shape[0] // parts
    rows = torch.cat([order + i * size for i in range(parts)]).to(linear.weight.device)
    linear.weight.data.copy_(linear.weight.data[rows])
    if linear.bias is not None:
        linear.bias.data.copy_(linear.bias.data[rows])


def mlp_groups(linears: dict[str, nn.Linear]) -> list[tuple[list[tuple[str, int]], str]]:
    """Each MLP of a layer's Linears (dense, shared expert, routed experts) as
    ([(producer role, parts stacked in its rows)], consumer role): gate/up (or fused gate_up, or
    a gate-less up such as OPT's fc1) feeding down."""
    found = []
    for role in linears:
        if not role.endswith("down"):
            continue
        prefix = role[: -len("down")]
        producers = [(prefix + part, 1) for part in MLP_PARTS if prefix + part in linears]
        if prefix + "gate_up" in linears:
            producers.append((prefix + "gate_up", len(MLP_PARTS)))
        if producers:
            found.append((producers, role))
    return found


@torch.no_grad()
def permute_mlp_channels(
    linears: dict[str, nn.Linear], stats: dict, m: int, importance_of
) -> dict[str, torch.Tensor]:
    """Permute every MLP's intermediate channels in place (weights and down's input statistics).

    `importance_of(down_linear, down_stats)` gives each channel's importance (channels,). Returns
    down role -> the order applied. An MLP whose width is not a multiple of m is left alone (the
    N:M pattern refuses it anyway)."""
    applied = {}
    for producers, consumer in mlp_groups(linears):
        down = linears[consumer]
        if down.in_features % m:
            continue
        order = balanced_order(importance_of(down.weight, stats.get(consumer)), m)
        for role, parts in producers:
            _permute_rows(linears[role], order, parts)
        down.weight.data.copy_(down.weight.data[:, order.to(down.weight.device)])
        seen = stats.get(consumer)
        if seen is not None:
            seen.total.copy_(seen.total[order.to(seen.total.device)])
        applied[consumer] = order
    return applied

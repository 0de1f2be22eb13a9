"""Applying a structured plan: slice weights and biases, update module attributes, drop empty blocks.

Slicing (not masking) is what makes the model smaller and its matmuls faster. The result computes
exactly what the masked model computes: removed q/k/v rows only feed removed heads, and removed
o_proj columns and down_proj columns only read removed outputs.
"""

from __future__ import annotations

import torch
from torch import nn

from secateur.errors import SecateurError
from secateur.models.adapter import ModelAdapter
from secateur.models.geometry import LayerShape
from secateur.models.skipped import SkippedBlock
from secateur.structured.groups import ATTENTION, MLP, kv_rows, q_rows
from secateur.structured.plan import LayerPlan, StructuredPlan


def _slice_linear(linear: nn.Linear, index: torch.Tensor, dim: int) -> None:
    """Keep `index` along the weight's dim 0 (outputs) or dim 1 (inputs), in place."""
    index = index.to(linear.weight.device)
    with torch.no_grad():
        linear.weight = nn.Parameter(linear.weight.index_select(dim, index).contiguous())
        if dim == 0 and linear.bias is not None:
            linear.bias = nn.Parameter(linear.bias.index_select(0, index).contiguous())
    if dim == 0:
        linear.out_features = int(index.numel())
    else:
        linear.in_features = int(index.numel())


def shrink_attention(adapter: ModelAdapter, layer: nn.Module, keep: torch.Tensor, shape: LayerShape) -> None:
    if keep.numel() == 0:
        adapter.replace_sub_block(layer, ATTENTION, SkippedBlock(ATTENTION))
        return
    q_index, kv_index = q_rows(keep, shape), kv_rows(keep, shape)
    for linear, rows in adapter.output_rows(layer, {"q": q_index, "k": kv_index, "v": kv_index}, shape):
        _slice_linear(linear, rows, 0)  # a fused qkv_proj once, with the rows of all three parts
    _slice_linear(adapter.linears(layer)["o"], q_index, 1)
    attention = adapter.sub_block(layer, ATTENTION)
    adapter.resize_attention(attention, keep.numel() * shape.gqa_ratio, keep.numel())


def shrink_mlp(adapter: ModelAdapter, layer: nn.Module, keep: torch.Tensor, shape: LayerShape) -> None:
    # OPT's fc1/fc2 sit on the layer itself, so there is no MLP module to replace: slicing them to
    # zero channels computes the same (fc2's bias alone, as the masked model does).
    if keep.numel() == 0 and adapter.sub_block(layer, MLP) is not None:
        adapter.replace_sub_block(layer, MLP, SkippedBlock(MLP))
        return
    # A channel is a row of each input projection (OPT: fc1 only; Phi-3: of both halves of gate_up).
    for linear, rows in adapter.output_rows(layer, {"gate": keep, "up": keep}, shape):
        _slice_linear(linear, rows, 0)
    _slice_linear(adapter.linears(layer)["down"], keep, 1)
    mlp = adapter.sub_block(layer, MLP)
    if mlp is not None and hasattr(mlp, "intermediate_size"):
        mlp.intermediate_size = int(keep.numel())


def _check(plan: LayerPlan, shape: LayerShape) -> None:
    for name, kept, size in (
        ("kv_heads", plan.kv_heads, shape.num_kv_heads),
        ("channels", plan.channels, shape.intermediate),
    ):
        if len(set(kept)) != len(kept) or any(not 0 <= i < size for i in kept):
            raise SecateurError(
                f"plan for layer {plan.layer}: {name} must be distinct indices in [0, {size}), "
                f"got {len(kept)} entries"
            )


def check_plan(adapter: ModelAdapter, plan: StructuredPlan) -> dict[int, LayerShape]:
    """The planned layers' shapes now; raises SecateurError if the plan does not fit the model."""
    layers = adapter.decoder_layers()
    if plan.model_type != adapter.config.model_type or plan.gqa_ratio != adapter.geometry().gqa_ratio:
        raise SecateurError(
            f"this plan is for a {plan.model_type} model with GQA ratio {plan.gqa_ratio}, not this "
            f"{adapter.config.model_type} with ratio {adapter.geometry().gqa_ratio}"
        )
    shapes = {}
    for row in plan.layers:
        if not 0 <= row.layer < len(layers):
            raise SecateurError(f"plan names layer {row.layer}, but the model has {len(layers)} layers")
        shapes[row.layer] = adapter.layer_shape(row.layer)
        _check(row, shapes[row.layer])
    return shapes


def removes(row: LayerPlan, shape: LayerShape) -> tuple[bool, bool]:
    """Whether the plan takes anything from the layer's attention, and from its MLP."""
    return (
        bool(shape.num_kv_heads) and len(row.kv_heads) < shape.num_kv_heads,
        bool(shape.intermediate) and len(row.channels) < shape.intermediate,
    )


@torch.no_grad()
def apply_plan(adapter: ModelAdapter, plan: StructuredPlan) -> None:
    """Shrink `adapter.model` in place; raises SecateurError, touching nothing, if the plan does not fit."""
    shapes = check_plan(adapter, plan)
    for row in plan.layers:
        shape = shapes[row.layer]
        keep_kv = torch.tensor(sorted(row.kv_heads), dtype=torch.long)
        keep_channels = torch.tensor(sorted(row.channels), dtype=torch.long)
        attention, mlp = removes(row, shape)
        if not (attention or mlp):
            continue
        with adapter.layer_edit(row.layer) as layer:  # streamed: read, sliced, written back, freed
            if attention:
                shrink_attention(adapter, layer, keep_kv, shape)
            if mlp:
                shrink_mlp(adapter, layer, keep_channels, shape)

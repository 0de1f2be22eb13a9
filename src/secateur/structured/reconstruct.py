"""Applying a structured plan with reconstruction: the Linears that lose inputs are refit.

Removing attention groups takes columns from o_proj, removing MLP channels takes columns from
down_proj. Instead of only slicing them, their kept columns are refit by least squares so that each
rebuilds what the unpruned module outputs on the same inputs (the layer-wise reconstruction of
SparseGPT and OSSCAR, here for whole groups): W_S = (W G)[:, S] (G_SS + Λ)⁻¹ with G = XᵀX of the
module's inputs. The layers are visited in order, each on the activations the already pruned and
refit layers produce (so errors are corrected, not accumulated), attention first, then the MLP on
the inputs the refit attention gives it. The attention-sink position is left out of G, as OSSCAR's
measurements showed (docs/benchmarks.md). Gram matrices are summed over processes under torchrun.
"""

from __future__ import annotations

import torch
from torch import nn

from secateur.calibration.capture import capture_layer_inputs
from secateur.calibration.pipeline import LayerContext, run_layers
from secateur.calibration.stats import add_gram
from secateur.distributed import all_sum
from secateur.models.adapter import ModelAdapter
from secateur.structured.apply import check_plan, removes, shrink_attention, shrink_mlp
from secateur.structured.groups import q_rows
from secateur.structured.osscar import Reconstruction, refit
from secateur.structured.plan import StructuredPlan


def input_gram(ctx: LayerContext, linear: nn.Linear, skip_first: int) -> torch.Tensor:
    """XᵀX (fp64 sum, fp32 result) of what `linear` receives in this layer, positions before
    `skip_first` of every window left out."""
    gram = torch.zeros(linear.in_features, linear.in_features, dtype=torch.float64, device=ctx.device)
    seqlen = ctx.inputs.hidden.shape[1]

    def collect(module: nn.Module, args: tuple) -> None:
        x = args[0].reshape(-1, seqlen, args[0].shape[-1])[:, skip_first:]  # OPT flattens tokens
        add_gram(gram, x.reshape(-1, x.shape[-1]))

    handle = linear.register_forward_pre_hook(collect)
    try:
        ctx.observe(stop_after=linear)
    finally:
        handle.remove()
    return all_sum(gram).float()


def _refit(linear: nn.Linear, gram: torch.Tensor, keep: torch.Tensor, damp: float) -> torch.Tensor:
    problem = Reconstruction.of_layer(linear.weight.detach(), gram)
    return refit(problem, keep.to(gram.device), damp)


@torch.no_grad()
def apply_plan_reconstructing(
    adapter: ModelAdapter,
    plan: StructuredPlan,
    windows: torch.Tensor,
    *,
    device: torch.device,
    batch_size: int = 4,
    damp: float = 0.01,
    skip_first: int = 1,
    show_progress: bool = True,
) -> None:
    """apply_plan, with o_proj and down_proj refit on the calibration windows (see the module doc)."""
    shapes = check_plan(adapter, plan)
    rows = {row.layer: row for row in plan.layers}
    inputs = capture_layer_inputs(
        adapter, windows, batch_size=batch_size, compute_device=device, storage_device=device
    )

    def visit(ctx: LayerContext) -> None:
        row = rows.get(ctx.index)
        if row is None:
            return
        shape = shapes[ctx.index]
        attention, mlp = removes(row, shape)
        keep_kv = torch.tensor(sorted(row.kv_heads), dtype=torch.long)
        keep_channels = torch.tensor(sorted(row.channels), dtype=torch.long)
        if attention:
            o = ctx.linears["o"]
            if keep_kv.numel():
                fitted = _refit(o, input_gram(ctx, o, skip_first), q_rows(keep_kv, shape), damp)
            shrink_attention(adapter, ctx.layer, keep_kv, shape)
            if keep_kv.numel():
                adapter.linears(ctx.layer)["o"].weight.copy_(fitted.to(o.weight.dtype))
        if mlp:
            down = adapter.linears(ctx.layer)["down"]  # the attention may have just changed
            if keep_channels.numel():
                fitted = _refit(down, input_gram(ctx, down, skip_first), keep_channels, damp)
            shrink_mlp(adapter, ctx.layer, keep_channels, shape)
            if keep_channels.numel():
                adapter.linears(ctx.layer)["down"].weight.copy_(fitted.to(down.weight.dtype))

    run_layers(
        adapter,
        visit,
        inputs=inputs,
        device=device,
        show_progress=show_progress,
        desc="reconstruct",
        propagate_last=False,
        changes=True,
    )

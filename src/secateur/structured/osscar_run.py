"""`secateur prune --method osscar`: per layer, in order, choose and refit the MLP channels to keep.

Sequential (true-sequential in Quark's words): each layer's down_proj inputs are gathered with the
layers before it already pruned, so later layers correct for earlier removals. The result keeps the
same width in every layer, so it is a standard checkpoint.

The refit target is OSSCAR's: the layer's own down_proj output on those (already drifted) inputs.
(Aiming at the dense model's down_proj output instead, through a second activation stream, was
tried and measured worse: ppl 40.9 vs 35.7 at a 10% ratio on SmolLM2.)
"""

from __future__ import annotations

import time

import torch
from torch import nn

from secateur.calibration.capture import capture_layer_inputs
from secateur.calibration.pipeline import LayerContext, run_layers
from secateur.calibration.stats import add_gram
from secateur.distributed import all_sum
from secateur.errors import SecateurError
from secateur.models.adapter import ModelAdapter
from secateur.models.geometry import count_parameters
from secateur.structured.apply import shrink_mlp
from secateur.structured.osscar import (
    Reconstruction,
    error,
    greedy_channels,
    kept_width,
    local_search,
    refit,
    wanda_channels,
)

STARTS = ("wanda", "greedy")


@torch.no_grad()
def layer_problem(ctx: LayerContext, skip_first: int = 1) -> Reconstruction:
    """Gram statistics of the down_proj inputs the pruned stream gives this layer, batch by batch.

    The first `skip_first` positions of every window are left out: the attention-sink token there
    carries activations orders of magnitude above the rest and would otherwise dominate XᵀX, so the
    refit would serve it at the expense of every ordinary token (measured: at a 10% ratio on SmolLM2
    the refit loses to no refit with it, wins without it; docs/benchmarks.md).
    """
    down = ctx.linears["down"]
    gram = torch.zeros(down.in_features, down.in_features, dtype=torch.float64, device=ctx.device)

    seqlen = ctx.inputs.hidden.shape[1]

    def collect(module: nn.Module, args: tuple) -> None:
        # (batch, seq, features); OPT's layer flattens tokens before its MLP, so restore the windows.
        x = args[0].reshape(-1, seqlen, args[0].shape[-1])[:, skip_first:]
        add_gram(gram, x.reshape(-1, x.shape[-1]))

    handle = down.register_forward_pre_hook(collect)
    try:
        ctx.observe(stop_after=down)  # down_proj's own product is not needed
    finally:
        handle.remove()
    all_sum(gram)  # a distributed run: the windows of every process
    return Reconstruction.of_layer(down.weight.detach().float(), gram.float(), toward_weight=True)


@torch.no_grad()
def osscar_prune(
    adapter: ModelAdapter,
    windows: torch.Tensor,
    *,
    ratio: float,
    damp: float,
    swaps: int,
    round_to: int,
    device: torch.device,
    batch_size: int = 4,
    show_progress: bool = True,
    reconstruct: bool = True,
    start: str = "greedy",
    skip_first: int = 1,
    sequential: bool = True,
) -> dict:
    """Prune every MLP in place; returns a report (per layer: kept channels, errors before/after search).

    `reconstruct=False` is the baseline OSSCAR is measured against: Wanda's channels, no search, no refit.
    `sequential=False`: every layer's statistics come from the dense model's activations (the
    inputs are pushed through each layer before it is pruned); secateur's option (Quark's flag of that
    name groups the modules inside a layer, a no-op with down_proj alone).
    """
    if start not in STARTS:
        raise SecateurError(f"--osscar-start must be one of {', '.join(STARTS)}, got {start!r}")
    started = time.perf_counter()
    before = count_parameters(adapter.model)
    layers_report = []
    inputs = capture_layer_inputs(
        adapter, windows, batch_size=batch_size, compute_device=device, storage_device=device
    )

    def visit(ctx: LayerContext) -> None:
        if "down" not in ctx.linears:
            return
        down = ctx.linears["down"]
        width = kept_width(down.in_features, ratio, round_to)
        if width >= down.in_features:
            raise SecateurError(
                f"--mlp-pruning-ratio {ratio:g} with --round-to {round_to} keeps every channel"
            )
        weight = down.weight.detach().float()
        # The baseline is plain Wanda: its channel norms over every token, the sink included.
        problem = layer_problem(ctx, skip_first if reconstruct else 0)
        if not sequential:
            ctx.propagate()  # the next layer sees this layer's dense output
        wanda = wanda_channels(weight, problem.gram, width)
        plain = error(problem, wanda, weight[:, wanda])
        if reconstruct:
            first = wanda if start == "wanda" else greedy_channels(problem, width, damp)
            keep, history = local_search(problem, first, damp, swaps)
            fitted = refit(problem, keep, damp)
        else:
            keep, fitted, history = wanda, weight[:, wanda], [plain]
        shrink_mlp(adapter, ctx.layer, keep.cpu(), adapter.layer_shape(ctx.index))
        down.weight.copy_(fitted.to(down.weight.dtype))
        layers_report.append(
            {"layer": ctx.index, "kept": width, "error_wanda_no_refit": plain, "error_search": history}
        )

    run_layers(
        adapter, visit, inputs=inputs, device=device, show_progress=show_progress, desc="osscar", changes=True
    )
    return {
        "method": "osscar",
        "start": start,
        "skip_first_tokens": skip_first,
        "sequential": sequential,
        "params_before": before,
        "params_after": count_parameters(adapter.model),
        "layers": layers_report,
        "seconds": time.perf_counter() - started,
    }

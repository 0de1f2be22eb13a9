"""`secateur prune --method osscar`: per layer, in order, choose and refit the MLP channels to keep.

Sequential (true-sequential in Quark's words): each layer's down_proj inputs are gathered with the
layers before it already pruned, so later layers correct for earlier removals. The result keeps the
same width in every layer, so it is a standard checkpoint.

What the refit aims at (`target`):
- "layer": the layer's own down_proj output on those (already drifted) inputs, OSSCAR's objective;
- "dense": the dense model's down_proj output for the same tokens: a second activation stream runs
  through the unpruned layers, so the refit also pulls the drift of earlier layers back;
- "residual": the dense model's whole layer output: down_proj absorbs everything the residual stream
  has drifted by so far, the most aggressive correction.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from secateur.calibration.capture import capture_layer_inputs
from secateur.calibration.pipeline import LayerContext, first_output, run_layers
from secateur.errors import SecateurError
from secateur.models.adapter import ModelAdapter
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
from secateur.structured.run import count_parameters

TARGETS = ("layer", "dense", "residual")
STARTS = ("wanda", "greedy")


def _down_input(down: nn.Linear) -> tuple[list[torch.Tensor], object]:
    seen: list[torch.Tensor] = []
    handle = down.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    return seen, handle


@torch.no_grad()
def layer_problem(
    ctx: LayerContext, dense_hidden: torch.Tensor | None, target: str, skip_first: int = 0
) -> Reconstruction:
    """Gram statistics of the pruned stream's down_proj inputs against the target, batch by batch.

    The first `skip_first` positions of every window are left out: the attention-sink token there
    carries activations orders of magnitude above the rest and would otherwise dominate XᵀX, so the
    refit would serve it at the expense of every ordinary token. For "dense"/"residual", the
    (still unpruned) layer also runs on the dense stream and `dense_hidden` is overwritten with its
    outputs, ready for the next layer.
    """
    assert ctx.inputs is not None
    down = ctx.linears["down"]
    weight = down.weight.detach().float()
    gram = torch.zeros(down.in_features, down.in_features, device=ctx.device)
    cross = torch.zeros(down.out_features, down.in_features, device=ctx.device)
    energy = 0.0
    seen, handle = _down_input(down)

    def tokens(x: torch.Tensor) -> torch.Tensor:
        return x[:, skip_first:].reshape(-1, x.shape[-1]).float()

    try:
        for batch in ctx.inputs.batches():
            args, kwargs = ctx.inputs.arguments(batch)
            if target == "layer":
                ctx.layer(ctx.inputs.hidden[batch].to(ctx.device), *args, **kwargs)
                pruned_x = tokens(seen.pop())
                gram.addmm_(pruned_x.T, pruned_x)
                continue
            assert dense_hidden is not None
            dense_out = first_output(ctx.layer(dense_hidden[batch].to(ctx.device), *args, **kwargs))
            pruned_out = first_output(ctx.layer(ctx.inputs.hidden[batch].to(ctx.device), *args, **kwargs))
            dense_x, pruned_x = (tokens(x) for x in seen)
            seen.clear()
            if target == "dense":
                wanted = dense_x @ weight.T
            else:  # the dense layer's output minus the pruned stream's residual before down_proj adds
                wanted = pruned_x @ weight.T + tokens(dense_out - pruned_out)
            gram.addmm_(pruned_x.T, pruned_x)
            cross.addmm_(wanted.T, pruned_x)
            energy += float(wanted.square().sum())
            dense_hidden[batch] = dense_out.to(dense_hidden.device)
    finally:
        handle.remove()
    if target == "layer":
        return Reconstruction.of_layer(weight, gram)
    return Reconstruction(gram, cross, energy)


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
    target: str = "layer",
    start: str = "wanda",
    skip_first: int = 0,
) -> dict:
    """Prune every MLP in place; returns a report (per layer: kept channels, errors before/after search).

    `reconstruct=False` is the baseline OSSCAR is measured against: Wanda's channels, no search, no refit.
    """
    if target not in TARGETS or start not in STARTS:
        raise SecateurError(f"OSSCAR target must be one of {TARGETS} and start one of {STARTS}")
    started = time.perf_counter()
    before = count_parameters(adapter.model)
    layers_report = []
    inputs = capture_layer_inputs(
        adapter, windows, batch_size=batch_size, compute_device=device, storage_device=device
    )
    paired = reconstruct and target != "layer"
    dense_hidden = inputs.hidden.clone() if paired else None

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
        problem = layer_problem(ctx, dense_hidden, target if reconstruct else "layer", skip_first)
        own = Reconstruction.of_layer(weight, problem.gram)  # the baseline's objective, for the report
        wanda = wanda_channels(weight, problem.gram, width)
        plain = error(own, wanda, weight[:, wanda])
        if reconstruct:
            first = wanda if start == "wanda" else greedy_channels(problem, width, damp)
            keep, history = local_search(problem, first, damp, swaps)
            fitted = refit(problem, keep, damp)
        else:
            keep, fitted, history = wanda, weight[:, wanda], [plain]
        shrink_mlp(adapter, ctx.layer, keep.cpu())
        down.weight.copy_(fitted.to(down.weight.dtype))
        layers_report.append(
            {"layer": ctx.index, "kept": width, "error_wanda_no_refit": plain, "error_search": history}
        )

    run_layers(adapter, visit, inputs=inputs, device=device, show_progress=show_progress, desc="osscar")
    return {
        "method": "osscar",
        "target": target,
        "start": start,
        "params_before": before,
        "params_after": count_parameters(adapter.model),
        "layers": layers_report,
        "seconds": time.perf_counter() - started,
    }

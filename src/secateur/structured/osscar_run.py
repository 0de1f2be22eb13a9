"""`secateur prune --method osscar`: per layer, in order, choose and refit the MLP channels to keep.

Sequential (true-sequential in Quark's words): each layer's down_proj inputs are gathered with the
layers before it already pruned, so later layers correct for earlier removals. The result keeps the
same width in every layer, so it is a standard checkpoint.
"""

from __future__ import annotations

import time

import torch

from secateur.calibration.capture import capture_layer_inputs
from secateur.calibration.pipeline import LayerContext, run_layers
from secateur.calibration.stats import HessianStats, InputCollector
from secateur.errors import SecateurError
from secateur.models.adapter import ModelAdapter
from secateur.structured.apply import shrink_mlp
from secateur.structured.osscar import error, kept_width, local_search, refit, wanda_channels
from secateur.structured.run import count_parameters


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
) -> dict:
    """Prune every MLP in place; returns a report (per layer: kept channels, errors before/after search).

    `reconstruct=False` is the baseline OSSCAR is measured against: Wanda's channels, no search, no refit.
    """
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
        with InputCollector({"down": down}, HessianStats.for_module).attached() as stats:
            ctx.observe()
        gram, weight = stats["down"].xtx, down.weight.detach().float()
        start = wanda_channels(weight, gram, width)
        if reconstruct:
            keep, history = local_search(weight, gram, start, damp, swaps)
            fitted = refit(weight, gram, keep, damp)
        else:
            keep, fitted = start, weight[:, start]
            history = [error(weight, gram, keep, fitted)]
        plain = error(weight, gram, start, weight[:, start])
        shrink_mlp(adapter, ctx.layer, keep.cpu())
        down.weight.copy_(fitted.to(down.weight.dtype))
        layers_report.append(
            {"layer": ctx.index, "kept": width, "error_wanda_no_refit": plain, "error_search": history}
        )

    run_layers(adapter, visit, inputs=inputs, device=device, show_progress=show_progress, desc="osscar")
    return {
        "method": "osscar",
        "params_before": before,
        "params_after": count_parameters(adapter.model),
        "layers": layers_report,
        "seconds": time.perf_counter() - started,
    }

"""`secateur prune --method osscar`: MLP channels chosen and refit layer by layer (see structured.osscar_run).

The step of a prune run, its summary, and the analysis it writes beside the checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

from secateur.evaluation.summary import format_table, percent
from secateur.export.structured import sync_uniform_config
from secateur.methods.base import PruneStep, StepResult
from secateur.methods.outcome import ShrinkReport, outcome_rows
from secateur.registry import register
from secateur.structured.osscar_run import osscar_prune


def prune_osscar(
    loaded, recipe, windows, device: torch.device, show_progress: bool, note: Callable[[str], None]
):
    loaded.adapter.require_structured("osscar")
    config = recipe.osscar
    data = osscar_prune(
        loaded.adapter,
        windows,
        ratio=config.mlp_pruning_ratio,
        damp=config.damp_percent,
        swaps=config.swaps,
        start=config.start,
        skip_first=config.skip_first_tokens,
        sequential=config.true_sequential,
        round_to=recipe.structured.round_to,
        device=device,
        batch_size=recipe.prune.batch_size,
        show_progress=show_progress,
    )
    sync_uniform_config(loaded.adapter)
    report = ShrinkReport(data)
    note(
        f"osscar: {data['params_before']:,} -> {data['params_after']:,} parameters in {data['seconds']:.1f}s"
    )

    def write(folder: Path) -> None:
        (folder / "osscar_analysis.json").write_text(json.dumps(data, indent=1) + "\n")

    return StepResult(report, write)


def summary(run) -> str:
    """Per-layer reconstruction errors of OSSCAR's channel choice, and the parameter change."""
    data = run.report.data
    rows = [
        [
            layer["layer"],
            layer["kept"],
            f"{layer['error_wanda_no_refit']:.4g}",
            f"{layer['error_search'][0]:.4g}",
            f"{layer['error_search'][-1]:.4g}",
            len(layer["error_search"]) - 1,
        ]
        for layer in data["layers"]
    ]
    headers = ["layer", "channels kept", "error: Wanda, no refit", "Wanda + refit", "after search", "swaps"]
    table = [
        ["parameters", f"{data['params_before']:,} -> {data['params_after']:,}"],
        ["prune time", f"{data['seconds']:.1f}s"],
    ]
    table += outcome_rows(run)
    ratio = percent(run.recipe.osscar.mlp_pruning_ratio)
    title = f"secateur prune: {run.recipe.model} | osscar | MLP ratio {ratio}"
    return "\n".join([title, "", format_table(headers, rows), "", format_table(["summary", "value"], table)])


OSSCAR = register("step", "osscar")(
    PruneStep(
        name="osscar",
        # OSSCAR keeps a multiple of --round-to channels, like a uniform structured plan.
        reads=frozenset({"osscar.*", "structured.round_to"}),
        needs_activations=lambda recipe: True,
        run=prune_osscar,
        summary=summary,
        sized_by="--mlp-pruning-ratio",
    )
)

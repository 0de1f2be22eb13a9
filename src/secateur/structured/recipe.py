"""`secateur prune --method structured`: the structured step of a prune run, and what it writes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from secateur.export.structured import sync_uniform_config
from secateur.structured.outputs import analysis, plot_kept_width, write_group_table
from secateur.structured.plan import PLAN_FILE
from secateur.structured.run import StructuredReport, structured_prune


class StructuredRunReport:
    """Adapts StructuredReport to what a prune run records (to_dict, timings)."""

    def __init__(self, report: StructuredReport, importance: str) -> None:
        self.inner = report
        self.importance = importance
        self.timings = {"prune_s": report.timings.get("structured_s", 0.0), **report.timings}

    def to_dict(self) -> dict:
        return {"method": "structured", "importance": self.importance, **self.inner.summary()}


def prune_structured(
    loaded, recipe, windows, device: torch.device, show_progress: bool, note: Callable[[str], None]
):
    """Shrink `loaded.model`; returns (report, writer of the files beside the checkpoint)."""
    report = structured_prune(
        loaded.adapter,
        recipe.structured,
        windows,
        device=device,
        batch_size=recipe.prune.batch_size,
        show_progress=show_progress,
    )
    uniform = sync_uniform_config(loaded.adapter)
    summary = report.summary()
    share = (
        f"{summary['ratio_of_total']:.2%} of all, {summary['ratio_of_prunable']:.2%} of the decoder Linears"
    )
    note(
        f"structured ({recipe.structured.importance}): removed {report.removed:,} of "
        f"{report.params_before:,} parameters ({share}); {'uniform' if uniform else 'heterogeneous'} widths"
    )

    def write(folder: Path) -> None:
        import json

        report.plan.save(folder / PLAN_FILE)
        (folder / "pruning_analysis.json").write_text(
            json.dumps(analysis(report), indent=1, default=str) + "\n"
        )
        write_group_table(report, folder / "global_group_table.csv")
        plot_kept_width(report, folder / "kept_width.png", f"{recipe.model}: kept width per layer")

    return StructuredRunReport(report, recipe.structured.importance), write

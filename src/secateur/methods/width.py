"""`secateur prune --method structured`: attention groups and MLP channels removed (shapes shrink).

The step of a prune run, its summary, the rules between its options, and the files it writes beside
the checkpoint (the plan, pruning_analysis.json, global_group_table.csv, kept_width.png).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from secateur.evaluation.summary import format_table, percent
from secateur.export.structured import sync_uniform_config
from secateur.methods.base import PruneStep, StepResult
from secateur.methods.outcome import outcome_rows
from secateur.registry import register
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
    loaded.adapter.require_structured("structured")
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

    return StepResult(StructuredRunReport(report, recipe.structured.importance), write)


def check(recipe) -> None:
    """Options of the structured section that only apply with some of its other options."""
    from secateur.unused_options import changed_fields, refuse

    config = recipe.structured
    changed = {f.name: f for f in changed_fields(config)}
    if config.plan is not None:
        planning = [f for n, f in changed.items() if n != "plan"]
        refuse(planning, "structured", "--plan applies a saved plan, nothing is planned")
        return
    unused = []
    if not config.uniform and "round_to" in changed:
        unused.append(changed["round_to"])  # the global plan removes single channels
    if not config.importance.startswith("taylor"):
        unused += [changed[n] for n in ("gradient_batch_size", "gradient_checkpointing") if n in changed]
    if config.prior_temperature == 0 and "tau" in changed:
        unused.append(changed["tau"])
    if config.uniform and "epsilon" in changed:
        unused.append(changed["epsilon"])  # a uniform plan leaves every layer the same share
    why = (
        "each applies only with --uniform (round-to), taylor importances (gradient-*), "
        "--temperature > 0 (tau), or a global plan (epsilon)"
    )
    refuse(unused, "structured", why)


def summary(run) -> str:
    """Per-layer kept widths and the parameter accounting of a structured prune."""
    recipe, report = run.recipe, run.report.inner
    config = recipe.structured
    data = report.summary()
    lines = [
        f"secateur prune: {recipe.model} | structured | importance {config.importance} | "
        f"pruning ratio {percent(config.pruning_ratio)} | T {config.prior_temperature:g}"
        + (f" | tau {data['tau']:.4g}" if data["tau"] is not None else "")
        + (" | uniform" if config.uniform else ""),
        "",
    ]
    rows = []
    for row in analysis(report)["layers"]:
        rows.append(
            [
                row["layer"],
                f"{row['heads']['after']}/{row['heads']['before']}",
                f"{row['kv_heads']['after']}/{row['kv_heads']['before']}",
                f"{row['channels']['after']}/{row['channels']['before']}",
                f"{row['params']['after']:,}",
                "frozen" if not row["planned"] else "collapsed" if row["layer"] in report.collapsed else "",
            ]
        )
    lines += [format_table(["layer", "heads", "KV heads", "MLP channels", "params", ""], rows), ""]
    table = [
        ["parameters", f"{data['params_before']:,} -> {data['params_after']:,}"],
        ["removed (of all parameters)", percent(data["ratio_of_total"])],
        ["removed (of decoder Linears)", percent(data["ratio_of_prunable"])],
        ["widths", "uniform (standard config)" if data["uniform"] else "heterogeneous (per_layer_config)"],
        *([["collapsed by --epsilon", ", ".join(map(str, report.collapsed))]] if report.collapsed else []),
        ["prune time", f"{run.report.timings['prune_s']:.1f}s"],
    ]
    table += outcome_rows(run)
    lines.append(format_table(["summary", "value"], table))
    return "\n".join(lines)


WIDTH = register("step", "structured")(
    PruneStep(
        name="structured",
        reads=frozenset({"structured.*"}),
        needs_activations=lambda recipe: (
            recipe.structured.needs_activations or recipe.structured.needs_gradients
        ),
        run=prune_structured,
        summary=summary,
        sized_by="--pruning-ratio",
        check=check,
        cannot_stream=lambda recipe: (
            f"--importance {recipe.structured.importance} needs gradients through the whole model at "
            "once; use --importance wanda or magnitude with --stream"
            if recipe.structured.needs_gradients
            else None
        ),
    )
)

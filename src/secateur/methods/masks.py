"""The mask methods (weights zeroed, shapes kept): magnitude, wanda, sparsegpt, any registered scorer.

One step serves them all: the pipeline in `secateur.pruning.masking` runs the method's scorer or
solver per Linear. A mask method's own settings are the fields of its registered class (sparsegpt:
blocksize, percdamp), filled from the same-named PruneConfig fields; another method's settings are
refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from secateur.evaluation.summary import change, format_table, percent
from secateur.methods.base import COMMON, PruneStep, StepResult
from secateur.pruning.masking import PruneReport, prune_with_masks
from secateur.registry import REGISTRY, register

# PruneConfig fields every mask method reads (beyond COMMON); the rest are methods' own settings.
SHARED = (
    "sparsity", "pattern", "skip_layers", "offload_activations", "owl", "tiers", "topk", "tier_nm",
    "expert_min_tokens",
)  # fmt: skip


def method_settings(prune) -> set[str]:
    """The PruneConfig fields that are some mask method's own settings."""
    names = {f.name for f in dataclasses.fields(prune)}
    return names - set(SHARED) - {key.split(".")[1] for key in COMMON}


def check_prune(prune) -> None:
    from secateur.patterns.tiered import Tiered
    from secateur.pruning.method import build_method
    from secateur.unused_options import changed_fields, refuse

    changed = {f.name: f for f in changed_fields(prune)}
    method = REGISTRY.get("method", prune.method)
    build_method(prune.method, prune)  # its own rules between its settings, before any work
    own = {f.name for f in dataclasses.fields(method)}
    foreign = [changed[n] for n in sorted(method_settings(prune) - own) if n in changed]
    refuse(foreign, prune.method, f"--method {prune.method} has no such setting (sparsegpt's solver has)")
    if not method.needs_activations and "expert_min_tokens" in changed:
        refuse([changed["expert_min_tokens"]], prune.method, f"--method {prune.method} reads no statistics")
    if not isinstance(prune.pattern_object(), Tiered):
        tiered_only = [changed[n] for n in ("topk", "tier_nm") if n in changed]
        refuse(tiered_only, prune.method, f"--pattern {prune.pattern} has no tiers")


def _run(loaded, recipe, windows, device, show_progress: bool, note: Callable[[str], None]) -> StepResult:
    from secateur.unused_options import changed_fields, refuse

    if not loaded.adapter.has_experts:
        given = [f for f in changed_fields(recipe.prune) if f.name == "expert_min_tokens"]
        refuse(given, recipe.prune.method, f"{loaded.adapter.spec.model_type} has no routed experts")
    report = prune_with_masks(loaded.adapter, recipe.prune, windows, show_progress=show_progress)
    note(f"pruned in {report.timings['prune_s']:.1f}s; sparsity {report.sparsity.actual:.4f}")
    return StepResult(report, tier_files(report, recipe))


def tier_files(report: PruneReport, recipe) -> Callable[[Path], None] | None:
    """For --pattern tiered: a writer of tier_maps.safetensors and its heatmap, else None."""
    if not report.tier_maps:
        return None

    def write(folder: Path) -> None:
        from secateur.evaluation.tier_plot import plot_tier_maps
        from secateur.export.tier_maps import TIER_MAPS, save_tier_maps

        save_tier_maps(folder / TIER_MAPS, report.tier_maps, recipe.prune.pattern_object())
        plot_tier_maps(report.tier_maps, folder / "tier_maps.png", f"{recipe.model}: {report.pattern}")

    return write


def summary(run) -> str:
    recipe, report = run.recipe, run.report
    cal = recipe.calibration
    lines = [
        f"secateur prune: {recipe.model} | {report.method} | {report.pattern} | "
        f"target sparsity {percent(report.target_sparsity)}",
        f"calibration: {cal.dataset}, {cal.nsamples} x {cal.seqlen} tokens, seed {cal.seed}"
        + (
            f" | skipped layers: {','.join(map(str, report.skipped_layers))}" if report.skipped_layers else ""
        ),
        "",
        layer_table(report.sparsity.per_layer()),
        "",
    ]
    rows = [["sparsity (targeted Linears)", percent(report.sparsity.actual)], ["verified", "yes"]]
    rows.append(["prune time", f"{report.timings['prune_s']:.1f}s"])
    if run.dense is not None:
        rows.append(
            [
                f"perplexity dense ({run.dense.dataset}, {run.dense.windows} x {run.dense.seqlen})",
                f"{run.dense.perplexity:.3f}",
            ]
        )
    if run.pruned is not None:
        rows.append(
            [
                f"perplexity pruned ({run.pruned.dataset}, {run.pruned.windows} x {run.pruned.seqlen})",
                f"{run.pruned.perplexity:.3f}",
            ]
        )
    if run.dense is not None and run.pruned is not None:
        rows.append(["perplexity change", change(run.dense.perplexity, run.pruned.perplexity)])
    tiers = report.tier_summary()
    if tiers:
        shares = " / ".join(f"{percent(tiers[t])} {t}" for t in ("dense", "nm", "topk"))
        rows.insert(1, ["tiles (dense / N:M / top-k)", shares])
    if recipe.prune.owl:
        rows.insert(1, ["OWL (M, lambda)", recipe.prune.owl])
    if report.expert_fallbacks:
        per_layer = ", ".join(f"layer {i}: {len(e)}" for i, e in sorted(report.expert_fallbacks.items()))
        rows.insert(
            1, [f"experts pruned by magnitude (< {recipe.prune.expert_min_tokens} tokens)", per_layer]
        )
    if run.out is not None:
        rows.append(["saved to", str(run.out)])
    lines.append(format_table(["summary", "value"], rows))
    return "\n".join(lines)


def layer_table(per_layer: list[dict]) -> str:
    """Per-layer target vs actual sparsity; tiles kept/pruned for block patterns."""
    tiered = any("tiles_topk" in row for row in per_layer)
    tiled = not tiered and any("tiles" in row for row in per_layer)
    headers = ["layer", "target", "actual", "zeros", "weights"]
    headers += ["tiles pruned", "tiles"] if tiled else []
    headers += ["dense tiles", "N:M tiles", "top-k tiles"] if tiered else []
    rows = []
    for row in per_layer:
        cells = [
            row["layer"],
            percent(row["target"]),
            percent(row["actual"]),
            f"{row['zeros']:,}",
            f"{row['numel']:,}",
        ]
        if tiled:
            cells += [f"{row.get('tiles_pruned', 0):,}", f"{row.get('tiles', 0):,}"]
        if tiered:
            cells += [f"{row.get(f'tiles_{tier}', 0):,}" for tier in ("dense", "nm", "topk")]
        rows.append(cells)
    return format_table(headers, rows)


MASKS = register("step", "masks")(
    PruneStep(
        name="masks",
        reads=frozenset({"prune.*"}),  # each method's own settings are narrowed down by check_prune
        needs_activations=lambda recipe: REGISTRY.get("method", recipe.prune.method).needs_activations,
        run=_run,
        summary=summary,
        sized_by="--sparsity",
        check_prune=check_prune,
        resumes=True,
    )
)

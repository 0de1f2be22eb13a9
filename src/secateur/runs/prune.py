"""`secateur prune`, as a function: load, calibrate, (evaluate), prune with the method's step,
verify, (evaluate), save. The CLI only builds the recipe."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from secateur.config import PruneRecipe, to_dict
from secateur.devices import resolve_device
from secateur.errors import SecateurError
from secateur.evaluation.perplexity import PerplexityResult
from secateur.export.save import check_output_dir, save_checkpoint
from secateur.methods.base import Report, prune_step
from secateur.models.geometry import count_parameters
from secateur.runs.session import (
    calibration_windows,
    check_seqlen,
    load_model,
    manifest_header,
    perplexity_meter,
    stderr,
)


@dataclass
class PruneRun:
    """Everything `run_prune` produced; `manifest` is what secateur.json holds."""

    recipe: PruneRecipe
    report: Report
    dense: PerplexityResult | None
    pruned: PerplexityResult | None
    out: Path | None
    manifest: dict = field(default_factory=dict)


def run_prune(
    recipe: PruneRecipe,
    *,
    show_progress: bool = True,
    note: Callable[[str], None] = stderr,
    argv: list[str] | None = None,
) -> PruneRun:
    """Load, calibrate, (evaluate), prune, verify, (evaluate), save: what `secateur prune` does."""
    started = time.perf_counter()
    if recipe.out is not None:
        check_output_dir(recipe.out, recipe.overwrite)
    step = prune_step(recipe.prune.method)
    device = resolve_device(recipe.prune.device)

    loaded = load_model(recipe.model, recipe.dtype, recipe.prune.device, recipe.trust_remote_code)
    if loaded.adapter.spec.remote_code and step.name != "masks":
        raise SecateurError(
            f"--method {recipe.prune.method} needs an architecture secateur knows; "
            f"{loaded.adapter.spec.model_type} comes with its own code: use magnitude, wanda or sparsegpt"
        )
    note(f"loaded {recipe.model} ({loaded.location}) in {time.perf_counter() - started:.1f}s")
    evaluation = recipe.evaluation
    check_seqlen(loaded.adapter, recipe.calibration.seqlen)
    needs_windows = step.needs_activations(recipe)
    windows = calibration_windows(loaded.tokenizer, recipe.calibration) if needs_windows else None
    eval_name = evaluation.dataset or recipe.calibration.dataset
    measure = perplexity_meter(
        loaded, evaluation, eval_name, recipe.calibration.seqlen, device, show_progress, note
    )

    dense = measure("dense") if evaluation.dense else None
    result = step.run(loaded, recipe, windows, device, show_progress, note)
    pruned = measure("pruned")

    seconds = time.perf_counter() - started
    manifest = build_manifest(recipe, loaded, result.report, dense, pruned, argv, seconds)
    out = None
    if recipe.out is not None:
        out = save_checkpoint(
            loaded.model, loaded.tokenizer, recipe.out, manifest, recipe.overwrite, result.extra
        )
    return PruneRun(recipe, result.report, dense, pruned, out, manifest)


def build_manifest(recipe, loaded, report, dense, pruned, argv, seconds) -> dict:
    """secateur.json: the recipe (replayable), versions, sparsity, perplexity, timings."""
    params = count_parameters(loaded.model)  # after pruning
    header = manifest_header(argv)
    versions = header.pop("versions")
    return {
        **header,
        "recipe": to_dict(recipe),
        "model": {
            "name": recipe.model,
            "location": loaded.location,
            "model_type": loaded.model.config.model_type,
            "parameters": params,
            "dtype": str(next(loaded.model.parameters()).dtype).replace("torch.", ""),
        },
        "versions": versions,
        "prune": report.to_dict(),
        "perplexity": {
            "dense": dense.to_dict() if dense else None,
            "pruned": pruned.to_dict() if pruned else None,
        },
        "timings": {**report.timings, "total_s": seconds},
    }

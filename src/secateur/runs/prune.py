"""`secateur prune`, as a function: load, calibrate, (evaluate), prune with the method's step,
verify, (evaluate), save. The CLI only builds the recipe."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from secateur.config import PruneRecipe, to_dict
from secateur.devices import resolve_device
from secateur.distributed import barrier, init_from_environment, is_main, shard, world_size
from secateur.errors import SecateurError
from secateur.evaluation.perplexity import PerplexityResult
from secateur.export.save import check_output_dir, save_checkpoint
from secateur.methods.base import Report, prune_step
from secateur.models.geometry import count_parameters
from secateur.models.streaming import layer_store
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
    init_from_environment(device)  # under torchrun: join the group (a no-op otherwise)
    if recipe.stream and recipe.max_memory is not None:
        raise SecateurError("--max-memory decides whether to stream; with --stream it is not used: drop one")
    # Expert pruning ranks experts by the tokens routed to them, which differ per process: not shared out yet.
    if world_size() > 1 and (step.name == "experts" or recipe.stream):
        what = "--stream" if recipe.stream else f"--method {recipe.prune.method}"
        raise SecateurError(f"{what} runs in one process for now: launch it without torchrun")
    stream = recipe.stream or _too_large(recipe, step, device, note)
    refusal = step.cannot_stream(recipe) if stream else None
    if refusal is not None:
        raise SecateurError(f"{refusal} (or drop --stream)")

    loaded = load_model(recipe.model, recipe.dtype, recipe.prune.device, recipe.trust_remote_code, stream)
    with layer_store(loaded.model, recipe.out, _resume_key(recipe) if step.resumes else None):
        return _prune_loaded(recipe, loaded, step, device, started, show_progress, note, argv)


def _too_large(recipe: PruneRecipe, step, device, note) -> bool:
    """Whether the model would not fit --max-memory (default: the RAM free now): then it is streamed,
    or, by a recipe that cannot stream, refused before anything is loaded."""
    from secateur.devices import free_memory
    from secateur.export.loading import loaded_size, locate_model

    limit = recipe.max_memory * 2**30 if recipe.max_memory is not None else free_memory()
    size = loaded_size(locate_model(recipe.model), recipe.dtype, device) if limit else None
    if size is None or size <= limit:
        return False
    need, have = size / 2**30, limit / 2**30
    refusal = step.cannot_stream(recipe)
    if refusal is not None:
        raise SecateurError(
            f"{recipe.model} takes {need:.1f} GiB in RAM and {have:.1f} GiB may be used (--max-memory), "
            f"and it cannot be streamed: {refusal}; or use more memory, or a larger --max-memory if "
            "swap or freed memory will cover it"
        )
    note(f"{recipe.model} takes {need:.1f} GiB, more than {have:.1f} GiB: streaming its layers (--stream)")
    return True


def _resume_key(recipe: PruneRecipe) -> str:
    """What a streamed run computes, for resuming it: the recipe without where or whether it
    writes, nor what it measures."""
    import json

    data = to_dict(recipe)
    for key in ("out", "overwrite", "evaluation"):
        data.pop(key, None)
    return json.dumps(data, sort_keys=True, default=str)


def _prune_loaded(recipe, loaded, step, device, started, show_progress, note, argv) -> PruneRun:
    if loaded.adapter.spec.remote_code and step.name != "masks":
        raise SecateurError(
            f"--method {recipe.prune.method} needs an architecture secateur knows; "
            f"{loaded.adapter.spec.model_type} comes with its own code: use magnitude, wanda or sparsegpt"
        )
    note(f"loaded {recipe.model} ({loaded.location}) in {time.perf_counter() - started:.1f}s")
    finished = loaded.adapter.stream.finished() if loaded.adapter.stream is not None else 0
    if finished:
        note(f"resuming: {finished} of {loaded.adapter.num_layers()} layers were pruned by an earlier run")
    evaluation = recipe.evaluation
    check_seqlen(loaded.adapter, recipe.calibration.seqlen)
    needs_windows = step.needs_activations(recipe)
    if world_size() > 1 and loaded.adapter.has_experts:
        raise SecateurError("mixture-of-experts models run in one process for now: launch without torchrun")
    # A distributed run draws the same windows everywhere and gives each process its share.
    windows = shard(calibration_windows(loaded.tokenizer, recipe.calibration)) if needs_windows else None
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
    if recipe.out is not None and is_main():  # every process holds the same weights: one writes
        out = save_checkpoint(
            loaded.model, loaded.tokenizer, recipe.out, manifest, recipe.overwrite, result.extra
        )
    barrier()  # the others wait until the output is there
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

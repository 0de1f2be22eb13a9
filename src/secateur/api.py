"""The Python API. Thin orchestration: every algorithm lives in its own package.

    import secateur
    loaded = secateur.load_model("smollm2-135m")
    calibration = secateur.CalibrationConfig(nsamples=32, seqlen=512)
    windows = secateur.calibration_windows(loaded.tokenizer, calibration)
    report = secateur.prune(loaded.model, secateur.PruneConfig(method="wanda", sparsity=0.5), windows)
    ppl = secateur.evaluate(loaded.model, loaded.tokenizer, dataset="lee", seqlen=512)

`run_prune(recipe)` is exactly what `secateur prune` does; the CLI only builds the recipe.
"""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

from secateur import __version__
from secateur.config import CalibrationConfig, PruneConfig, PruneRecipe, to_dict
from secateur.data.sources import resolve_source
from secateur.data.tokens import calibration_stream, eval_stream, eval_windows, sample_windows
from secateur.devices import resolve_device
from secateur.errors import SecateurError
from secateur.evaluation.perplexity import PerplexityResult, perplexity
from secateur.export.save import check_output_dir, save_checkpoint
from secateur.models.adapter import ModelAdapter
from secateur.models.loading import LoadedModel
from secateur.models.loading import load_model as _load_model
from secateur.pruning.masking import PruneReport, prune_with_masks
from secateur.registry import REGISTRY

__all__ = ["calibration_windows", "evaluate", "load_model", "prune", "run_prune", "save_pruned"]


def load_model(name: str, dtype: str = "auto", device: str | None = None) -> LoadedModel:
    """Embedded name, local folder or hub id -> LoadedModel(model, tokenizer, adapter, ...), on CPU."""
    return _load_model(name, dtype, resolve_device(device))


def _unwrap(model) -> torch.nn.Module:
    return model.model if isinstance(model, LoadedModel) else model


def check_seqlen(adapter: ModelAdapter, seqlen: int, flag: str = "--seqlen") -> None:
    limit = adapter.max_context()
    if limit is not None and seqlen > limit:
        raise SecateurError(
            f"{flag} {seqlen} is beyond the model's context of {limit} tokens: use {flag} {limit} or less"
        )


def calibration_windows(tokenizer, config: CalibrationConfig | None = None) -> torch.Tensor:
    """(nsamples, seqlen) int64 windows drawn at seeded random offsets of the dataset's train split."""
    config = config or CalibrationConfig()
    source = resolve_source(config.dataset)
    stream = calibration_stream(tokenizer, source, config.nsamples * config.seqlen, config.seed)
    return sample_windows(stream, config.nsamples, config.seqlen, config.seed, name=f"of {config.dataset!r}")


def prune(
    model,
    config: PruneConfig | None = None,
    calibration: torch.Tensor | None = None,
    *,
    show_progress: bool = True,
    verify: bool = True,
) -> PruneReport:
    """Prune `model` in place with masks (shapes kept). calibration: (nsamples, seqlen) int64 windows.

    Raises VerificationError if the result does not have the sparsity/structure asked for.
    """
    config = config or PruneConfig()
    adapter = ModelAdapter(_unwrap(model))
    if calibration is not None:
        check_seqlen(adapter, calibration.shape[1])
    return prune_with_masks(adapter, config, calibration, show_progress=show_progress, verify=verify)


def evaluate(
    model,
    tokenizer=None,
    *,
    dataset: str = "lee",
    seqlen: int = 2048,
    batch_size: int = 4,
    max_windows: int | None = None,
    device: str | None = None,
    show_progress: bool = True,
) -> PerplexityResult:
    """Perplexity on `dataset`'s test split (see secateur.evaluation.perplexity for the protocol)."""
    if isinstance(model, LoadedModel):
        tokenizer = tokenizer or model.tokenizer
    if tokenizer is None:
        raise SecateurError("evaluate() needs the model's tokenizer")
    adapter = ModelAdapter(_unwrap(model))
    check_seqlen(adapter, seqlen, "--eval-seqlen")
    windows = eval_windows(
        eval_stream(tokenizer, resolve_source(dataset)), seqlen, max_windows, f"of {dataset!r}"
    )
    target = resolve_device(device) if device else None
    return perplexity(
        adapter, windows, batch_size=batch_size, device=target, dataset=dataset, show_progress=show_progress
    )


def save_pruned(
    model, tokenizer, out: str | Path, manifest: dict | None = None, overwrite: bool = False
) -> Path:
    """Write a Hugging Face checkpoint plus secateur.json, atomically."""
    return save_checkpoint(_unwrap(model), tokenizer, out, manifest or {}, overwrite)


@dataclass
class PruneRun:
    """Everything `run_prune` produced; `manifest` is what secateur.json holds."""

    recipe: PruneRecipe
    report: PruneReport
    dense: PerplexityResult | None
    pruned: PerplexityResult | None
    out: Path | None
    manifest: dict = field(default_factory=dict)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def run_prune(
    recipe: PruneRecipe,
    *,
    show_progress: bool = True,
    note: Callable[[str], None] = _stderr,
    argv: list[str] | None = None,
) -> PruneRun:
    """Load, calibrate, (evaluate), prune, verify, (evaluate), save: what `secateur prune` does."""
    started = time.perf_counter()
    if recipe.out is not None:
        check_output_dir(recipe.out, recipe.overwrite)
    structured = recipe.prune.method == "structured"
    if recipe.prune.method == "depth":
        needs_activations = recipe.depth.layers is None
    elif recipe.prune.method == "osscar":
        needs_activations = True
    elif structured:
        needs_activations = recipe.structured.needs_activations or recipe.structured.needs_gradients
    else:
        needs_activations = REGISTRY.get("method", recipe.prune.method).needs_activations
    device = resolve_device(recipe.prune.device)

    loaded = load_model(recipe.model, recipe.dtype, recipe.prune.device)
    note(f"loaded {recipe.model} ({loaded.location}) in {time.perf_counter() - started:.1f}s")
    evaluation = recipe.evaluation
    check_seqlen(loaded.adapter, recipe.calibration.seqlen)
    windows = calibration_windows(loaded.tokenizer, recipe.calibration) if needs_activations else None
    eval_name = evaluation.dataset or recipe.calibration.dataset
    measure = perplexity_meter(
        loaded, evaluation, eval_name, recipe.calibration.seqlen, device, show_progress, note
    )

    dense = measure("dense") if evaluation.dense else None
    if recipe.prune.method == "depth":
        from secateur.structured.depth_recipe import prune_depth

        report, extra = prune_depth(loaded, recipe, windows, device, show_progress, note)
    elif recipe.prune.method == "osscar":
        from secateur.structured.osscar_recipe import prune_osscar

        report, extra = prune_osscar(loaded, recipe, windows, device, show_progress, note)
    elif structured:
        from secateur.structured.recipe import prune_structured

        report, extra = prune_structured(loaded, recipe, windows, device, show_progress, note)
    else:
        report = prune_with_masks(loaded.adapter, recipe.prune, windows, show_progress=show_progress)
        note(f"pruned in {report.timings['prune_s']:.1f}s; sparsity {report.sparsity.actual:.4f}")
        extra = tier_files(report, recipe)
    pruned = measure("pruned")

    manifest = build_manifest(recipe, loaded, report, dense, pruned, argv, time.perf_counter() - started)
    out = None
    if recipe.out is not None:
        out = save_checkpoint(loaded.model, loaded.tokenizer, recipe.out, manifest, recipe.overwrite, extra)
    return PruneRun(recipe, report, dense, pruned, out, manifest)


def tier_files(report: PruneReport, recipe: PruneRecipe) -> Callable[[Path], None] | None:
    """For --pattern tiered: a writer of tier_maps.safetensors and its heatmap, else None."""
    if not report.tier_maps:
        return None

    def write(folder: Path) -> None:
        from secateur.evaluation.tier_plot import plot_tier_maps
        from secateur.export.tier_maps import TIER_MAPS, save_tier_maps

        save_tier_maps(folder / TIER_MAPS, report.tier_maps, recipe.prune.pattern_object())
        plot_tier_maps(report.tier_maps, folder / "tier_maps.png", f"{recipe.model}: {report.pattern}")

    return write


def build_manifest(recipe, loaded, report, dense, pruned, argv, seconds) -> dict:
    """secateur.json: the recipe (replayable), versions, sparsity, perplexity, timings."""
    import transformers

    params = sum(p.numel() for p in loaded.model.parameters())  # after pruning
    return {
        "secateur_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": argv,
        "recipe": to_dict(recipe),
        "model": {
            "name": recipe.model,
            "location": loaded.location,
            "model_type": loaded.model.config.model_type,
            "parameters": params,
            "dtype": str(next(loaded.model.parameters()).dtype).replace("torch.", ""),
        },
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
        "prune": report.to_dict(),
        "perplexity": {
            "dense": dense.to_dict() if dense else None,
            "pruned": pruned.to_dict() if pruned else None,
        },
        "timings": {**report.timings, "total_s": seconds},
    }


@dataclass
class FinetuneRun:
    """What `run_finetune` produced."""

    recipe: object  # FinetuneRecipe
    result: object  # FinetuneResult
    before: PerplexityResult | None
    after: PerplexityResult | None
    out: Path | None
    manifest: dict = field(default_factory=dict)


def run_finetune(
    recipe,
    *,
    show_progress: bool = True,
    note: Callable[[str], None] = _stderr,
    argv: list[str] | None = None,
) -> FinetuneRun:
    """Load, (evaluate), fine-tune (masked: zeros stay zero, verified), (evaluate), save."""
    from secateur.recovery.finetune import finetune, is_main_process

    started = time.perf_counter()
    if recipe.out is not None:
        check_output_dir(recipe.out, recipe.overwrite)
    loaded = load_model(recipe.model, recipe.dtype)
    device = resolve_device(None)
    config = recipe.finetune
    dataset = config.dataset or "lee"
    check_seqlen(loaded.adapter, config.seqlen, "--train-seqlen")
    evaluation = recipe.evaluation
    measure = perplexity_meter(
        loaded, evaluation, evaluation.dataset or dataset, config.seqlen, device, show_progress, note
    )
    before = measure("before") if evaluation.dense else None
    result = finetune(
        loaded.model,
        loaded.tokenizer,
        config,
        dataset=dataset,
        validate=evaluation.enabled,
        work_dir=Path(recipe.out).expanduser().parent if recipe.out else None,
        show_progress=show_progress,
    )
    note(
        f"fine-tuned {result.steps} steps in {result.seconds:.1f}s; masked: {result.masked}; "
        f"{result.masked_weights:,} pruned weights held at zero"
    )
    after = measure("after")
    manifest = training_manifest("finetune", recipe, result, before, after, argv, started)
    out = None
    if recipe.out is not None and is_main_process():  # under `accelerate launch`, rank 0 writes
        out = save_checkpoint(loaded.model, loaded.tokenizer, recipe.out, manifest, recipe.overwrite)
    return FinetuneRun(recipe, result, before, after, out, manifest)


def training_manifest(kind: str, recipe, result, before, after, argv, started: float) -> dict:
    """secateur.json of a fine-tuning or recovery run: `<kind>_recipe` replays it, `<kind>` is its result."""
    return {
        "secateur_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": argv,
        f"{kind}_recipe": to_dict(recipe),
        kind: result.to_dict(),
        "perplexity": {
            "before": before.to_dict() if before else None,
            "after": after.to_dict() if after else None,
        },
        "timings": {"total_s": time.perf_counter() - started},
    }


def perplexity_meter(loaded, evaluation, dataset, default_seqlen, device, show_progress, note):
    """A function label -> PerplexityResult on the eval windows (or None when evaluation is off)."""
    if not evaluation.enabled:
        return lambda label: None
    seqlen = evaluation.seqlen or default_seqlen
    check_seqlen(loaded.adapter, seqlen, "--eval-seqlen")
    windows = eval_windows(
        eval_stream(loaded.tokenizer, resolve_source(dataset)), seqlen, evaluation.max_windows, dataset
    )

    def measure(label: str) -> PerplexityResult:
        result = perplexity(
            loaded.adapter,
            windows,
            batch_size=evaluation.batch_size,
            device=device,
            dataset=dataset,
            show_progress=show_progress,
        )
        note(f"perplexity ({label}) on {dataset}: {result.perplexity:.3f} ({result.seconds:.1f}s)")
        return result

    return measure

"""`secateur finetune`, as a function: load, (evaluate), fine-tune (masked: zeros stay zero,
verified), (evaluate), save."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from secateur.config import DEFAULT_DATASET
from secateur.devices import resolve_device
from secateur.distributed import init_from_environment, is_main
from secateur.evaluation.perplexity import PerplexityResult
from secateur.export.save import check_output_dir, save_checkpoint
from secateur.runs.session import check_seqlen, load_model, perplexity_meter, stderr, training_manifest


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
    note: Callable[[str], None] = stderr,
    argv: list[str] | None = None,
) -> FinetuneRun:
    """Load, (evaluate), fine-tune (masked: zeros stay zero, verified), (evaluate), save."""
    from secateur.recovery.finetune import finetune

    started = time.perf_counter()
    if recipe.out is not None:
        check_output_dir(recipe.out, recipe.overwrite)
    config = recipe.finetune
    # Under torchrun / accelerate launch: join the group now, so that perplexity shares out its
    # windows as training does (the Trainer's accelerate adopts the group).
    init_from_environment(resolve_device(config.device))
    loaded = load_model(recipe.model, recipe.dtype)
    device = resolve_device(None)
    dataset = config.dataset or DEFAULT_DATASET
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
    if recipe.out is not None and is_main():  # under `accelerate launch`, rank 0 writes
        out = save_checkpoint(loaded.model, loaded.tokenizer, recipe.out, manifest, recipe.overwrite)
    return FinetuneRun(recipe, result, before, after, out, manifest)

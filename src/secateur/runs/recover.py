"""`secateur recover`: load any secateur output, measure, train LoRA adapters, measure, write.

With --merge the result is a standalone checkpoint in the format of its input (plain, or with
per-layer widths for heterogeneous structured models) and pruned zeros are put back and verified;
without it, the adapter folder is written and `secateur eval --model ADAPTER_DIR` loads base + adapter.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from secateur.config import DEFAULT_DATASET
from secateur.evaluation.perplexity import PerplexityResult
from secateur.recovery.config import RecoverRecipe


@dataclass
class RecoverRun:
    recipe: RecoverRecipe
    result: object  # RecoverResult
    before: PerplexityResult | None
    after: PerplexityResult | None
    out: Path | None
    model: object  # the merged model, or the base model holding the adapters
    manifest: dict = field(default_factory=dict)


def run_recover(
    recipe: RecoverRecipe,
    *,
    show_progress: bool = True,
    note: Callable[[str], None] = print,
    argv: list[str] | None = None,
) -> RecoverRun:
    from secateur.devices import resolve_device
    from secateur.distributed import init_from_environment, is_main
    from secateur.export.adapters import base_reference, save_adapter
    from secateur.export.save import check_output_dir, save_checkpoint
    from secateur.recovery.lora import merge_keeping_masks, recover
    from secateur.runs.session import check_seqlen, load_model, perplexity_meter, training_manifest

    started = time.perf_counter()
    if recipe.out is not None:
        check_output_dir(recipe.out, recipe.overwrite)
    training = recipe.finetune
    init_from_environment(resolve_device(training.device))  # under torchrun / accelerate launch
    loaded = load_model(recipe.model, recipe.dtype)
    check_seqlen(loaded.adapter, training.seqlen, "--train-seqlen")
    data = training.dataset or DEFAULT_DATASET
    evaluation = recipe.evaluation
    eval_data = evaluation.dataset or (DEFAULT_DATASET if data.endswith((".json", ".jsonl")) else data)
    measure = perplexity_meter(
        loaded, evaluation, eval_data, training.seqlen, resolve_device(None), show_progress, note
    )
    before = measure("before") if evaluation.dense else None
    wrapped, masks, result = recover(
        loaded.model,
        loaded.tokenizer,
        recipe.lora,
        training,
        validate=evaluation.enabled,
        work_dir=Path(recipe.out).expanduser().parent if recipe.out else None,
        show_progress=show_progress,
    )
    note(
        f"LoRA: {result.trainable_params:,} trainable parameters, {result.training.steps} steps "
        f"in {result.training.seconds:.1f}s on {result.data_kind} ({data})"
    )
    model = merge_keeping_masks(wrapped, masks) if recipe.lora.merge else loaded.model
    after = measure("after, merged" if recipe.lora.merge else "after, base + adapter")
    manifest = training_manifest("recover", recipe, result, before, after, argv, started)
    out = None
    if recipe.out is not None and is_main():  # under `accelerate launch`, rank 0 writes
        if recipe.lora.merge:
            out = save_checkpoint(model, loaded.tokenizer, recipe.out, manifest, recipe.overwrite)
        else:
            base = base_reference(recipe.model)
            out = save_adapter(wrapped, loaded.tokenizer, recipe.out, base, manifest, recipe.overwrite)
    return RecoverRun(recipe, result, before, after, out, model, manifest)

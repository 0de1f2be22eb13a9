"""`secateur bench`, as a function: load the model (and its dense original), measure prefill and
decode speed for every shape, on dense and where possible 2:4 semi-structured kernels."""

from __future__ import annotations

import gc
from collections.abc import Callable

import torch

from secateur.devices import resolve_device
from secateur.errors import SecateurError
from secateur.evaluation import sparse_kernels
from secateur.evaluation.bench import BenchResult, ModelFacts, dense_original, speedups
from secateur.evaluation.bench_config import BenchRecipe
from secateur.evaluation.speed import SpeedRow, checkpoint_bytes, measure_speed
from secateur.models.geometry import count_parameters
from secateur.runs.session import check_seqlen, load_model


def _measure_model(label, name, recipe, device, note) -> tuple[ModelFacts, list[SpeedRow]]:
    loaded = load_model(name, recipe.dtype, str(device))
    model = loaded.model.to(device)
    check_seqlen(loaded.adapter, max(recipe.lengths()) + recipe.new_tokens, "--prompt-lens + --new-tokens")
    parameters = count_parameters(model)
    rows = []

    def sweep(kernels: str) -> None:
        for batch in recipe.batches():
            for length in recipe.lengths():
                note(f"bench {label} ({kernels}): batch {batch} x {length} tokens + {recipe.new_tokens} new")
                rows.append(
                    measure_speed(
                        model,
                        label=label,
                        device=device,
                        batch_size=batch,
                        prompt_len=length,
                        new_tokens=recipe.new_tokens,
                        warmup=recipe.warmup,
                        runs=recipe.runs,
                        kernels=kernels,
                    )
                )

    sweep("dense")
    candidates = sparse_kernels.two_four_linears(model)
    if not candidates:
        status = "not a 2:4 model"
    elif not recipe.sparse_kernels:
        status = "off (--no-sparse-kernels)"
    else:
        reason = sparse_kernels.unavailable_reason(device, next(model.parameters()).dtype)
        if reason is None:
            swapped = sparse_kernels.to_semi_structured(model)
            status = f"{swapped} Linears on semi-structured kernels"
            sweep("2:4 semi-structured")
        else:
            status = f"{len(candidates)} Linears are 2:4 but not measured: {reason}"
    return ModelFacts(label, name, parameters, checkpoint_bytes(loaded.location), status), rows


def run_bench(recipe: BenchRecipe, note: Callable[[str], None] = print) -> BenchResult:
    if recipe.engine != "transformers":  # llama.cpp or vLLM, in their own Pythons
        from secateur.runs.bench_engine import run_engine_bench

        return run_engine_bench(recipe, note)
    device = resolve_device(recipe.device)
    baseline = recipe.baseline if recipe.baseline is not None else dense_original(recipe.model)
    if baseline is not None and baseline.lower() == "none":
        baseline = None
    models, rows = [], []
    for label, name in (("model", recipe.model), ("baseline", baseline)):
        if name is None:
            continue
        facts, measured = _measure_model(label, name, recipe, device, note)
        gc.collect()  # the model just measured is unreachable now: free it before loading the next
        if device.type == "cuda":
            torch.cuda.empty_cache()
        models.append(facts)
        rows += measured
    if not rows:
        raise SecateurError("nothing was measured")
    return BenchResult(str(device), models, rows, speedups(rows))

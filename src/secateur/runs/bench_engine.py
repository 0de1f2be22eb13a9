"""`secateur bench --engine llamacpp|vllm`: the model and its dense original measured in a serving
engine, shown in the same table as the transformers bench.

Each model is first put in the form the engine reads: llama.cpp gets a GGUF (written here, f32 or
f16, unless a .gguf file is given); vLLM gets the folder as it is, or its nemotron-nas export when
its widths differ per layer, or the merged model when it is a LoRA adapter. The engine runs in its
own Python (secateur.engines.driver); its speeds become SpeedRows: llama.cpp's own timers (one
sequence: batch 1 only), vLLM's wall clock per batch.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from secateur.engines.driver import engine_python, run_worker
from secateur.errors import SecateurError
from secateur.evaluation.bench import BenchResult, ModelFacts, dense_original, speedups
from secateur.evaluation.bench_config import BenchRecipe
from secateur.evaluation.speed import SpeedRow, Timing, checkpoint_bytes
from secateur.export.adapters import is_adapter_folder
from secateur.export.loading import locate_model
from secateur.export.structured import is_heterogeneous
from secateur.runs.session import load_model

ENGINE_NAMES = {"llamacpp": "llama.cpp", "vllm": "vLLM"}


def _served(name: str, label: str, recipe: BenchRecipe, work: Path, note) -> tuple[str, int]:
    """(what the engine loads, parameter count) for model `name`."""
    if recipe.engine == "llamacpp" and str(name).endswith(".gguf"):
        import gguf

        return name, sum(int(t.n_elements) for t in gguf.GGUFReader(name).tensors)
    location = locate_model(name)
    needs_export = recipe.engine == "llamacpp" or is_heterogeneous(location) or is_adapter_folder(location)
    if not needs_export:
        return location, _safetensors_parameters(Path(location))
    dtype = "float32" if recipe.engine == "llamacpp" else "auto"
    loaded = load_model(name, dtype, "cpu")
    parameters = sum(p.numel() for p in loaded.model.parameters())
    if recipe.engine == "llamacpp":
        from secateur.export.gguf import write_gguf

        target = work / f"{label}.gguf"
        outtype = "f16" if recipe.dtype == "float16" else "f32"
        note(f"bench: writing {name} as {outtype} GGUF for llama.cpp")
        write_gguf(loaded.model, loaded.tokenizer, target, outtype)
    elif is_heterogeneous(location):
        from secateur.export.nemotron_nas import write_nemotron_nas

        target = work / f"{label}-nemotron-nas"
        note(f"bench: writing {name} as nemotron-nas for vLLM (per-layer widths)")
        write_nemotron_nas(loaded.model, loaded.tokenizer, target)
    else:  # a LoRA adapter folder: the merged model
        from secateur.export.save import save_checkpoint

        target = work / f"{label}-merged"
        save_checkpoint(loaded.model, loaded.tokenizer, target, {}, False)
    return str(target), parameters


def _safetensors_parameters(folder: Path) -> int:
    from safetensors import safe_open

    total = 0
    for file in folder.glob("*.safetensors"):
        with safe_open(str(file), "pt") as handle:
            for key in handle.keys():  # noqa: SIM118 (safe_open has no __iter__)
                shape = handle.get_slice(key).get_shape()
                count = 1
                for size in shape:
                    count *= size
                total += count
    return total


def _row(label: str, recipe: BenchRecipe, batch: int, length: int, speed: dict) -> SpeedRow:
    runs = speed["runs"]
    prefill = [batch * length / r["prompt_tokens_per_s"] for r in runs]
    decode = [batch / r["decode_tokens_per_s"] for r in runs if r["decode_tokens_per_s"]] or [0.0]
    return SpeedRow(
        model=label,
        device=f"cpu ({ENGINE_NAMES[recipe.engine]})",
        dtype=_engine_dtype(recipe),
        kernels=ENGINE_NAMES[recipe.engine],
        batch_size=batch,
        prompt_len=length,
        new_tokens=recipe.new_tokens,
        prefill_s=Timing.of(prefill),
        decode_token_s=Timing.of(decode),
        prefill_tokens_per_s=speed["prompt_tokens_per_s"],
        decode_tokens_per_s=speed["decode_tokens_per_s"],
        peak_memory_mb=float("nan"),  # the engine's process, not measured here
    )


def _engine_dtype(recipe: BenchRecipe) -> str:
    if recipe.engine == "llamacpp":
        return "f16" if recipe.dtype == "float16" else "f32"
    return "float32" if recipe.dtype == "auto" else recipe.dtype  # vLLM on a CPU: fp32 by default


def run_engine_bench(recipe: BenchRecipe, note: Callable[[str], None] = print) -> BenchResult:
    python = engine_python(recipe.engine, recipe.engine_python)  # a missing engine fails first
    batches = recipe.batches()
    if recipe.engine == "llamacpp":
        if any(b > 1 for b in batches):
            note("bench: llama.cpp is measured on one sequence (batch 1); other batch sizes are skipped")
        batches = (1,)
    baseline = recipe.baseline if recipe.baseline is not None else dense_original(recipe.model)
    if baseline is not None and baseline.lower() == "none":
        baseline = None
    models, rows = [], []
    with tempfile.TemporaryDirectory(prefix="secateur-bench-") as scratch:
        for label, name in (("model", recipe.model), ("baseline", baseline)):
            if name is None:
                continue
            served, parameters = _served(name, label, recipe, Path(scratch), note)
            for batch in batches:
                for length in recipe.lengths():
                    note(f"bench {label} in {ENGINE_NAMES[recipe.engine]}: batch {batch} x {length} tokens")
                    speed = {"prompt_tokens": length, "new_tokens": recipe.new_tokens, "runs": recipe.runs}
                    request = {"model": served, "threads": os.cpu_count(), "speed": {**speed, "batch": batch}}
                    if recipe.engine == "vllm":
                        request.update(trust_remote_code=True, max_model_len=length + recipe.new_tokens + 8,
                                       dtype=_engine_dtype(recipe))  # fmt: skip
                    answer = run_worker(recipe.engine, request, python)
                    rows.append(_row(label, recipe, batch, length, answer["speed"]))
            size = checkpoint_bytes(served) if Path(served).is_dir() else Path(served).stat().st_size
            models.append(ModelFacts(label, name, parameters, size, f"- ({ENGINE_NAMES[recipe.engine]})"))
    if not rows:
        raise SecateurError("nothing was measured")
    return BenchResult(f"cpu via {ENGINE_NAMES[recipe.engine]}", models, rows, speedups(rows))

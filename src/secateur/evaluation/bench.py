"""`secateur bench`: a model and its dense original, measured the same way on the same device.

Each model is loaded, moved to the device, measured for every (batch size, prompt length) and freed
before the next, so peak memory is never shared. A 2:4 model on CUDA is measured twice: dense
kernels, then with semi-structured sparse kernels; where those cannot run, the reason is recorded.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from secateur.errors import SecateurError
from secateur.evaluation.bench_config import BenchRecipe
from secateur.evaluation.speed import SpeedRow, checkpoint_bytes, measure_speed
from secateur.export.save import MANIFEST


@dataclass
class ModelFacts:
    label: str
    name: str
    parameters: int
    checkpoint_bytes: int | None
    sparse_kernels: str  # what happened with 2:4 kernels


@dataclass
class BenchResult:
    device: str
    models: list[ModelFacts]
    rows: list[SpeedRow]
    speedups: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "device": self.device,
            "models": [vars(m) for m in self.models],
            "rows": [r.to_dict() for r in self.rows],
            "speedups": self.speedups,
        }


def dense_original(model: str) -> str | None:
    """The model a secateur output was made from, by its manifest (None when unknown)."""
    manifest = Path(model).expanduser() / MANIFEST
    if not manifest.is_file():
        return None
    data = json.loads(manifest.read_text())
    for key in ("recipe", "finetune_recipe", "recover_recipe"):
        if isinstance(data.get(key), dict) and data[key].get("model"):
            return str(data[key]["model"])
    return None


def _measure_model(label, name, recipe, device, note) -> tuple[ModelFacts, list[SpeedRow]]:
    from secateur.evaluation import sparse_kernels
    from secateur.runs.session import check_seqlen, load_model

    loaded = load_model(name, recipe.dtype, str(device))
    model = loaded.model.to(device)
    check_seqlen(loaded.adapter, max(recipe.lengths()) + recipe.new_tokens, "--prompt-lens + --new-tokens")
    parameters = sum(p.numel() for p in model.parameters())
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


def speedups(rows: list[SpeedRow]) -> list[dict]:
    """Baseline median / model median, per shape and kernel kind (above 1: faster than dense)."""
    base = {(r.batch_size, r.prompt_len): r for r in rows if r.model == "baseline"}
    out = []
    for row in rows:
        ref = base.get((row.batch_size, row.prompt_len))
        if row.model == "baseline" or ref is None:
            continue
        out.append(
            {
                "kernels": row.kernels,
                "batch_size": row.batch_size,
                "prompt_len": row.prompt_len,
                "prefill": ref.prefill_s.median / row.prefill_s.median,
                "decode": ref.decode_token_s.median / row.decode_token_s.median if row.new_tokens else None,
            }
        )
    return out


def run_bench(recipe: BenchRecipe, note: Callable[[str], None] = print) -> BenchResult:
    from secateur.devices import resolve_device

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

"""`secateur compare`: several recipes on one model, one calibration set, one dense baseline.

The model is loaded once; its decoder Linears are snapshotted in CPU RAM and restored before each
mask recipe, so every recipe starts from the same dense weights. A shape-changing recipe
(structured, depth, OSSCAR) runs its registered step on a copy of the dense model, and its row also
says how many parameters went and how much faster prefill and decode are than dense (same shapes,
same device, median of runs). `--models` adds rows for outputs pruned before, measured the same way.
Shared across recipes: the calibration windows, the tokenized evaluation windows, the dense
perplexity, and what depends only on the dense model and those windows (OWL's outlier ratios).
Per-layer pruning statistics beyond the first layer cannot be shared exactly: each recipe's pruned
layers change what the next layers see.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from secateur.comparison.outputs import write_outputs
from secateur.comparison.recipes import Recipe
from secateur.comparison.result import CompareResult, CompareRow
from secateur.config import CalibrationConfig, EvalConfig, PruneRecipe
from secateur.devices import resolve_device
from secateur.errors import SecateurError
from secateur.evaluation.perplexity import PerplexityResult
from secateur.evaluation.speed import measure_speed
from secateur.export.loading import LoadedModel
from secateur.export.save import check_output_dir
from secateur.methods.base import prune_step
from secateur.models.adapter import ModelAdapter
from secateur.models.geometry import count_parameters
from secateur.pruning.masking import prune_with_masks
from secateur.runs.session import calibration_windows, check_seqlen, load_model, perplexity_meter

SPEED_SHAPE = {"batch_size": 1, "prompt_len": 128, "new_tokens": 16, "warmup": 1, "runs": 3}


class WeightSnapshot:
    """CPU copies of every decoder Linear's weight, to put the dense model back between recipes."""

    def __init__(self, adapter: ModelAdapter) -> None:
        self.pairs = [
            (linear, linear.weight.detach().to("cpu", copy=True))
            for layer in adapter.decoder_layers()
            for linear in adapter.linears(layer).values()
        ]

    @torch.no_grad()
    def restore(self) -> None:
        for linear, saved in self.pairs:
            linear.weight.copy_(saved)


def _manifest_method(location: str) -> str:
    """The method a secateur output was made with (its secateur.json), else '-'."""
    import json

    manifest = Path(location) / "secateur.json"
    if not manifest.is_file():
        return "-"
    data = json.loads(manifest.read_text())
    recipe = data.get("recipe") or {}
    return str((recipe.get("prune") or {}).get("method", "-"))


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


class _Speed:
    """Prefill and decode time of a model on the compare's fixed shape, against dense (measured once)."""

    def __init__(self, dense, device: torch.device) -> None:
        self.dense_model, self.device, self._dense = dense, device, None

    def _time(self, model):
        row = measure_speed(model, label="", device=self.device, **SPEED_SHAPE)
        return row.prefill_s.median, row.decode_token_s.median

    def speedups(self, model) -> tuple[float, float]:
        if self._dense is None:
            self._dense = self._time(self.dense_model)
        prefill, decode = self._time(model)
        return self._dense[0] / prefill, self._dense[1] / decode


def _shape_row(name, method, pattern, model, ppl, prune_s, dense_params, speed: _Speed) -> CompareRow:
    parameters = count_parameters(model)
    prefill, decode = speed.speedups(model)
    return CompareRow(
        name, method, pattern, 0.0, 0.0, ppl, prune_s,
        parameters=parameters, params_removed=1 - parameters / dense_params,
        prefill_speedup=prefill, decode_speedup=decode,
    )  # fmt: skip


def run_compare(
    model: str,
    recipes: list[Recipe],
    calibration: CalibrationConfig,
    evaluation: EvalConfig,
    *,
    dtype: str = "auto",
    out: str | None = None,
    overwrite: bool = False,
    show_progress: bool = True,
    note: Callable[[str], None] = _stderr,
    models: tuple[str, ...] = (),
) -> CompareResult:
    if out is not None:
        check_output_dir(out, overwrite)
    if not recipes and not models:
        raise SecateurError("compare needs --recipes, --models, or both")
    device = resolve_device(recipes[0].config.device if recipes else None)
    loaded = load_model(model, dtype, recipes[0].config.device if recipes else None)
    if not evaluation.enabled:
        raise SecateurError("compare tabulates perplexity: evaluation cannot be turned off here")
    eval_seqlen = evaluation.seqlen or calibration.seqlen
    check_seqlen(loaded.adapter, calibration.seqlen)
    windows = calibration_windows(loaded.tokenizer, calibration)
    eval_name = evaluation.dataset or calibration.dataset
    # The table's rows say what each recipe gave; the meter's own line per measurement is not needed.
    meter = perplexity_meter(
        loaded, evaluation, eval_name, calibration.seqlen, device, show_progress, lambda message: None
    )

    def measure() -> PerplexityResult:
        return meter("")

    dense = measure()
    note(f"dense perplexity on {eval_name}: {dense.perplexity:.3f}")
    dense_params = count_parameters(loaded.model)
    result = CompareResult(
        model, calibration, {"dataset": eval_name, "seqlen": eval_seqlen, "windows": dense.windows}, dense,
        dense_parameters=dense_params,
    )  # fmt: skip
    speed = _Speed(loaded.model, device)

    def measure_other(other: LoadedModel) -> float:
        return perplexity_meter(
            other, evaluation, eval_name, calibration.seqlen, device, show_progress, lambda message: None
        )("").perplexity

    snapshot, shared = WeightSnapshot(loaded.adapter), {}
    for recipe in recipes:
        snapshot.restore()  # the dense weights again, whatever the previous recipe did
        if recipe.changes_shapes:  # on a copy: the dense model stays as it is for the next recipe
            import copy

            work = copy.deepcopy(loaded.model)
            other = LoadedModel(work, loaded.tokenizer, ModelAdapter(work), loaded.name, loaded.location)
            prune_recipe = PruneRecipe(model=model, calibration=calibration, prune=recipe.config,
                                       **dict(recipe.sections))  # fmt: skip
            step = prune_step(recipe.config.method)
            started = time.perf_counter()
            step.run(other, prune_recipe, windows, device, show_progress, lambda message: None)
            prune_s = time.perf_counter() - started
            ppl = measure_other(other)
            row = _shape_row(recipe.name, step.name, "-", work, ppl, prune_s, dense_params, speed)
            note(f"{recipe.name}: {row.params_removed:.2%} of parameters removed, perplexity {ppl:.3f}")
            result.rows.append(row)
            del work, other
            continue
        started = time.perf_counter()
        report = prune_with_masks(
            loaded.adapter, recipe.config, windows, show_progress=show_progress, shared=shared
        )
        prune_s = time.perf_counter() - started
        ppl = measure()
        note(f"{recipe.name}: sparsity {report.sparsity.actual:.4f}, perplexity {ppl.perplexity:.3f}")
        result.rows.append(
            CompareRow(
                recipe.name,
                report.method,
                report.pattern,
                report.target_sparsity,
                report.sparsity.actual,
                ppl.perplexity,
                prune_s,
                recipe.config.owl,
                parameters=dense_params,
            )
        )
    snapshot.restore()
    for folder in models:  # outputs pruned before: measured on the same windows, no pruning here
        other = load_model(folder, dtype, recipes[0].config.device if recipes else None)
        ppl = measure_other(other)
        method = _manifest_method(other.location)
        row = _shape_row(Path(folder).name, method, "-", other.model, ppl, 0.0, dense_params, speed)
        note(f"{folder}: {row.params_removed:.2%} of parameters removed, perplexity {ppl:.3f}")
        result.rows.append(row)
    if out is not None:
        write_outputs(result, out, overwrite)
    return result

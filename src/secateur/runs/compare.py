"""`secateur compare`: several recipes on one model, one calibration set, one dense baseline.

The model is loaded once; its decoder Linears are snapshotted in CPU RAM and restored before each
recipe, so every recipe starts from the same dense weights. Shared across recipes: the calibration
windows, the tokenized evaluation windows, the dense perplexity, and what depends only on the dense
model and those windows (OWL's outlier ratios). Per-layer pruning statistics beyond the first
layer cannot be shared exactly: each recipe's pruned layers change what the next layers see.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import torch

from secateur.comparison.outputs import write_outputs
from secateur.comparison.recipes import Recipe
from secateur.comparison.result import CompareResult, CompareRow
from secateur.config import CalibrationConfig, EvalConfig
from secateur.devices import resolve_device
from secateur.errors import SecateurError
from secateur.evaluation.perplexity import PerplexityResult
from secateur.export.save import check_output_dir
from secateur.models.adapter import ModelAdapter
from secateur.pruning.masking import prune_with_masks
from secateur.runs.session import calibration_windows, check_seqlen, load_model, perplexity_meter


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


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


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
) -> CompareResult:
    if out is not None:
        check_output_dir(out, overwrite)
    device = resolve_device(recipes[0].config.device)
    loaded = load_model(model, dtype, recipes[0].config.device)
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
    result = CompareResult(
        model, calibration, {"dataset": eval_name, "seqlen": eval_seqlen, "windows": dense.windows}, dense
    )
    snapshot, shared = WeightSnapshot(loaded.adapter), {}
    for recipe in recipes:
        snapshot.restore()
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
            )
        )
    snapshot.restore()
    if out is not None:
        write_outputs(result, out, overwrite)
    return result

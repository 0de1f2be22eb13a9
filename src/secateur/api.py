"""The Python API: the face of secateur. It re-exports the runs and adds the in-memory helpers.

    import secateur
    loaded = secateur.load_model("smollm2-135m")
    calibration = secateur.CalibrationConfig(nsamples=32, seqlen=512)
    windows = secateur.calibration_windows(loaded.tokenizer, calibration)
    report = secateur.prune(loaded.model, secateur.PruneConfig(method="wanda", sparsity=0.5), windows)
    ppl = secateur.evaluate(loaded.model, loaded.tokenizer, dataset="lee", seqlen=512)

`run_prune(recipe)` is exactly what `secateur prune` does; the CLI only builds the recipe. Nothing
inside secateur imports this module: it is for users.
"""

from __future__ import annotations

from pathlib import Path

import torch

from secateur.config import DEFAULT_DATASET, PruneConfig
from secateur.data.sources import resolve_source
from secateur.data.tokens import eval_stream, eval_windows
from secateur.devices import resolve_device
from secateur.errors import SecateurError
from secateur.evaluation.perplexity import PerplexityResult, perplexity
from secateur.export.loading import LoadedModel
from secateur.export.save import save_checkpoint
from secateur.models.adapter import ModelAdapter
from secateur.pruning.masking import PruneReport, prune_with_masks
from secateur.runs.finetune import FinetuneRun, run_finetune
from secateur.runs.prune import PruneRun, run_prune
from secateur.runs.session import calibration_windows, check_seqlen, load_model

__all__ = [
    "FinetuneRun",
    "PruneRun",
    "calibration_windows",
    "evaluate",
    "load_model",
    "prune",
    "run_finetune",
    "run_prune",
    "save_pruned",
]


def _unwrap(model) -> torch.nn.Module:
    return model.model if isinstance(model, LoadedModel) else model


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
    dataset: str = DEFAULT_DATASET,
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

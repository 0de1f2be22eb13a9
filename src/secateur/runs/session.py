"""What every run does first and last: load the model, check the context, draw the calibration
windows, measure perplexity, head the manifest. The runs (`secateur.runs.*`) and the commands below
the face use these; `secateur.api` re-exports them.
"""

from __future__ import annotations

import platform
import sys
import time
from datetime import datetime, timezone

import torch

from secateur import __version__
from secateur.config import CalibrationConfig, to_dict
from secateur.data.sources import resolve_source
from secateur.data.tokens import calibration_stream, eval_stream, eval_windows, sample_windows
from secateur.devices import resolve_device
from secateur.errors import SecateurError
from secateur.evaluation.perplexity import PerplexityResult, perplexity
from secateur.export.loading import LoadedModel
from secateur.export.loading import load_model as _load_model
from secateur.models.adapter import ModelAdapter


def load_model(
    name: str,
    dtype: str = "auto",
    device: str | None = None,
    trust_remote_code: bool = False,
    stream: bool = False,
) -> LoadedModel:
    """Embedded name, local folder or hub id -> LoadedModel(model, tokenizer, adapter, ...), on CPU
    (with `stream`, its decoder layers stay on disk until their turn)."""
    return _load_model(name, dtype, resolve_device(device), trust_remote_code, stream)


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


def stderr(message: str) -> None:
    print(message, file=sys.stderr)


def manifest_header(argv: list[str] | None) -> dict:
    """The first keys of every secateur.json: version, time, command line, library versions."""
    import transformers

    return {
        "secateur_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": argv,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
    }


def training_manifest(kind: str, recipe, result, before, after, argv, started: float) -> dict:
    """secateur.json of a fine-tuning or recovery run: `<kind>_recipe` replays it, `<kind>` is its result."""
    return {
        **manifest_header(argv),
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

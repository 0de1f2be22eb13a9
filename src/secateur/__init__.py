"""secateur: prune Hugging Face causal language models.

The public API is loaded lazily so that `import secateur` (and `secateur --help`) stays fast:
torch and transformers are imported only when a function that needs them is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> module that defines it; resolved on first attribute access (PEP 562).
_LAZY = {
    "prune": "secateur.api",
    "evaluate": "secateur.api",
    "load_model": "secateur.api",
    "calibration_windows": "secateur.api",
    "run_prune": "secateur.api",
    "save_pruned": "secateur.api",
    "run_compare": "secateur.runs.compare",
    "run_finetune": "secateur.api",
    "load_pruned": "secateur.export.structured",
    "StructuredConfig": "secateur.config",
    "finetune": "secateur.recovery.finetune",
    "run_progressive": "secateur.runs.progressive",
    "FinetuneConfig": "secateur.recovery.config",
    "FinetuneRecipe": "secateur.recovery.config",
    "ProgressiveRecipe": "secateur.recovery.config",
    "parse_recipe": "secateur.comparison.recipes",
    "PruneConfig": "secateur.config",
    "CalibrationConfig": "secateur.config",
    "EvalConfig": "secateur.config",
    "PruneRecipe": "secateur.config",
    "SecateurError": "secateur.errors",
    "recover": "secateur.recovery.lora",
    "merge_keeping_masks": "secateur.recovery.lora",
    "run_recover": "secateur.runs.recover",
    "LoraConfig": "secateur.recovery.config",
    "LoraTrainingConfig": "secateur.recovery.config",
    "RecoverRecipe": "secateur.recovery.config",
    "zero_shot": "secateur.evaluation.zeroshot",
    "run_bench": "secateur.runs.bench",
    "BenchRecipe": "secateur.evaluation.bench_config",
    "measure_speed": "secateur.evaluation.speed",
    "write_report": "secateur.evaluation.report_md",
}

__all__ = ["__version__", *sorted(_LAZY)]

if TYPE_CHECKING:  # pragma: no cover
    from secateur.api import (  # noqa: F401
        calibration_windows,
        evaluate,
        load_model,
        prune,
        run_finetune,
        run_prune,
        save_pruned,
    )
    from secateur.comparison.recipes import parse_recipe  # noqa: F401
    from secateur.config import (  # noqa: F401
        CalibrationConfig,
        EvalConfig,
        PruneConfig,
        PruneRecipe,
        StructuredConfig,
    )
    from secateur.errors import SecateurError  # noqa: F401
    from secateur.export.structured import load_pruned  # noqa: F401
    from secateur.recovery.config import FinetuneConfig, FinetuneRecipe, ProgressiveRecipe  # noqa: F401
    from secateur.recovery.finetune import finetune  # noqa: F401
    from secateur.runs.compare import run_compare  # noqa: F401
    from secateur.runs.progressive import run_progressive  # noqa: F401


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'secateur' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)

"""One kind for every pruning method: a `PruneStep` in the registry under kind "step".

A step says which recipe fields it reads (every other field must keep its default: see
`secateur.unused_options`), whether it needs calibration activations, how it runs on a loaded model,
and how its summary reads. `secateur prune` and `secateur.run_prune` only look the step up: adding a
method is one module with one registration (listed in `secateur.registry`).

The mask methods (magnitude, wanda, sparsegpt and any registered "method" scorer) share one step,
"masks": their scorers are the pluggable part there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from secateur.unused_options import step_for

# Fields every method reads.
COMMON = frozenset({"prune.method", "prune.device", "prune.batch_size"})


class Report(Protocol):
    """What a step's report gives the run: timings (prune_s at least) and the manifest's "prune" entry."""

    timings: dict[str, float]

    def to_dict(self) -> dict: ...


@dataclass(frozen=True)
class StepResult:
    report: Report
    extra: Callable[[Path], None] | None = None  # writes files beside the checkpoint before the rename


def _no_check(config: Any) -> None:
    return None


def _streams(recipe: Any) -> str | None:
    return None


@dataclass(frozen=True)
class PruneStep:
    name: str
    reads: frozenset[str]  # "section.field" or "section.*", beyond COMMON
    needs_activations: Callable[[Any], bool]  # recipe -> bool
    run: Callable[..., StepResult]  # (loaded, recipe, windows, device, show_progress, note)
    summary: Callable[[Any], str]  # PruneRun -> the table `secateur prune` prints
    check_prune: Callable[[Any], None] = _no_check  # PruneConfig -> None: rules between its fields
    check: Callable[[Any], None] = _no_check  # PruneRecipe -> None: rules between fields of the recipe
    sized_by: str = ""  # the flag(s) that size this method, named when another size flag is refused
    # recipe -> None when the run can leave the layers on disk (--stream), else why it cannot
    cannot_stream: Callable[[Any], str | None] = _streams
    # Whether a killed streamed run resumes after its last finished layer: only if the finished
    # layers keep their shapes (a shrunk layer on disk no longer fits the model built from config).
    resumes: bool = False

    def reads_field(self, section: str, name: str) -> bool:
        key = f"{section}.{name}"
        return key in COMMON or key in self.reads or f"{section}.*" in self.reads


def prune_step(method: str) -> PruneStep:
    """The step of `--method` (a registered step, or the mask step for a registered mask method)."""
    return step_for(method)

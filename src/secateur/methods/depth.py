"""`secateur prune --method depth`: score windows of layers (or take --layers), remove them, report."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import torch

from secateur.evaluation.summary import format_table, percent
from secateur.methods.base import PruneStep, StepResult
from secateur.methods.outcome import outcome_rows
from secateur.models.geometry import count_parameters
from secateur.registry import register
from secateur.structured.depth import check_window, parse_layer_list, remove_layers, window_scores


class DepthReport:
    def __init__(
        self,
        removed: list[int],
        scores: dict[int, float],
        score: str,
        before: int,
        after: int,
        seconds: float,
    ):
        self.removed, self.scores, self.score = removed, scores, score
        self.params_before, self.params_after = before, after
        self.timings = {"prune_s": seconds}

    def to_dict(self) -> dict:
        return {
            "method": "depth",
            "removed_layers": self.removed,
            "score": self.score if self.scores else "given",
            "window_scores": {str(k): v for k, v in self.scores.items()},
            "params_before": self.params_before,
            "params_after": self.params_after,
            "ratio_of_total": 1 - self.params_after / self.params_before,
        }


def prune_depth(
    loaded, recipe, windows, device: torch.device, show_progress: bool, note: Callable[[str], None]
):
    """Remove layers from `loaded.model`; returns (report, writer of depth_analysis.json)."""
    started = time.perf_counter()
    adapter, config = loaded.adapter, recipe.depth
    count = adapter.num_layers()
    before = count_parameters(loaded.model)
    scores: dict[int, float] = {}
    if config.layers is not None:
        remove = parse_layer_list(config.layers, count)
    else:
        check_window(config.num_layers, count)
        scores = window_scores(
            adapter, windows, config.num_layers, config.score, device=device,
            batch_size=recipe.prune.batch_size, show_progress=show_progress,
        )  # fmt: skip
        best = min(scores, key=lambda start: (scores[start], start))
        remove = list(range(best, best + config.num_layers))
    remove_layers(adapter, remove)
    report = DepthReport(
        remove, scores, config.score, before, count_parameters(loaded.model), time.perf_counter() - started
    )
    note(
        f"depth: removed layers {remove} ({count} -> {adapter.num_layers()} layers, "
        f"{before:,} -> {report.params_after:,} parameters)"
    )

    def write(folder: Path) -> None:
        (folder / "depth_analysis.json").write_text(json.dumps(report.to_dict(), indent=1) + "\n")

    return StepResult(report, write)


def check(recipe) -> None:
    from secateur.errors import SecateurError
    from secateur.unused_options import changed_fields, refuse

    config = recipe.depth
    if (config.num_layers is None) == (config.layers is None):
        raise SecateurError(
            "--method depth needs exactly one of --num-layers N (best window) or --layers 11-13 (given)"
        )
    if config.layers is not None:
        scoring = [f for f in changed_fields(config) if f.name == "score"]
        refuse(scoring, "depth", "--layers removes the layers given, nothing is scored")


def summary(run) -> str:
    """Window scores and what depth pruning removed."""
    report = run.report
    data = report.to_dict()
    lines = [f"secateur prune: {run.recipe.model} | depth | removed layers {report.removed}", ""]
    if report.scores:
        unit = "calibration perplexity without the window" if report.score == "ppl" else "block influence"
        last = len(report.removed) - 1
        rows = [
            [
                start,
                f"{start}-{start + last}",
                f"{value:.4f}",
                "removed" if start == report.removed[0] else "",
            ]
            for start, value in sorted(report.scores.items())
        ]
        lines += [format_table(["start", "layers", unit, ""], rows), ""]
    table = [
        [
            "parameters",
            f"{report.params_before:,} -> {report.params_after:,} "
            f"({percent(data['ratio_of_total'])} removed)",
        ],
        ["prune time", f"{report.timings['prune_s']:.1f}s"],
    ]
    table += outcome_rows(run)
    lines.append(format_table(["summary", "value"], table))
    return "\n".join(lines)


DEPTH = register("step", "depth")(
    PruneStep(
        name="depth",
        reads=frozenset({"depth.*"}),
        needs_activations=lambda recipe: recipe.depth.layers is None,
        run=prune_depth,
        summary=summary,
        sized_by="--num-layers or --layers",
        check=check,
        cannot_stream=lambda recipe: (
            "--score ppl runs every later layer again for each candidate window (about N^2/2 layer "
            "reads from disk); use --score bi or --layers with --stream"
            if recipe.depth.layers is None and recipe.depth.score == "ppl"
            else None
        ),
    )
)

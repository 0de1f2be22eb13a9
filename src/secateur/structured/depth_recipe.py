"""`secateur prune --method depth`: score windows (or take --layers), remove them, report."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import torch

from secateur.structured.depth import check_window, parse_layer_list, remove_layers, window_scores
from secateur.structured.run import count_parameters


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

    return report, write

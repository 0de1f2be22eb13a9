"""The OSSCAR step of a prune run, and the analysis it writes beside the checkpoint."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

from secateur.export.structured import sync_uniform_config
from secateur.structured.osscar_run import osscar_prune


class OsscarReport:
    def __init__(self, data: dict) -> None:
        self.data = data
        self.params_before, self.params_after = data["params_before"], data["params_after"]
        self.timings = {"prune_s": data["seconds"]}

    def to_dict(self) -> dict:
        return {k: v for k, v in self.data.items() if k != "layers"} | {
            "ratio_of_total": 1 - self.params_after / self.params_before
        }


def prune_osscar(
    loaded, recipe, windows, device: torch.device, show_progress: bool, note: Callable[[str], None]
):
    config = recipe.osscar
    data = osscar_prune(
        loaded.adapter,
        windows,
        ratio=config.mlp_pruning_ratio,
        damp=config.damp_percent,
        swaps=config.swaps,
        start=config.start,
        skip_first=config.skip_first_tokens,
        sequential=config.true_sequential,
        round_to=recipe.structured.round_to,
        device=device,
        batch_size=recipe.prune.batch_size,
        show_progress=show_progress,
    )
    sync_uniform_config(loaded.adapter)
    report = OsscarReport(data)
    note(
        f"osscar: {data['params_before']:,} -> {data['params_after']:,} parameters in {data['seconds']:.1f}s"
    )

    def write(folder: Path) -> None:
        (folder / "osscar_analysis.json").write_text(json.dumps(data, indent=1) + "\n")

    return report, write

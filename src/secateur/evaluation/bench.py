"""`secateur bench`: a model and its dense original, measured the same way on the same device.

Each model is loaded, moved to the device, measured for every (batch size, prompt length) and freed
before the next, so peak memory is never shared. A 2:4 model on CUDA is measured twice: dense
kernels, then with semi-structured sparse kernels; where those cannot run, the reason is recorded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from secateur.evaluation.speed import SpeedRow
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

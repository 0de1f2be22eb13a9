"""A structured plan: which KV groups and MLP channels each decoder layer keeps. Plain JSON.

Planning and applying are separate steps, so a plan can be saved, inspected, edited and applied
later (`secateur apply-plan`). Indices refer to the layer's groups before the plan is applied.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from secateur.errors import SecateurError
from secateur.scratch import write_text_atomic

PLAN_FILE = "structured_plan.json"


@dataclass
class LayerPlan:
    layer: int
    kv_heads: list[int]  # kept KV groups (each brings its gqa_ratio query heads)
    channels: list[int]  # kept MLP channels
    num_kv_heads_before: int = 0
    intermediate_before: int = 0


@dataclass
class StructuredPlan:
    model_type: str
    gqa_ratio: int
    head_dim: int
    layers: list[LayerPlan] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> StructuredPlan:
        try:
            layers = [LayerPlan(**row) for row in data["layers"]]
            return cls(data["model_type"], int(data["gqa_ratio"]), int(data["head_dim"]), layers)
        except (KeyError, TypeError, ValueError) as exc:
            raise SecateurError(
                f"malformed structured plan: {exc}; expected the JSON secateur writes"
            ) from None

    def save(self, path: str | Path) -> Path:
        return write_text_atomic(Path(path), json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> StructuredPlan:
        path = Path(path)
        if not path.is_file():
            raise SecateurError(f"plan file {path} does not exist")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SecateurError(
                f"plan file {path} is not valid JSON ({exc}); give a structured_plan.json"
            ) from None
        return cls.from_dict(data)

    def is_uniform(self) -> bool:
        """Every layer keeps the same number of KV groups and channels, and none loses a sub-block."""
        kv = {len(p.kv_heads) for p in self.layers}
        channels = {len(p.channels) for p in self.layers}
        return len(kv) == 1 and len(channels) == 1 and 0 not in kv and 0 not in channels

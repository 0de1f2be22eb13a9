"""What `secateur compare` measured: one row per recipe, and the changes against dense and the first."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from secateur.config import CalibrationConfig
from secateur.evaluation.perplexity import PerplexityResult


@dataclass
class CompareRow:
    name: str
    method: str
    pattern: str
    target_sparsity: float
    actual_sparsity: float
    perplexity: float
    prune_s: float
    owl: str | None = None
    parameters: int = 0  # after pruning (mask methods keep every parameter, zeros included)
    params_removed: float = 0.0  # fraction of the dense model's parameters gone
    prefill_speedup: float | None = None  # shape-changing methods: dense time / this time, same shape
    decode_speedup: float | None = None


@dataclass
class CompareResult:
    model: str
    calibration: CalibrationConfig
    evaluation: dict
    dense: PerplexityResult
    rows: list[CompareRow] = field(default_factory=list)
    dense_parameters: int = 0

    def table(self) -> list[dict]:
        """Rows with the changes against the dense model and against the first recipe."""
        first = self.rows[0].perplexity if self.rows else None
        out = []
        for row in self.rows:
            base = self.dense.perplexity
            out.append(
                {
                    **asdict(row),
                    "vs_dense": row.perplexity - base,
                    "vs_dense_pct": 100 * (row.perplexity - base) / base,
                    "vs_first": row.perplexity - first,
                    "vs_first_pct": 100 * (row.perplexity - first) / first,
                }
            )
        return out

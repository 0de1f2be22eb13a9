"""Measure and verify the sparsity of every targeted Linear, per module and per layer."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from secateur.errors import VerificationError
from secateur.models.adapter import ModelAdapter
from secateur.patterns.base import Pattern


@dataclass(frozen=True)
class ModuleSparsity:
    name: str
    layer: int
    role: str
    shape: tuple[int, int]
    zeros: int
    numel: int
    target: float
    expected_zeros: int  # what the mask removed; more zeros are fine (weights already zero)
    conforming_zeros: int  # zeros where the pattern allows them (inside whole pruned tiles, ...)
    violations: int  # comparison groups breaking the pattern's structure
    tolerance: float  # how far below the target the pattern's rounding may leave a correct mask
    details: dict = field(default_factory=dict)

    @property
    def actual(self) -> float:
        return self.zeros / self.numel

    @property
    def ok(self) -> bool:
        return (
            self.conforming_zeros >= self.expected_zeros
            and self.violations == 0
            and self.expected_zeros / self.numel >= self.target - self.tolerance - 1e-12
        )


@dataclass(frozen=True)
class SparsityReport:
    modules: tuple[ModuleSparsity, ...]

    @property
    def zeros(self) -> int:
        return sum(m.zeros for m in self.modules)

    @property
    def numel(self) -> int:
        return sum(m.numel for m in self.modules)

    @property
    def actual(self) -> float:
        """Zeros over all targeted weights, skipped layers included (as Wanda's check_sparsity)."""
        return self.zeros / max(self.numel, 1)

    def per_layer(self) -> list[dict]:
        layers: dict[int, dict] = {}
        for m in self.modules:
            row = layers.setdefault(m.layer, {"layer": m.layer, "zeros": 0, "numel": 0, "target": m.target})
            row["zeros"] += m.zeros
            row["numel"] += m.numel
            for key, value in m.details.items():
                row[key] = row.get(key, 0) + value
        for row in layers.values():
            row["actual"] = row["zeros"] / row["numel"]
        return [layers[k] for k in sorted(layers)]

    def failures(self) -> list[ModuleSparsity]:
        return [m for m in self.modules if not m.ok]

    def to_dict(self) -> dict:
        return {
            "actual": self.actual,
            "zeros": self.zeros,
            "numel": self.numel,
            "layers": self.per_layer(),
            "modules": [{**asdict(m), "actual": m.actual} for m in self.modules],
        }


@torch.no_grad()
def measure_sparsity(
    adapter: ModelAdapter,
    pattern: Pattern,
    layer_sparsity: dict[int, float],
    expected: dict[tuple[int, str], int] | None = None,
) -> SparsityReport:
    """Read the weights as they are now. Layers missing from `layer_sparsity` are expected dense.

    `expected[(layer, role)]` is how many weights the pruner's mask removed; without it, the
    pattern's own count for the target is used.
    """
    modules = []
    for index in range(adapter.num_layers()):
        with adapter.layer_weights(index) as layer:  # a streamed layer: read from disk, freed after
            modules += _layer_sparsity(
                adapter, index, layer, pattern, layer_sparsity.get(index, 0.0), expected
            )
    return SparsityReport(tuple(modules))


def _layer_sparsity(adapter, index, layer, pattern, target, expected) -> list[ModuleSparsity]:
    modules = []
    names = adapter.linear_names(index)
    for role, linear in adapter.linears(layer).items():
        weight = linear.weight
        shape = (weight.shape[0], weight.shape[1])
        if expected is not None and (index, role) in expected:
            expected_zeros = expected[(index, role)]
        else:
            expected_zeros = pattern.pruned_per_matrix(shape, target) if target else 0
        structured = bool(target)
        modules.append(
            ModuleSparsity(
                name=names[role],
                layer=index,
                role=role,
                shape=shape,
                zeros=int((weight == 0).sum()),
                numel=weight.numel(),
                target=target,
                expected_zeros=expected_zeros,
                conforming_zeros=pattern.conforming_zeros(weight) if structured else int((weight == 0).sum()),
                violations=pattern.structure_violations(weight) if structured else 0,
                tolerance=pattern.sparsity_tolerance(shape),
                details=pattern.structure_details(weight) if structured else {},
            )
        )
    return modules


def verify_sparsity(report: SparsityReport, pattern: Pattern) -> None:
    """Raise VerificationError (exit code 3) naming the first module that is not as asked."""
    failures = report.failures()
    if failures:
        m = failures[0]
        raise VerificationError(
            f"sparsity verification failed for {len(failures)} module(s), first {m.name}: "
            f"{m.zeros} zeros ({m.conforming_zeros} where {pattern.spec} allows; the mask removed "
            f"{m.expected_zeros}, target {m.target:.4f}), {m.violations} groups breaking {pattern.spec}; "
            f"please report this as a bug"
        )

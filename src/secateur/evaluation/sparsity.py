"""Measure and verify the sparsity of every targeted Linear, per module and per layer."""

from __future__ import annotations

from dataclasses import asdict, dataclass

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
    expected_zeros: int  # what the pattern must have removed; more is fine (weights already zero)
    violations: int  # comparison groups breaking the pattern's structure

    @property
    def actual(self) -> float:
        return self.zeros / self.numel

    @property
    def ok(self) -> bool:
        return self.zeros >= self.expected_zeros and self.violations == 0


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
    adapter: ModelAdapter, pattern: Pattern, sparsity: float, skipped: frozenset[int] = frozenset()
) -> SparsityReport:
    """Read the weights as they are now; skipped layers are expected dense (target 0)."""
    modules = []
    for index, layer in enumerate(adapter.decoder_layers()):
        names = adapter.linear_names(index)
        for role, linear in adapter.linears(layer).items():
            weight = linear.weight
            target = 0.0 if index in skipped else sparsity
            shape = (weight.shape[0], weight.shape[1])
            modules.append(
                ModuleSparsity(
                    name=names[role],
                    layer=index,
                    role=role,
                    shape=shape,
                    zeros=int((weight == 0).sum()),
                    numel=weight.numel(),
                    target=target,
                    expected_zeros=pattern.pruned_per_matrix(shape, target) if target else 0,
                    violations=pattern.structure_violations(weight) if target else 0,
                )
            )
    return SparsityReport(tuple(modules))


def verify_sparsity(report: SparsityReport, pattern: Pattern) -> None:
    """Raise VerificationError (exit code 3) naming the first module that is not as asked."""
    failures = report.failures()
    if failures:
        m = failures[0]
        raise VerificationError(
            f"sparsity verification failed for {len(failures)} module(s), first {m.name}: "
            f"{m.zeros} zeros (expected at least {m.expected_zeros}), {m.violations} groups "
            f"breaking {pattern.spec}; please report this as a bug"
        )

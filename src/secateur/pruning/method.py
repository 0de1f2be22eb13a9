"""What the mask-pruning pipeline asks of a method.

A method may collect statistics on a layer's Linears (inside `collector().attached()`), then
prunes each Linear in place and returns the keep-mask it applied. Score-based methods (magnitude,
Wanda; see `secateur.scoring.base.ScoreMethod`) only score; solvers (SparseGPT) also update the
weights they keep.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import torch
from torch import nn

from secateur.calibration.stats import InputCollector
from secateur.patterns.base import Pattern
from secateur.registry import REGISTRY


class PruningMethod(Protocol):
    needs_activations: bool
    patterns: tuple[str, ...]  # the Pattern.kind values it takes; others are refused before any work
    updates_weights: bool  # a solver (costly per Linear, shared out over processes), not a scorer

    def collector(self, linears: dict[str, nn.Linear]) -> InputCollector | None: ...

    def prune(self, linear: nn.Linear, stats, pattern: Pattern, sparsity: float) -> torch.Tensor:
        """Prune `linear.weight` in place; return the bool keep-mask (out, in) it applied."""
        ...


def build_method(name: str, config: object) -> PruningMethod:
    """Instantiate a registered method, filling its fields from same-named config fields."""
    cls = REGISTRY.get("method", name)
    values = {f.name: getattr(config, f.name) for f in dataclasses.fields(cls) if hasattr(config, f.name)}
    return cls(**values)

"""The Scorer interface: (weight, statistics) -> importance per weight.

Scorers are pure functions of tensors. A scorer that needs calibration activations says so with
`needs_activations`; the pipeline then collects input statistics for it, layer by layer.
"""

from __future__ import annotations

from typing import Protocol

import torch

from secateur.calibration.stats import InputStats


class Scorer(Protocol):
    needs_activations: bool

    def score(self, weight: torch.Tensor, stats: InputStats | None) -> torch.Tensor:
        """weight: (out, in) in any float dtype -> fp32 scores (out, in); higher = more important."""
        ...

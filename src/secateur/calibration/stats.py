"""Statistics of the inputs that reach each Linear: fp32 per batch, added up in fp64.

Two kinds: per-feature sums of squares (Wanda's ‖X_j‖₂) and the Gram matrix XᵀX (SparseGPT's
Hessian). q/k/v receive the very same input tensor, and so do gate/up: the collector notices
(by identity) and accumulates it once, so those modules share one statistics object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from secateur.distributed import all_sum, all_sum_number

_CHUNK_ELEMENTS = 1 << 24  # bound the fp32 temporary when the activations are fp16/bf16


def _fp32_chunks(x2d: torch.Tensor) -> Iterator[torch.Tensor]:
    if x2d.dtype == torch.float32:
        yield x2d
        return
    rows = max(1, _CHUNK_ELEMENTS // x2d.shape[1])
    for start in range(0, x2d.shape[0], rows):
        yield x2d[start : start + rows].float()


def column_sum_of_squares(x2d: torch.Tensor) -> torch.Tensor:
    """x2d: (tokens, features) any dtype -> (features,) fp32 Σ x².

    A plain square-and-sum: on CPU it is ~5x faster than linalg.vector_norm(dim=0), which matters
    because it runs on every Linear input of every calibration batch.
    """
    total = torch.zeros(x2d.shape[1], dtype=torch.float32, device=x2d.device)
    for chunk in _fp32_chunks(x2d):
        total += chunk.square().sum(0)
    return total


@dataclass
class InputStats:
    """Σ over calibration tokens of x_j² per input feature, so ‖X_j‖₂ = sqrt(sum_sq).

    Each batch's sums are taken in fp32 and added up in fp64: the total then rounds to the same
    fp32 `sum_sq` whatever order the batches were added in, so a run whose windows are shared out
    over processes (each summing its own, then all of them summed) gets the single-process numbers
    and the single-process masks, not ones that differ where two scores tie to the last bit.
    """

    total: torch.Tensor  # (in_features,) fp64
    tokens: int = 0

    @property
    def sum_sq(self) -> torch.Tensor:
        return self.total.float()

    @classmethod
    def for_module(cls, module: nn.Linear) -> InputStats:
        return cls(torch.zeros(module.in_features, dtype=torch.float64, device=module.weight.device))

    @classmethod
    def neutral(cls, module: nn.Linear) -> InputStats:
        """Every input equally strong: Wanda's |W|·‖X‖ ranks as |W| (magnitude)."""
        return cls(torch.ones(module.in_features, dtype=torch.float64, device=module.weight.device))

    def add(self, x2d: torch.Tensor) -> None:
        self.total += column_sum_of_squares(x2d)
        self.tokens += x2d.shape[0]

    def reduce(self) -> None:
        """Sum over the processes of a distributed run (each saw its share of the windows)."""
        all_sum(self.total)
        self.tokens = all_sum_number(self.tokens)


def add_gram(total: torch.Tensor, x2d: torch.Tensor) -> None:
    """total (fp64) += x2dᵀx2d, the product taken in fp32 (the fast GEMM), the sum kept in fp64.

    Why fp64: see InputStats; the same holds for XᵀX, where a last-bit difference in the Hessian
    moves SparseGPT's sequential choices (measured on SmolLM2 with the total kept in fp32: 1.2% of
    the mask entries differed between 1 and 2 processes).
    """
    for chunk in _fp32_chunks(x2d):
        total += chunk.T @ chunk


@dataclass
class HessianStats:
    """total: (in_features, in_features) fp64 Σ xxᵀ over calibration tokens (see add_gram).

    `hessian()` is the layer-wise reconstruction Hessian H = 2XᵀX / tokens of SparseGPT
    (Frantar & Alistarh, 2023, §3), in fp32; `cache` holds derived matrices (its inverse factor)
    so modules that share the input share that work too. The fp64 total costs twice the memory of
    an fp32 one, for one layer's inputs at a time.
    """

    total: torch.Tensor
    tokens: int = 0
    cache: dict = field(default_factory=dict)

    @classmethod
    def for_module(cls, module: nn.Linear) -> HessianStats:
        n = module.in_features
        return cls(torch.zeros(n, n, dtype=torch.float64, device=module.weight.device))

    @classmethod
    def neutral(cls, module: nn.Linear) -> HessianStats:
        """An identity Hessian: SparseGPT's OBS score is then w², and no kept weight is updated."""
        n = module.in_features
        return cls(torch.eye(n, dtype=torch.float64, device=module.weight.device), tokens=2)

    def add(self, x2d: torch.Tensor) -> None:
        add_gram(self.total, x2d)
        self.tokens += x2d.shape[0]

    def reduce(self) -> None:
        """Sum over the processes of a distributed run (each saw its share of the windows)."""
        all_sum(self.total)
        self.tokens = all_sum_number(self.tokens)

    def hessian(self) -> torch.Tensor:
        return (self.total * (2.0 / max(self.tokens, 1))).float()


@dataclass
class InputCollector:
    """Forward pre-hooks that fill one statistics object per named Linear (shared when inputs are)."""

    modules: dict[str, nn.Linear]
    make: Callable[[nn.Linear], InputStats | HessianStats] = InputStats.for_module
    stats: dict = field(default_factory=dict)
    # What stands in for statistics that were never gathered (see pruning.statistics).
    neutral: Callable[[nn.Linear], InputStats | HessianStats] = InputStats.neutral

    @contextmanager
    def attached(self) -> Iterator[dict]:
        """Hooks live only inside this block; they are removed even if the forward raises."""
        last: dict = {"input": None, "stats": None}
        handles = [m.register_forward_pre_hook(self._hook(name, last)) for name, m in self.modules.items()]
        try:
            yield self.stats
        finally:
            for handle in handles:
                handle.remove()
            last.clear()

    def _hook(self, name: str, last: dict):
        def hook(module: nn.Linear, args: tuple) -> None:
            x = args[0]
            if last["input"] is x:  # the same tensor again: q/k/v, gate/up
                self.stats[name] = last["stats"]
                return
            target = self.stats.get(name) or self.make(module)
            target.add(x.reshape(-1, x.shape[-1]))
            self.stats[name] = target
            last["input"], last["stats"] = x, target

        return hook

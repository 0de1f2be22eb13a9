"""DSnoT: training-free refinement of a pruning mask (Zhang et al., ICLR 2024, arXiv:2310.08915).

Start from a mask (Wanda's by default) and, for each output row, swap pruned and kept weights so
that the row's EXPECTED reconstruction error

    e_i = Σ_{j pruned} W_ij · E[x_j]

(the shift of the row's mean output that the mask causes) moves toward zero. No weight value
changes: only which weights are zero. One swap per row per cycle, every row at once:

  grow   among the row's pruned weights ordered by W_ij E[x_j] / Var[x_j]^p, the largest when
         e_i > 0, the smallest otherwise (each end consumed in turn): removing its term from e_i
         pulls e_i toward zero, and a low-variance input's mean is the more reliable;
  prune  unstructured: among the weights kept at the start whose W_ij E[x_j] pulls e_i back
         (negative when e_i >= 0, positive when e_i < 0), the least important first by Wanda's
         |W_ij|·‖X_j‖₂; N:M: the least important kept weight (by the starting score) of the regrown
         weight's own group of M, so every group still keeps N, and the swap is accepted only while
         e_i keeps the sign it started with.
A row stops for good once |e_i| is at most the threshold or a candidate list runs out; every row
stops after `max_cycles`. These are the rules and defaults of the authors' code (50 cycles,
threshold 0.1, variance power 1, same-sign check for N:M only, MLP Linears left with the starting
mask). The threshold is in that code's units, where E[x] is summed over a window of 2048 tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from secateur.calibration.stats import HessianStats, InputCollector, add_gram, column_sum_of_squares
from secateur.distributed import all_sum, all_sum_number
from secateur.errors import SecateurError
from secateur.patterns.base import Pattern
from secateur.patterns.nm import NM
from secateur.patterns.unstructured import Unstructured
from secateur.registry import register
from secateur.scoring.wanda import wanda_scores
from secateur.solvers.sparsegpt import inverse_cholesky_factor

WINDOW_TOKENS = 2048  # the threshold's unit: DSnoT's code sums E[x] over one 2048-token window
INITIAL_METHODS = ("wanda", "magnitude", "sparsegpt")
SKIPS = ("mlp", "self_attn", "no_skip")


def _ordered(keys: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row: the columns of the `valid` entries by ascending key (stable), and how many there are."""
    order = torch.where(valid, keys, torch.inf).argsort(dim=1, stable=True)
    return order, valid.sum(1)


def _expected_error(weight: torch.Tensor, mean: torch.Tensor, keep: torch.Tensor):
    """(d, e): each weight's share of its row's mean output, W_ij·E[x_j], fp64, and each row's
    expected error, the sum of d over its pruned weights."""
    d = weight.double() * mean.double().unsqueeze(0)
    return d, (d * ~keep).sum(1)


@dataclass
class _RegrowQueue:
    """Each row's pruned weights ordered by d / Var^p: taken from the top while e > 0, from the
    bottom otherwise; a row whose two ends have met has nothing left to regrow."""

    order: torch.Tensor
    low: torch.Tensor
    high: torch.Tensor

    @classmethod
    def of(cls, d: torch.Tensor, var: torch.Tensor, pruned: torch.Tensor, power: float) -> _RegrowQueue:
        order, count = _ordered(d / var.double().clamp_min(1e-30).pow(power), pruned)
        return cls(order, torch.zeros_like(count), count - 1)

    def peek(self, above: torch.Tensor) -> torch.Tensor:
        at = torch.arange(self.order.shape[0], device=self.order.device)
        return self.order[at, torch.where(above, self.high, self.low).clamp(0, self.order.shape[1] - 1)]

    def available(self) -> torch.Tensor:
        return self.low <= self.high

    def pop(self, above: torch.Tensor) -> None:
        self.high = torch.where(above, self.high - 1, self.high)
        self.low = torch.where(above, self.low, self.low + 1)


@torch.no_grad()
def refine_unstructured(
    weight: torch.Tensor,
    keep: torch.Tensor,
    mean: torch.Tensor,
    var: torch.Tensor,
    importance: torch.Tensor,
    *,
    max_cycles: int = 50,
    threshold: float = 0.1,
    power: float = 1.0,
) -> torch.Tensor:
    """weight, keep (rows, cols); mean, var (cols,) of the inputs; importance (rows, cols), Wanda's.

    Returns the refined keep-mask: every row keeps as many weights as it did."""
    d, error = _expected_error(weight, mean, keep)
    rows, cols = d.shape
    at = torch.arange(rows, device=d.device)
    keep = keep.clone()
    regrow = _RegrowQueue.of(d, var, ~keep, power)
    negative_order, negative_count = _ordered(importance, keep & (d < 0))
    positive_order, positive_count = _ordered(importance, keep & (d > 0))
    next_negative, next_positive = torch.zeros_like(negative_count), torch.zeros_like(positive_count)
    active = torch.ones(rows, dtype=torch.bool, device=d.device)
    last = cols - 1
    for _ in range(max_cycles):
        above = error > 0
        grow = regrow.peek(above)
        use_negative = error >= 0
        prune = torch.where(
            use_negative,
            negative_order[at, next_negative.clamp(max=last)],
            positive_order[at, next_positive.clamp(max=last)],
        )
        available = regrow.available() & torch.where(
            use_negative, next_negative < negative_count, next_positive < positive_count
        )
        active &= available & (error.abs() * WINDOW_TOKENS > threshold)
        if not active.any():
            break
        regrow.pop(above)
        next_negative = torch.where(use_negative, next_negative + 1, next_negative)
        next_positive = torch.where(use_negative, next_positive, next_positive + 1)
        swap = at[active]
        keep[swap, grow[active]] = True
        keep[swap, prune[active]] = False
        error += torch.where(active, d[at, prune] - d[at, grow], torch.zeros_like(error))
    return keep


@torch.no_grad()
def refine_nm(
    weight: torch.Tensor,
    keep: torch.Tensor,
    mean: torch.Tensor,
    var: torch.Tensor,
    initial: torch.Tensor,
    m: int,
    *,
    max_cycles: int = 50,
    threshold: float = 0.1,
    power: float = 1.0,
) -> torch.Tensor:
    """As refine_unstructured, but each swap stays inside one group of `m` inputs (N:M kept);
    `initial` (rows, cols) is the score the starting mask was chosen by."""
    d, error = _expected_error(weight, mean, keep)
    at = torch.arange(d.shape[0], device=d.device)
    keep = keep.clone()
    start_sign = error.sign()
    regrow = _RegrowQueue.of(d, var, ~keep, power)
    # Pruned weights (and those regrown later) are never chosen to be pruned.
    candidates = torch.where(keep, initial.double(), torch.inf)
    offsets = torch.arange(m, device=d.device)
    active = torch.ones(d.shape[0], dtype=torch.bool, device=d.device)
    for _ in range(max_cycles):
        above = error > 0
        grow = regrow.peek(above)
        group = (grow - grow % m).unsqueeze(1) + offsets
        lowest, within = candidates.gather(1, group).min(1)
        prune = group[at, within]
        after = error + d[at, prune] - d[at, grow]
        active &= (
            regrow.available()
            & torch.isfinite(lowest)
            & (error.abs() * WINDOW_TOKENS > threshold)
            & (after.sign() == start_sign)
        )
        if not active.any():
            break
        regrow.pop(above)
        swap = at[active]
        keep[swap, grow[active]] = True
        keep[swap, prune[active]] = False
        candidates[swap, prune[active]] = torch.inf
        error = torch.where(active, after, error)
    return keep


@dataclass
class MomentStats:
    """Per input feature: Σx and Σx² over the calibration tokens (fp64), and the Gram matrix Σxxᵀ
    when the starting mask is SparseGPT's saliency."""

    total: torch.Tensor  # (in_features,) Σx
    total_sq: torch.Tensor  # (in_features,) Σx²
    gram: torch.Tensor | None = None
    tokens: int = 0
    cache: dict = field(default_factory=dict)

    @classmethod
    def make(cls, module: nn.Linear, with_gram: bool) -> MomentStats:
        n, device = module.in_features, module.weight.device
        zeros = torch.zeros(n, dtype=torch.float64, device=device)
        gram = torch.zeros(n, n, dtype=torch.float64, device=device) if with_gram else None
        return cls(zeros, zeros.clone(), gram)

    @classmethod
    def neutral(cls, module: nn.Linear, with_gram: bool) -> MomentStats:
        """Zero-mean unit inputs: no expected error to reduce, so the starting mask is kept, and
        that mask ranks by |W| (magnitude), as for every method's starved experts."""
        n, device = module.in_features, module.weight.device
        gram = 2 * torch.eye(n, dtype=torch.float64, device=device) if with_gram else None
        zeros = torch.zeros(n, dtype=torch.float64, device=device)
        return cls(zeros, torch.full((n,), 2.0, dtype=torch.float64, device=device), gram, tokens=2)

    def add(self, x2d: torch.Tensor) -> None:
        self.total += x2d.sum(0, dtype=torch.float64)
        self.total_sq += column_sum_of_squares(x2d)
        if self.gram is not None:
            add_gram(self.gram, x2d)
        self.tokens += x2d.shape[0]

    def reduce(self) -> None:
        for tensor in (self.total, self.total_sq, self.gram):
            if tensor is not None:
                all_sum(tensor)
        self.tokens = all_sum_number(self.tokens)

    def mean(self) -> torch.Tensor:
        return self.total / max(self.tokens, 1)

    def var(self) -> torch.Tensor:
        return (self.total_sq / max(self.tokens, 1) - self.mean().square()).clamp_min(0.0)


@register("method", "dsnot")
@dataclass(frozen=True)
class DSnoT:
    """A starting mask (wanda, magnitude or SparseGPT's saliency), refined by DSnoT's swaps."""

    initial_method: str = "wanda"
    max_cycle_time: int = 50
    update_threshold: float = 0.1
    pow_of_var_regrowing: float = 1.0
    skip_layer: str = "mlp"
    percdamp: float = 0.01
    needs_activations = True
    updates_weights = False  # masks only: every process computes them
    patterns = ("unstructured", "N:M")  # a swap inside a row or a group; tiles are not swapped
    reads_path = True  # skip_layer needs to know whether a Linear is in the attention block

    def __post_init__(self) -> None:
        if self.initial_method not in INITIAL_METHODS:
            raise SecateurError(
                f"--initial-method must be one of {', '.join(INITIAL_METHODS)}, got {self.initial_method!r}"
            )
        if self.skip_layer not in SKIPS:
            raise SecateurError(f"--skip-layer must be one of {', '.join(SKIPS)}, got {self.skip_layer!r}")
        if self.max_cycle_time < 0 or not self.update_threshold >= 0 or not self.pow_of_var_regrowing >= 0:
            raise SecateurError(
                "--max-cycle-time, --update-threshold and --pow-of-var-regrowing must be >= 0"
            )
        if self.initial_method != "sparsegpt" and self.percdamp != DSnoT.percdamp:
            raise SecateurError(
                f"--percdamp is not used here: --initial-method {self.initial_method} reads no Hessian; "
                "drop --percdamp"
            )

    def collector(self, linears: dict[str, nn.Linear]) -> InputCollector:
        with_gram = self.initial_method == "sparsegpt"
        return InputCollector(
            linears,
            lambda module: MomentStats.make(module, with_gram),
            neutral=lambda module: MomentStats.neutral(module, with_gram),
        )

    def _initial_scores(self, weight: torch.Tensor, stats: MomentStats) -> torch.Tensor:
        if self.initial_method == "magnitude":
            return weight.float().abs()
        if self.initial_method == "wanda":
            return wanda_scores(weight, stats.total_sq)
        key = ("inverse-factor", self.percdamp)  # q/k/v share it
        if key not in stats.cache:
            hessian = HessianStats(stats.gram, stats.tokens).hessian()
            stats.cache[key] = inverse_cholesky_factor(hessian, self.percdamp)
        return weight.float().square() / torch.diag(stats.cache[key]).square().unsqueeze(0)

    @torch.no_grad()
    def prune(
        self, linear: nn.Linear, stats: MomentStats | None, pattern: Pattern, sparsity: float, *, path=""
    ) -> torch.Tensor:
        if stats is None:
            raise SecateurError("dsnot needs calibration activations; pass calibration windows")
        weight = linear.weight.detach()
        initial = self._initial_scores(weight, stats)
        keep = pattern.mask(initial, sparsity)
        attention = path.startswith("self_attn.")
        skipped = self.skip_layer == ("self_attn" if attention else "mlp")
        if not skipped and self.max_cycle_time > 0:
            settings = {
                "max_cycles": self.max_cycle_time,
                "threshold": self.update_threshold,
                "power": self.pow_of_var_regrowing,
            }
            mean, var = stats.mean().to(weight.device), stats.var().to(weight.device)
            if isinstance(pattern, NM):
                keep = refine_nm(weight, keep, mean, var, initial, pattern.m, **settings)
            elif isinstance(pattern, Unstructured):
                importance = wanda_scores(weight, stats.total_sq)
                keep = refine_unstructured(weight, keep, mean, var, importance, **settings)
            else:  # checked before any work (see config); kept as a guard for API callers
                raise SecateurError(f"dsnot refines unstructured and N:M masks, not {pattern.spec}")
        linear.weight.masked_fill_(~keep, 0)
        return keep

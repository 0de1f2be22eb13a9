"""SparseGPT: one-shot pruning with OBS weight reconstruction (Frantar & Alistarh, 2023, arXiv:2301.00774).

For a Linear with weights W (rows, cols) and layer Hessian H = 2XᵀX/n, columns are visited left to
right. Each pruned weight's error is spread over the columns not yet visited, weighted by the rows
of the upper Cholesky factor of H⁻¹, so the layer output XWᵀ changes as little as possible. The
mask is chosen inside the loop, a strip of columns at a time, from saliencies w²/[H⁻¹]²_jj of the
already-updated weights (§3.3). Updates are applied lazily per block of `blocksize` columns (§3.4),
which turns most of the work into one matrix product per block.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import nn

from secateur.calibration.stats import HessianStats, InputCollector
from secateur.errors import SecateurError
from secateur.patterns.base import Pattern
from secateur.registry import register

MAX_DAMPENING_TRIES = 8


def inverse_cholesky_factor(hessian: torch.Tensor, percdamp: float) -> torch.Tensor:
    """Upper Cholesky factor U of (H + λI)⁻¹, with λ = percdamp · mean(diag H).

    A Hessian that is not positive definite (too few tokens, collinear features) gets ten times
    more dampening, with a warning, until the factorisation succeeds: never NaNs, never a crash.
    """
    n = hessian.shape[0]
    eye = torch.eye(n, dtype=hessian.dtype, device=hessian.device)
    mean_diag = float(torch.diag(hessian).mean())
    damp = percdamp * mean_diag if mean_diag > 0 else 1.0
    for attempt in range(MAX_DAMPENING_TRIES):
        lower, info = torch.linalg.cholesky_ex(hessian + damp * eye)
        if int(info) == 0:
            upper, info = torch.linalg.cholesky_ex(torch.cholesky_inverse(lower), upper=True)
            if int(info) == 0 and torch.isfinite(upper).all():
                return upper
        if attempt + 1 < MAX_DAMPENING_TRIES:
            warnings.warn(
                f"SparseGPT: Hessian not positive definite with dampening {damp:.3g}; retrying with "
                f"{damp * 10:.3g} (more calibration tokens avoid this)",
                RuntimeWarning,
                stacklevel=2,
            )
        damp = damp * 10 if damp > 0 else 1e-6 * max(mean_diag, 1.0)
    raise SecateurError(
        "SparseGPT: the Hessian stays singular even when heavily dampened; use more --nsamples"
    )


@torch.no_grad()
def sparsegpt_solve(
    weight: torch.Tensor,
    hessian: torch.Tensor,
    pattern: Pattern,
    sparsity: float,
    *,
    blocksize: int = 128,
    percdamp: float = 0.01,
    inverse_factor: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """weight (rows, cols) any dtype, hessian (cols, cols) fp32 -> (new weight fp32, keep mask bool).

    Inputs that never fired (zero Hessian diagonal) carry no information: their diagonal is set to
    1 and, as in the reference implementation, their weights are pruned, where the pattern allows
    zeros beyond its mask. A block pattern does not (a dead column is not a tile: ReLU models such
    as OPT have dead inputs), so there they keep their weights and compete for the mask like any
    other (no update reaches them: their Hessian row is zero). `inverse_factor` lets modules with
    the same input (q/k/v) reuse one factorisation.
    """
    w = weight.detach().float().clone()
    h = hessian.float().clone()
    rows, cols = w.shape
    dead = torch.diag(h) == 0
    h[dead, dead] = 1.0
    if not pattern.extra_zeros_allowed:
        dead = torch.zeros_like(dead)
    w[:, dead] = 0.0
    hinv = inverse_factor if inverse_factor is not None else inverse_cholesky_factor(h, percdamp)
    width = pattern.solver_strip_width(blocksize, cols)
    if width <= blocksize:
        block = -(-blocksize // width) * width  # strips never straddle two lazy blocks
    elif width >= cols or width % blocksize == 0:
        block = blocksize  # a strip spanning blocks is chosen at its first block, where W is current
    else:
        raise ValueError(f"strip width {width} must divide into or be a multiple of blocksize {blocksize}")
    pruned = torch.zeros(rows, cols, dtype=torch.bool, device=w.device)
    full_diag = torch.diag(hinv)

    for i1 in range(0, cols, block):
        i2 = min(i1 + block, cols)
        if width > block and i1 % width == 0:
            j = min(i1 + width, cols)
            saliency = w[:, i1:j].square() / full_diag[i1:j].square()
            pruned[:, i1:j] = ~pattern.solver_mask(saliency, sparsity)
        w1 = w[:, i1:i2].clone()
        err1 = torch.zeros_like(w1)
        hinv1 = hinv[i1:i2, i1:i2]
        diag = full_diag[i1:i2]
        prune1 = pruned[:, i1:i2]
        for i in range(i2 - i1):
            if width <= block and i % width == 0:
                j = min(i + width, i2 - i1)
                saliency = w1[:, i:j].square() / diag[i:j].square()
                prune1[:, i:j] = ~pattern.solver_mask(saliency, sparsity)
            column = w1[:, i]
            kept = column.masked_fill(prune1[:, i], 0.0)
            err = (column - kept) / diag[i]
            w1[:, i:].sub_(torch.outer(err, hinv1[i, i:]))
            w1[:, i] = kept  # exactly zero where pruned, whatever the rounding above
            err1[:, i] = err
        w[:, i1:i2] = w1
        w[:, i2:].sub_(err1 @ hinv[i1:i2, i2:])
    pruned |= dead.unsqueeze(0)
    w.masked_fill_(pruned, 0.0)
    return w, ~pruned


@register("method", "sparsegpt")
@dataclass(frozen=True)
class SparseGPT:
    """OBS pruning with weight updates; `blocksize` columns per lazy update, `percdamp` dampening."""

    blocksize: int = 128
    percdamp: float = 0.01
    needs_activations = True
    updates_weights = True  # a solve per Linear: under torchrun the solves are shared out
    patterns = ("unstructured", "N:M", "block")  # tiered scores tiles, which a solver does not

    def collector(self, linears: dict[str, nn.Linear]) -> InputCollector:
        return InputCollector(linears, HessianStats.for_module, neutral=HessianStats.neutral)

    @torch.no_grad()
    def prune(self, linear: nn.Linear, stats: HessianStats | None, pattern: Pattern, sparsity: float):
        if stats is None:
            raise SecateurError("sparsegpt needs calibration activations; pass calibration windows")
        hessian = stats.hessian()
        key = ("inverse", self.percdamp)
        if key not in stats.cache:
            fixed = hessian.clone()
            dead = torch.diag(fixed) == 0
            fixed[dead, dead] = 1.0
            stats.cache[key] = inverse_cholesky_factor(fixed, self.percdamp)
        new, keep = sparsegpt_solve(
            linear.weight,
            hessian,
            pattern,
            sparsity,
            blocksize=self.blocksize,
            percdamp=self.percdamp,
            inverse_factor=stats.cache[key],
        )
        linear.weight.copy_(new.to(linear.weight.dtype))
        return keep

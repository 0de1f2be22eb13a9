"""ALPS: one-shot pruning as the l0-constrained layer reconstruction problem, solved by ADMM
(Meng, Behdin, Wang, Mazumder, 2024, arXiv:2406.07831).

For a Linear with weights W0 (rows, cols) and layer Hessian H = 2XᵀX/n (SparseGPT's statistics),
find W with the pattern's zeros minimizing tr((W - W0) H (W - W0)ᵀ), the change of the layer's
output on the calibration tokens. ADMM splits W (free) from D (in the pattern's set) with a scaled
dual V, for a penalty rho that grows over the iterations until W and D agree:

    W <- (W0 H + rho (D - V)) (H + rho I)^-1      one eigendecomposition of H serves every rho
    D <- the projection of W + V on the pattern    the largest |.| kept over the whole matrix
    V <- V + W - D

The projection is the paper's: one budget for the whole matrix (unstructured: one threshold, so
rows may differ, as SparseGPT's adaptive mask; N:M per group; blocks ranked over the matrix), the
pattern's `solver_mask`. Then, on the support D settled on, the weights are refit exactly: a
preconditioned conjugate gradient (Jacobi) on the same quadratic restricted to the kept weights,
every row at once (§3.3 of the paper). The rho schedule is the paper's in spirit: rho grows by
more while the support still changes a lot, by less once it has settled.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from secateur.calibration.stats import HessianStats, InputCollector
from secateur.errors import SecateurError
from secateur.patterns.base import Pattern
from secateur.registry import register

# The support counts as settled when at most this share of the entries changed, SETTLED_STEPS
# ADMM steps in a row.
SETTLED = 1e-5
SETTLED_STEPS = 3


def eigen_basis(hessian: torch.Tensor, percdamp: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(eigenvalues (cols,), eigenvectors (cols, cols)) of H + damp·mean(diag H)·I, decomposed in
    float64, returned fp32 (the iterations run in fp32, the fast GEMM).

    Dead inputs (zero diagonal: never fired) get a diagonal of 1, as in SparseGPT."""
    h = hessian.double().clone()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1.0
    mean = float(torch.diag(h).mean())
    h += percdamp * mean * torch.eye(h.shape[0], dtype=h.dtype, device=h.device)
    values, vectors = torch.linalg.eigh(h)
    return values.clamp_min(1e-12 * max(mean, 1e-30)).float(), vectors.float()


def refit_on_support(
    w0: torch.Tensor,
    keep: torch.Tensor,
    values: torch.Tensor,
    vectors: torch.Tensor,
    iterations: int,
    start=None,
) -> torch.Tensor:
    """argmin over W with zeros outside `keep` of tr((W - W0) H (W - W0)ᵀ), by Jacobi-preconditioned
    conjugate gradients per row (all rows at once), from `start` (default W0 masked). fp32."""
    h = (vectors * values) @ vectors.T
    diag = torch.diag(h).clamp_min(1e-30)
    mask = keep.float()
    w0 = w0.float()
    w = (w0 if start is None else start.float()) * mask
    residual = ((w0 - w) @ h) * mask  # minus the gradient, on the support
    z = residual / diag
    direction = z.clone()
    rz = (residual * z).sum(1, keepdim=True)
    for _ in range(iterations):
        hp = (direction @ h) * mask
        curvature = (direction * hp).sum(1, keepdim=True)
        alpha = torch.where(curvature > 0, rz / curvature.clamp_min(1e-30), torch.zeros_like(rz))
        w += alpha * direction
        residual -= alpha * hp
        z = residual / diag
        rz_next = (residual * z).sum(1, keepdim=True)
        beta = torch.where(rz > 0, rz_next / rz.clamp_min(1e-30), torch.zeros_like(rz))
        direction = z + beta * direction
        rz = rz_next
    return w * mask


@torch.no_grad()
def alps_solve(
    weight: torch.Tensor,
    hessian: torch.Tensor,
    pattern: Pattern,
    sparsity: float,
    *,
    iterations: int = 40,
    rho: float = 0.1,
    refit_iterations: int = 30,
    percdamp: float = 0.01,
    basis: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """weight (rows, cols), hessian (cols, cols) -> (new weight fp32, keep mask bool).

    `rho` is the first penalty as a fraction of H's mean eigenvalue; `basis` (eigen_basis of the
    same H) lets modules with the same input (q/k/v, gate/up) share the decomposition."""
    values, vectors = basis if basis is not None else eigen_basis(hessian, percdamp)
    w0 = weight.detach().float()
    mean = float(values.mean())
    target = w0 @ vectors * values  # W0 H in the eigenbasis: (W0 Q) Λ
    # Start from the OBS-free saliency w²·H_jj (Wanda's ranking, with H's diagonal as the norms).
    project = pattern.solver_mask  # the whole matrix at once: one budget, not one per row
    keep = project(w0.square() * (vectors.square() * values).sum(1), sparsity)  # diag(H), no H
    d = w0 * keep
    v = torch.zeros_like(w0)
    penalty = rho * mean
    entries = keep.numel()
    settled = 0
    for _ in range(iterations):
        w = ((target + penalty * ((d - v) @ vectors)) / (values + penalty)) @ vectors.T
        z = w.add_(v)  # W + V: projected for D, and what is left of it is the next V
        new_keep = project(z.abs(), sparsity)
        changed = int((new_keep != keep).sum())
        keep = new_keep
        d = z * keep
        v = z.masked_fill_(keep, 0.0)  # V + W - D, zero on the support
        # Grow rho faster while the support still moves (the paper's schedule in spirit).
        penalty *= 1.3 if changed > 0.01 * entries else 1.2 if changed > 0.001 * entries else 1.1
        # Once the support holds still, further steps only pull W onto D, and the refit below
        # computes the best weights on that support anyway: stop (measured: unstructured masks
        # settle in ~15 of the 40 steps; N:M ones keep moving a handful of entries).
        settled = settled + 1 if changed <= SETTLED * entries else 0
        if settled == SETTLED_STEPS:
            break
    fitted = refit_on_support(w0, keep, values, vectors, refit_iterations, start=d)
    return fitted.float(), keep


@register("method", "alps")
@dataclass(frozen=True)
class ALPS:
    """ADMM on the layer's l0-constrained reconstruction, then a refit on the support found."""

    percdamp: float = 0.01
    admm_iterations: int = 40
    admm_rho: float = 0.1
    refit_iterations: int = 30
    needs_activations = True
    updates_weights = True  # a solve per Linear: under torchrun the solves are shared out
    patterns = ("unstructured", "N:M", "block")  # tiered scores tiles, which a solver does not

    def collector(self, linears: dict[str, nn.Linear]) -> InputCollector:
        return InputCollector(linears, HessianStats.for_module, neutral=HessianStats.neutral)

    @torch.no_grad()
    def prune(self, linear: nn.Linear, stats: HessianStats | None, pattern: Pattern, sparsity: float):
        if stats is None:
            raise SecateurError("alps needs calibration activations; pass calibration windows")
        hessian = stats.hessian()
        key = ("eigen", self.percdamp)
        if key not in stats.cache:
            stats.cache[key] = eigen_basis(hessian, self.percdamp)
        new, keep = alps_solve(
            linear.weight,
            hessian,
            pattern,
            sparsity,
            iterations=self.admm_iterations,
            rho=self.admm_rho,
            refit_iterations=self.refit_iterations,
            percdamp=self.percdamp,
            basis=stats.cache[key],
        )
        linear.weight.copy_(new.to(linear.weight.dtype))
        return keep

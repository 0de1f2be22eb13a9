"""ALPS against a direct implementation on random tensors (dense solves and top-k by hand), the
refit against least squares on the support, and the point of it: a lower reconstruction error than
SparseGPT's on the same statistics."""

import pytest
import torch

from secateur.patterns.nm import NM
from secateur.patterns.unstructured import Unstructured
from secateur.solvers.alps import alps_solve, eigen_basis, refit_on_support
from secateur.solvers.sparsegpt import sparsegpt_solve


def _problem(rows=6, cols=16, tokens=200, seed=0):
    generator = torch.Generator().manual_seed(seed)
    mixing = torch.randn(cols, cols, generator=generator)
    x = torch.randn(tokens, cols, generator=generator) @ mixing  # correlated inputs
    return torch.randn(rows, cols, generator=generator), 2 * x.T @ x / tokens


def _error(w, w0, h):
    diff = (w - w0).double()
    return float(torch.einsum("ri,ij,rj->", diff, h.double(), diff))


def _direct(w0, h, keep_of, iterations, rho, percdamp):
    """The same iteration with a dense solve per step and the projection written out by hand."""
    w0, h = w0.double(), h.double()
    damped = h + percdamp * torch.diag(h).mean() * torch.eye(h.shape[0], dtype=h.dtype)
    mean = float(torch.linalg.eigvalsh(damped).mean())
    keep = keep_of(w0.square() * torch.diag(damped))
    d, v, penalty, settled = w0 * keep, torch.zeros_like(w0), rho * mean, 0
    for _ in range(iterations):
        system = damped + penalty * torch.eye(h.shape[0], dtype=h.dtype)
        w = torch.linalg.solve(system, (w0 @ damped + penalty * (d - v)).T).T
        new_keep = keep_of((w + v).abs())
        changed = int((new_keep != keep).sum())
        keep, d = new_keep, (w + v) * new_keep
        v = v + w - d
        penalty *= 1.3 if changed > 0.01 * keep.numel() else 1.2 if changed > 0.001 * keep.numel() else 1.1
        settled = settled + 1 if changed <= 1e-5 * keep.numel() else 0
        if settled == 3:  # three steps in a row without a change: the support has settled
            break
    return d, keep


@pytest.mark.parametrize("pattern", [Unstructured(), NM(2, 4)])
def test_admm_matches_a_direct_implementation(pattern):
    w0, h = _problem()

    def keep_of(scores):
        return pattern.solver_mask(scores.float(), 0.5)  # one budget for the whole matrix

    direct_d, direct_keep = _direct(w0, h, keep_of, iterations=12, rho=0.1, percdamp=0.01)
    _, keep = alps_solve(w0, h, pattern, 0.5, iterations=12, rho=0.1, refit_iterations=0, percdamp=0.01)
    assert torch.equal(keep, direct_keep)
    assert pattern.structure_violations(direct_d.float()) == 0


def test_refit_is_least_squares_on_the_support():
    w0, h = _problem(rows=4, cols=12)
    keep = Unstructured().mask(torch.rand(4, 12, generator=torch.Generator().manual_seed(3)), 0.5)
    values, vectors = eigen_basis(h, 0.0)
    fitted = refit_on_support(w0, keep, values, vectors, iterations=12)
    for r in range(4):  # the normal equations of row r on its kept inputs: H_SS w_S = (H w0)_S
        s = keep[r]
        expected = torch.linalg.solve(h.double()[s][:, s], (h.double() @ w0[r].double())[s])
        torch.testing.assert_close(fitted[r, s].double(), expected, rtol=1e-3, atol=1e-4)
        assert not fitted[r, ~s].any()


@pytest.mark.parametrize("pattern", [Unstructured(), NM(2, 4)])
def test_alps_reconstructs_better_than_sparsegpt(pattern):
    w0, h = _problem(rows=32, cols=64, tokens=400, seed=1)
    ours, keep = alps_solve(w0, h, pattern, 0.5)
    theirs, _ = sparsegpt_solve(w0, h, pattern, 0.5, blocksize=16)
    assert pattern.structure_violations(ours) == 0 and torch.equal(ours != 0, keep & (ours != 0))
    assert int((~keep).sum()) == pattern.pruned_per_matrix(tuple(w0.shape), 0.5)
    assert _error(ours, w0, h) < 0.95 * _error(theirs, w0, h)

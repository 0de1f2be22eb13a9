"""SparseGPT on a single Linear: against a plain reference, against Wanda's mask, and its edge cases."""

import warnings

import pytest
import torch

from secateur.calibration.stats import InputStats
from secateur.patterns.block import Block
from secateur.patterns.nm import NM
from secateur.patterns.unstructured import Unstructured
from secateur.scoring.wanda import Wanda
from secateur.solvers.sparsegpt import inverse_cholesky_factor, sparsegpt_solve


def _problem(rows=24, cols=32, tokens=400, seed=0):
    g = torch.Generator().manual_seed(seed)
    # Correlated inputs with a few loud features, like LLM activations.
    mix = torch.randn(cols, cols, generator=g) * 0.3 + torch.eye(cols)
    x = torch.randn(tokens, cols, generator=g, dtype=torch.float64) @ mix.double()
    x[:, :3] *= 6
    w = torch.randn(rows, cols, generator=g)
    h = (2 * x.T @ x / tokens).float()
    return w, x, h


def plain_reference(w, h, pattern, sparsity, percdamp=0.01):
    """Column by column, no lazy blocks, float64, the mask chosen strip by strip as the paper does."""
    w = w.double().clone()
    h = h.double().clone()
    cols = w.shape[1]
    h += percdamp * torch.diag(h).mean() * torch.eye(cols, dtype=torch.float64)
    u = torch.linalg.cholesky(torch.linalg.inv(h), upper=True)
    width = pattern.solver_strip_width(cols, cols)
    prune = torch.zeros_like(w, dtype=torch.bool)
    for i in range(cols):
        if i % width == 0:
            strip = slice(i, min(i + width, cols))
            saliency = w[:, strip] ** 2 / torch.diag(u)[strip] ** 2
            prune[:, strip] = ~pattern.solver_mask(saliency, sparsity)
        for r in range(w.shape[0]):
            if prune[r, i]:
                err = w[r, i] / u[i, i]
                for j in range(i, cols):
                    w[r, j] -= err * u[i, j]
                w[r, i] = 0.0
    return w, ~prune


@pytest.mark.parametrize(("pattern", "blocksize"), [(NM(2, 4), 8), (NM(4, 8), 16), (Block(4), 8)])
def test_matches_a_plain_reference(pattern, blocksize):
    w, _, h = _problem()
    ours, keep = sparsegpt_solve(w, h, pattern, pattern.resolve_sparsity(None), blocksize=blocksize)
    ref, ref_keep = plain_reference(w, h, pattern, pattern.resolve_sparsity(None))
    assert torch.equal(keep, ref_keep)
    torch.testing.assert_close(ours.double(), ref, rtol=1e-4, atol=1e-4)


def test_unstructured_matches_reference_when_the_strip_is_the_lazy_block():
    w, _, h = _problem()
    ours, keep = sparsegpt_solve(w, h, Unstructured(), 0.5, blocksize=32)  # one block = whole matrix
    ref, ref_keep = plain_reference(w, h, Unstructured(), 0.5)
    assert torch.equal(keep, ref_keep)
    torch.testing.assert_close(ours.double(), ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("pattern", [Unstructured(), NM(2, 4), Block(8)])
def test_reconstruction_error_beats_the_wanda_mask(pattern):
    w, x, h = _problem(rows=48, cols=64, tokens=800, seed=3)
    sparsity = pattern.resolve_sparsity(None)
    ours, keep = sparsegpt_solve(w, h, pattern, sparsity, blocksize=16)
    stats = InputStats(torch.zeros(64))
    stats.add(x.float())
    wanda_keep = pattern.mask(Wanda().score(w, stats), sparsity)
    dense_out = x.float() @ w.T

    def error(weights):
        return float(torch.linalg.norm(x.float() @ weights.T - dense_out))

    assert error(ours) < error(w * wanda_keep)
    assert int((~keep).sum()) == pytest.approx(sparsity * w.numel(), abs=64)
    assert torch.equal(ours == 0, ~keep | (w == 0))


def test_dead_inputs_are_pruned_without_nans():
    w, x, _ = _problem()
    x[:, 5] = 0
    h = (2 * x.T @ x / x.shape[0]).float()
    ours, keep = sparsegpt_solve(w, h, Unstructured(), 0.5, blocksize=8)
    assert torch.isfinite(ours).all()
    assert not keep[:, 5].any() and (ours[:, 5] == 0).all()


def test_singular_hessian_gets_more_dampening_and_a_warning():
    w, x, _ = _problem(cols=32, tokens=4)  # 4 tokens: rank 4 of 32
    h = (2 * x.T @ x / 4).float()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        factor = inverse_cholesky_factor(h, percdamp=0.0)
        ours, _ = sparsegpt_solve(w, h, NM(2, 4), 0.5, percdamp=0.0)
    assert torch.isfinite(factor).all() and torch.isfinite(ours).all()
    assert any("not positive definite" in str(c.message) for c in caught)

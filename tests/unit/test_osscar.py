"""OSSCAR's pieces: the Gram-form objective, the least-squares refit, the greedy start, and a search
that never gets worse."""

import itertools

import torch

from secateur.structured.osscar import (
    Reconstruction,
    error,
    greedy_channels,
    kept_width,
    local_search,
    refit,
    wanda_channels,
)


def _problem(seed=0, tokens=600, channels=48, hidden=16):
    generator = torch.Generator().manual_seed(seed)
    mixing = torch.randn(channels, channels, generator=generator) / channels**0.5
    x = torch.randn(tokens, channels, generator=generator) @ (
        torch.eye(channels) + mixing
    )  # correlated inputs
    x = x * torch.rand(channels, generator=generator) * 2
    w = torch.randn(hidden, channels, generator=generator)
    return x, w, x.T @ x


def _direct_error(x, target, keep, fitted):
    return ((target - x[:, keep] @ fitted.T) ** 2).sum().item()


def test_gram_objective_and_refit_match_a_direct_least_squares_solve():
    x, w, gram = _problem()
    keep = torch.tensor([0, 3, 5, 8, 13, 21, 30, 40])
    problem = Reconstruction.of_layer(w, gram)
    fitted = refit(problem, keep, 0.0)
    direct = torch.linalg.lstsq(x[:, keep], x @ w.T).solution.T
    assert torch.allclose(fitted, direct, atol=1e-3)
    direct_error = _direct_error(x, x @ w.T, keep, fitted)
    assert abs(error(problem, keep, fitted) - direct_error) <= 1e-3 * direct_error


def test_the_dampening_pulls_toward_the_original_weights_when_asked():
    """min ‖XWᵀ − X_S W_Sᵀ‖² + λ‖W_S − W⁰_S‖²: the normal equations W_S (G_SS + λI) = C_S + λW⁰_S."""
    _, w, gram = _problem(2)
    keep = torch.arange(0, 48, 3)
    toward_weight = refit(Reconstruction.of_layer(w, gram, toward_weight=True), keep, 0.05)
    sub = gram[keep][:, keep].double()
    strength = 0.05 * sub.diagonal().mean()
    system = sub + strength * torch.eye(len(keep), dtype=sub.dtype)
    rhs = (w.double() @ gram.double())[:, keep] + strength * w.double()[:, keep]
    torch.testing.assert_close(
        toward_weight.double(), torch.linalg.solve(system, rhs.T).T, rtol=1e-3, atol=1e-4
    )
    toward_zero = refit(Reconstruction.of_layer(w, gram), keep, 0.05)
    assert (toward_weight - w[:, keep]).norm() < (toward_zero - w[:, keep]).norm()


def test_a_foreign_target_is_fitted_through_its_cross_product():
    """Inputs that drifted (x) rebuilding another stream's output (y): the Gram form == lstsq."""
    x, w, gram = _problem(1)
    y = (x + 0.3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(5))) @ w.T
    problem = Reconstruction(gram, y.T @ x, float(y.square().sum()))
    keep = torch.arange(0, 48, 2)
    fitted = refit(problem, keep, 0.0)
    assert torch.allclose(fitted, torch.linalg.lstsq(x[:, keep], y).solution.T, atol=1e-3)
    direct_error = _direct_error(x, y, keep, fitted)
    assert abs(error(problem, keep, fitted) - direct_error) <= 1e-3 * direct_error


def test_greedy_elimination_one_at_a_time_matches_brute_force_removal():
    """Each single-channel step must remove exactly the channel a brute-force refit would."""
    _, w, gram = _problem(2, channels=12, hidden=5)
    problem = Reconstruction.of_layer(w, gram)
    alive = list(range(12))
    for _ in range(5):  # five brute-force steps
        costs = {
            c: error(problem, torch.tensor(trial), refit(problem, torch.tensor(trial), 0.01))
            for c in alive
            for trial in [[a for a in alive if a != c]]
        }
        alive.remove(min(costs, key=costs.get))
    greedy = greedy_channels(problem, 7, 0.01, steps=5)
    assert greedy.tolist() == sorted(alive)


def test_greedy_start_beats_wanda_start_and_search_never_gets_worse():
    for seed in range(3):
        _, w, gram = _problem(seed)
        problem = Reconstruction.of_layer(w, gram)
        start = wanda_channels(w, gram, 32)
        plain = error(problem, start, w[:, start])
        keep, history = local_search(problem, start, 0.01, swaps=10)
        assert history[0] < plain  # the refit alone already rebuilds the output better
        assert all(b <= a for a, b in itertools.pairwise(history))
        assert history[-1] == error(problem, keep, refit(problem, keep, 0.01))
        assert len(set(keep.tolist())) == 32
        greedy = greedy_channels(problem, 32, 0.01)
        assert greedy.numel() == 32 and len(set(greedy.tolist())) == 32
        assert error(problem, greedy, refit(problem, greedy, 0.01)) < history[0]


def test_kept_width_rounds_to_kernel_friendly_sizes():
    assert kept_width(1536, 0.25, 64) == 1152
    assert kept_width(1536, 0.2, 64) == 1216
    assert kept_width(100, 0.99, 1) == 1
    assert kept_width(48, 0.5, 64) == 48

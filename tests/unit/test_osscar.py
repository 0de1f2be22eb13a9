"""OSSCAR's pieces: the Gram-form objective, the least-squares refit, and a search that never gets worse."""

import itertools

import torch

from secateur.structured.osscar import error, kept_width, local_search, refit, wanda_channels


def _problem(seed=0, tokens=600, channels=48, hidden=16):
    generator = torch.Generator().manual_seed(seed)
    mixing = torch.randn(channels, channels, generator=generator) / channels**0.5
    x = torch.randn(tokens, channels, generator=generator) @ (
        torch.eye(channels) + mixing
    )  # correlated inputs
    x = x * torch.rand(channels, generator=generator) * 2
    w = torch.randn(hidden, channels, generator=generator)
    return x, w, x.T @ x


def test_gram_objective_and_refit_match_a_direct_least_squares_solve():
    x, w, gram = _problem()
    keep = torch.tensor([0, 3, 5, 8, 13, 21, 30, 40])
    fitted = refit(w, gram, keep, 0.0)
    direct = torch.linalg.lstsq(x[:, keep], x @ w.T).solution.T
    assert torch.allclose(fitted, direct, atol=1e-3)
    target = x @ w.T
    direct_error = ((target - x[:, keep] @ fitted.T) ** 2).sum().item()
    assert abs(error(w, gram, keep, fitted) - direct_error) <= 1e-3 * direct_error


def test_refit_beats_wanda_selection_without_refit_and_search_never_gets_worse():
    for seed in range(3):
        _, w, gram = _problem(seed)
        start = wanda_channels(w, gram, 32)
        plain = error(w, gram, start, w[:, start])
        keep, history = local_search(w, gram, start, 0.01, swaps=10)
        assert history[0] < plain  # the refit alone already rebuilds the output better
        assert all(b <= a for a, b in itertools.pairwise(history))
        assert history[-1] == error(w, gram, keep, refit(w, gram, keep, 0.01))
        assert len(set(keep.tolist())) == 32


def test_kept_width_rounds_to_kernel_friendly_sizes():
    assert kept_width(1536, 0.25, 64) == 1152
    assert kept_width(1536, 0.2, 64) == 1216
    assert kept_width(100, 0.99, 1) == 1
    assert kept_width(48, 0.5, 64) == 48

"""OSSCAR-style MLP channel pruning with layer-wise reconstruction (Meng et al., 2024, arXiv:2403.12983).

For one MLP, with X (tokens, m) the inputs of down_proj and W (h, m) its weight, choose the set S of
k channels to keep so that down_proj's output XWᵀ is rebuilt best once the kept columns are refit
by least squares:

    W_S = W G[:, S] (G_SS + Λ)⁻¹,   error(S) = ‖XWᵀ − X_S W_Sᵀ‖²  (all through G = XᵀX)

Λ is `damp_percent` times the diagonal of G_SS (dampening relative to each channel's scale). The
search starts from the Wanda channel ranking (‖W_:,c‖₂·‖X_c‖₂) and improves it by swap moves, as
OSSCAR's local search does: the kept channels contributing least and the pruned channels best
correlated with the current residual are tried in pairs, and the best improving swap is taken until
none improves, so the objective never increases. Everything is computed from G (m x m), never from X.
"""

from __future__ import annotations

import torch


def damped(gram: torch.Tensor, keep: torch.Tensor, damp: float) -> torch.Tensor:
    sub = gram[keep][:, keep]
    return sub + damp * sub.diagonal().mean().clamp_min(1e-8) * torch.eye(
        len(keep), dtype=sub.dtype, device=sub.device
    )


def refit(
    weight: torch.Tensor, gram: torch.Tensor, keep: torch.Tensor, damp: float, wg: torch.Tensor | None = None
) -> torch.Tensor:
    """Least-squares weights (h, k) of the kept columns: W G[:, S] (G_SS + Λ)⁻¹ (fp32).

    `wg`: W G, when the caller already has it (the search reuses it for every trial)."""
    rhs = (wg if wg is not None else weight @ gram)[:, keep]  # (h, k)
    factor = torch.linalg.cholesky(damped(gram, keep, damp))
    return torch.cholesky_solve(rhs.T, factor).T


def error(
    weight: torch.Tensor,
    gram: torch.Tensor,
    keep: torch.Tensor,
    kept_weight: torch.Tensor,
    wg: torch.Tensor | None = None,
) -> float:
    """‖XWᵀ − X_S W_Sᵀ‖² through G (symmetric), for any kept weights (refit or not).

    = tr(W G Wᵀ) − 2 tr(W_S (W G)[:, S]ᵀ) + tr(W_S G_SS W_Sᵀ); with `wg` = W G given, a trial
    costs one (h, k, k) product instead of three (h, m, m)-sized ones."""
    wg = wg if wg is not None else weight @ gram
    full = (wg * weight).sum()
    cross = (kept_weight * wg[:, keep]).sum()
    own = (kept_weight @ gram[keep][:, keep] * kept_weight).sum()
    return float(full - 2 * cross + own)


def wanda_channels(weight: torch.Tensor, gram: torch.Tensor, k: int) -> torch.Tensor:
    """The k channels with the largest ‖W_:,c‖₂·‖X_c‖₂, sorted."""
    score = weight.norm(dim=0) * gram.diagonal().clamp_min(0).sqrt()
    return torch.sort(torch.topk(score, k).indices).values


def local_search(
    weight: torch.Tensor, gram: torch.Tensor, keep: torch.Tensor, damp: float, swaps: int, width: int = 3
) -> tuple[torch.Tensor, list[float]]:
    """Improve `keep` by swaps; returns (keep, objective after each accepted swap, start first)."""
    weight, gram = weight.float(), gram.float()
    wg = weight @ gram
    keep = torch.sort(keep).values
    best = error(weight, gram, keep, refit(weight, gram, keep, damp, wg), wg)
    history = [best]
    for _ in range(swaps):
        fitted = refit(weight, gram, keep, damp, wg)
        pruned = torch.ones(gram.shape[0], dtype=torch.bool, device=gram.device)
        pruned[keep] = False
        dropped = pruned.nonzero().flatten()
        if dropped.numel() == 0:
            break
        # Kept channels whose refit columns carry least output energy; pruned channels whose inputs
        # correlate most with what the kept ones fail to rebuild (residual ⟂ span, through G).
        contribution = fitted.pow(2).sum(0) * gram[keep, keep]
        residual = wg[:, dropped] - fitted @ gram[keep][:, dropped]  # (h, pruned)
        gain = residual.pow(2).sum(0) / gram[dropped, dropped].clamp_min(1e-8)
        outs = keep[torch.topk(-contribution, min(width, keep.numel())).indices]
        ins = dropped[torch.topk(gain, min(width, dropped.numel())).indices]
        candidate, candidate_error = None, best
        for out in outs.tolist():
            for new in ins.tolist():
                trial = torch.sort(
                    torch.cat([keep[keep != out], torch.tensor([new], device=keep.device)])
                ).values
                value = error(weight, gram, trial, refit(weight, gram, trial, damp, wg), wg)
                if value < candidate_error - 1e-9 * abs(candidate_error):
                    candidate, candidate_error = trial, value
        if candidate is None:
            break
        keep, best = candidate, candidate_error
        history.append(best)
    return keep, history


def kept_width(size: int, ratio: float, round_to: int) -> int:
    """Channels kept after removing `ratio`, rounded to a multiple of `round_to` (at least one)."""
    if round_to >= size:
        return size
    return max(round_to, round(size * (1 - ratio) / round_to) * round_to)

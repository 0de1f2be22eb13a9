"""Three-tier block sparsity: every BxB tile is DENSE, N:M inside the tile, or TOPK (k weights kept).

A tile's score is the sum of its weights' scores (Wanda's |W|·‖X‖ by default); within one matrix all
tiles have B² weights, so sums rank like means. Scores of weights already pruned are zero, so an N:M
tile is scored on its kept weights only, as the progressive three-tier recipe prescribes.

Tier shares are exact per matrix up to rounding to whole tiles: with n tiles, the lowest
round(topk·n) tiles are TOPK and the lowest round((topk+nm)·n) are not DENSE. Rounding the
cumulative shares keeps the counts monotone over a schedule in which dense never rises and topk
never falls, so tiers only ever move down.

Everything here is a pure tensor function over tile views (no Python loop over tiles).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from secateur.errors import SecateurError
from secateur.patterns.base import Pattern
from secateur.patterns.nm import NM
from secateur.registry import register

DENSE, MID, TOPK = 0, 1, 2  # int8 tier codes, in the order tiers degrade
TIER_NAMES = ("dense", "nm", "topk")
DEFAULT_SHARES = (0.35, 0.45, 0.20)  # the progressive recipe's final mix
DEFAULT_TILE = 16
DEFAULT_TOPK = 10


def parse_shares(text: str | tuple | list | None) -> tuple[float, float, float]:
    """'0.35,0.45,0.20' -> (dense, nm, topk); each in [0, 1], summing to 1 (±1e-6)."""
    if text is None:
        return DEFAULT_SHARES
    parts = text if isinstance(text, (tuple, list)) else str(text).split(",")
    try:
        shares = tuple(float(p) for p in parts)
    except ValueError:
        raise SecateurError(
            f"--tiers takes three fractions DENSE,NM,TOPK like 0.35,0.45,0.20, got {text!r}"
        ) from None
    if len(shares) != 3:
        raise SecateurError(f"--tiers takes three fractions DENSE,NM,TOPK like 0.35,0.45,0.20, got {text!r}")
    if not all(0.0 <= s <= 1.0 for s in shares):
        raise SecateurError(f"--tiers fractions must each lie in [0, 1], got {text!r}")
    if abs(sum(shares) - 1.0) > 1e-6:
        raise SecateurError(f"--tiers fractions must sum to 1, got {text!r} (sum {sum(shares):.6g})")
    return shares  # type: ignore[return-value]


def tier_counts(tiles: int, shares: tuple[float, float, float]) -> tuple[int, int, int]:
    """(dense, nm, topk) tile counts for a matrix of `tiles` tiles, from cumulative shares."""
    topk = round(shares[2] * tiles)
    not_dense = max(topk, round((1.0 - shares[0]) * tiles))
    return tiles - not_dense, not_dense - topk, topk


def tile_view(x: torch.Tensor, size: int) -> torch.Tensor:
    """(R, C) -> (R/B, C/B, B*B): each tile's weights, row-major inside the tile. A copy."""
    rows, cols = x.shape
    return (
        x.reshape(rows // size, size, cols // size, size)
        .permute(0, 2, 1, 3)
        .reshape(rows // size, cols // size, size * size)
    )


def untile(tiles: torch.Tensor, size: int) -> torch.Tensor:
    """Inverse of `tile_view`: (R/B, C/B, B*B) -> (R, C)."""
    rt, ct, _ = tiles.shape
    return tiles.reshape(rt, ct, size, size).permute(0, 2, 1, 3).reshape(rt * size, ct * size)


def tile_sums(scores: torch.Tensor, size: int) -> torch.Tensor:
    """(R, C) -> (R/B, C/B) fp32 sum of each tile's scores."""
    rows, cols = scores.shape
    return scores.float().reshape(rows // size, size, cols // size, size).sum(dim=(1, 3))


def degrade(
    tiers: torch.Tensor, tile_scores: torch.Tensor, source: int, target: int, count: int
) -> torch.Tensor:
    """Move the `count` lowest-scoring tiles of tier `source` to tier `target` (ties: lowest index)."""
    if count <= 0:
        return tiers.clone()
    candidates = tiers.flatten() == source
    available = int(candidates.sum())
    if count > available:
        raise SecateurError(
            f"cannot move {count} tiles from {TIER_NAMES[source]} to {TIER_NAMES[target]}: only {available} "
            f"are {TIER_NAMES[source]} (tiers only move down: check the schedule)"
        )
    ranked = tile_scores.flatten().masked_fill(~candidates, float("inf"))
    order = torch.argsort(ranked, stable=True)[:count]
    out = tiers.flatten().clone()
    out[order] = target
    return out.reshape(tiers.shape)


@register("pattern", "tiered")
@dataclass(frozen=True)
class Tiered(Pattern):
    kind: ClassVar[str] = "tiered"
    """Per-tile tiers. `shares` = (dense, nm, topk) fractions of the tiles of every matrix."""

    size: int = DEFAULT_TILE
    shares: tuple[float, float, float] = DEFAULT_SHARES
    topk: int = DEFAULT_TOPK
    nm: NM = NM(2, 4)  # noqa: RUF009 - a frozen dataclass, safe to share

    def __post_init__(self) -> None:
        if self.size < 2:
            raise SecateurError(f"tiered:{self.size}: tiles need B >= 2, e.g. tiered:16")
        if self.size % self.nm.m:
            raise SecateurError(
                f"tile size {self.size} is not a multiple of M={self.nm.m}: N:M groups must lie inside tiles"
            )
        kept_by_nm = self.size * self.size * self.nm.n // self.nm.m
        if not 0 <= self.topk <= kept_by_nm:
            raise SecateurError(
                f"--topk {self.topk} must be between 0 and {kept_by_nm} (the weights a "
                f"{self.size}x{self.size} tile keeps under {self.nm.spec})"
            )
        object.__setattr__(self, "shares", parse_shares(self.shares))

    @classmethod
    def from_arg(cls, arg: str | None) -> Tiered:
        if arg is None:
            return cls()
        if not arg.strip().isdigit():
            raise SecateurError(f"malformed pattern 'tiered:{arg}': use tiered or tiered:B, e.g. tiered:16")
        return cls(size=int(arg))

    def configured(self, config) -> Tiered:
        return Tiered(
            size=self.size,
            shares=parse_shares(getattr(config, "tiers", None)),
            topk=getattr(config, "topk", self.topk),
            nm=_parse_nm(getattr(config, "tier_nm", self.nm.spec)),
        )

    @property
    def spec(self) -> str:
        return f"tiered:{self.size}"

    @property
    def sparsity(self) -> float:
        _, nm_share, topk_share = self.shares
        return nm_share * self.nm.sparsity + topk_share * (1.0 - self.topk / self.size**2)

    def resolve_sparsity(self, requested: float | None) -> float:
        if requested is not None and abs(requested - self.sparsity) > 1e-9:
            raise SecateurError(
                f"pattern tiered with --tiers {','.join(f'{s:g}' for s in self.shares)} "
                f"and --topk {self.topk} "
                f"gives sparsity {self.sparsity:.4f}; set the mix with --tiers instead of --sparsity"
            )
        return self.sparsity

    def check_shape(self, shape: tuple[int, ...], name: str) -> None:
        if shape[0] % self.size or shape[1] % self.size:
            raise SecateurError(
                f"{name} ({shape[0]}x{shape[1]}) does not divide into {self.size}x{self.size} tiles: "
                f"choose a tile size that divides both sides, or skip this layer"
            )

    # -- masks from tiers -------------------------------------------------------------------------

    def assign(self, scores: torch.Tensor, shares: tuple[float, float, float] | None = None) -> torch.Tensor:
        """One-shot: (R, C) scores -> (R/B, C/B) int8 tiers; lowest tiles TOPK, next N:M, rest DENSE."""
        sums = tile_sums(scores, self.size)
        _, nm_n, topk_n = tier_counts(sums.numel(), shares or self.shares)
        tiers = torch.full(sums.shape, DENSE, dtype=torch.int8, device=scores.device)
        tiers = degrade(tiers, sums, DENSE, TOPK, topk_n)
        return degrade(tiers, sums, DENSE, MID, nm_n)

    def _tiles(self, x: torch.Tensor) -> torch.Tensor:
        """(R, C) -> (tiles, B*B), tiles in row-major order (as `tiers.flatten()`)."""
        return tile_view(x, self.size).reshape(-1, self.size * self.size)

    def _untiles(self, flat: torch.Tensor, tiers: torch.Tensor) -> torch.Tensor:
        return untile(flat.reshape(*tiers.shape, -1), self.size)

    def _remask_moved(
        self, scores: torch.Tensor, keep: torch.Tensor, before: torch.Tensor, after: torch.Tensor
    ) -> None:
        """Tile space (tiles, B*B): choose the mask of every tile whose tier changed, in place.

        Only moved tiles are touched: a tile that stays N:M or top-k keeps its mask, and a moved
        tile chooses among the weights it still keeps, so nothing is ever revived.
        """
        before, after = before.flatten(), after.flatten()
        for tier, keep_count, group in ((MID, self.nm.n, self.nm.m), (TOPK, self.topk, self.size**2)):
            moved = ((after == tier) & (before != tier)).nonzero().flatten()
            if moved.numel() == 0:
                continue
            alive = keep[moved]
            ranked = scores[moved].masked_fill(~alive, float("-inf")).reshape(moved.numel(), -1, group)
            best = torch.topk(ranked, keep_count, dim=-1).indices
            chosen = torch.zeros_like(ranked, dtype=torch.bool).scatter_(-1, best, True)
            keep[moved] = chosen.reshape(moved.numel(), -1) & alive

    def keep_mask(
        self,
        scores: torch.Tensor,
        tiers: torch.Tensor,
        kept: torch.Tensor | None = None,
        before: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Bool keep-mask (R, C) for tier map `tiers`; inside N:M and TOPK tiles the best scores stay.

        `kept`: weights still alive (default all); `before`: their tiers (default all dense). Tiles
        whose tier did not change keep `kept` as it is.
        """
        flat_scores = self._tiles(scores.float())
        keep = (
            self._tiles(kept).clone() if kept is not None else torch.ones_like(flat_scores, dtype=torch.bool)
        )
        before = torch.full_like(tiers, DENSE) if before is None else before
        self._remask_moved(flat_scores, keep, before, tiers)
        return self._untiles(keep, tiers)

    def progress(
        self,
        scores: torch.Tensor,
        tiers: torch.Tensor,
        kept: torch.Tensor,
        shares: tuple[float, float, float],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One progressive step: (new tiers, new keep-mask) reaching `shares` from the current state.

        Stage 1 degrades the lowest DENSE tiles to N:M; stage 2 rescores every N:M tile on the weights
        it keeps (the new ones after their N:M mask) and degrades the lowest to TOPK.
        """
        dense_n, _, topk_n = tier_counts(tiers.numel(), shares)
        now_dense = int((tiers == DENSE).sum())
        if now_dense < dense_n:
            raise SecateurError(f"{now_dense} tiles are dense but {dense_n} should be: tiers never move up")
        flat_scores = self._tiles(scores.float())
        keep = self._tiles(kept).clone()

        def sums() -> torch.Tensor:  # each tile's score over the weights it keeps
            return flat_scores.masked_fill(~keep, 0.0).sum(-1).reshape(tiers.shape)

        stage1 = degrade(tiers, sums(), DENSE, MID, now_dense - dense_n)
        self._remask_moved(flat_scores, keep, tiers, stage1)
        now_topk = int((stage1 == TOPK).sum())
        if now_topk > topk_n:
            raise SecateurError(f"{now_topk} tiles are top-k but {topk_n} should be: tiers never move up")
        stage2 = degrade(stage1, sums(), MID, TOPK, topk_n - now_topk)
        self._remask_moved(flat_scores, keep, stage1, stage2)
        return stage2, self._untiles(keep, tiers)

    def mask(self, scores: torch.Tensor, sparsity: float) -> torch.Tensor:
        return self.keep_mask(scores, self.assign(scores))

    # -- verification -----------------------------------------------------------------------------

    def tier_violations(self, weight: torch.Tensor, tiers: torch.Tensor) -> int:
        """Tiles holding more nonzeros than their tier allows (N:M broken, or over k in TOPK)."""
        nonzero = (weight != 0).float()
        groups = tile_view(nonzero, self.size).reshape(*tiers.shape, -1, self.nm.m).sum(-1)
        nm_broken = (groups > self.nm.n).any(-1)
        over_k = tile_view(nonzero, self.size).sum(-1) > self.topk
        return int(((tiers == MID) & nm_broken).sum() + ((tiers == TOPK) & over_k).sum())

    def pruned_per_matrix(self, shape: tuple[int, int], sparsity: float) -> int:
        tiles = (shape[0] // self.size) * (shape[1] // self.size)
        _, nm_n, topk_n = tier_counts(tiles, self.shares)
        area = self.size * self.size
        return nm_n * (area - area * self.nm.n // self.nm.m) + topk_n * (area - self.topk)

    def sparsity_tolerance(self, shape: tuple[int, int]) -> float:
        return self.size * self.size / (shape[0] * shape[1])  # shares round to whole tiles

    def structure_violations(self, weight: torch.Tensor) -> int:
        return 0  # every tile fits some tier; `tier_violations` checks against the tier map

    def structure_details(self, weight: torch.Tensor) -> dict[str, int]:
        """Tiles by the tier their nonzeros fit most tightly (a report; the tier map is the truth)."""
        nonzero = (weight != 0).float()
        per_tile = tile_view(nonzero, self.size)
        count = per_tile.sum(-1)
        groups = per_tile.reshape(*count.shape, -1, self.nm.m).sum(-1)
        topk = count <= self.topk
        mid = ~topk & (groups <= self.nm.n).all(-1)
        return {
            "tiles": count.numel(),
            "tiles_dense": int((~topk & ~mid).sum()),
            "tiles_nm": int(mid.sum()),
            "tiles_topk": int(topk.sum()),
        }


def _parse_nm(text: str) -> NM:
    from secateur.patterns.parse import parse_pattern

    pattern = parse_pattern(text)
    if not isinstance(pattern, NM):
        raise SecateurError(f"--tier-nm must be an N:M pattern such as 2:4 or 4:8, got {text!r}")
    return pattern


def tier_shares(tiers: torch.Tensor) -> dict[str, float]:
    """Fraction of tiles in each tier."""
    total = max(tiers.numel(), 1)
    return {name: int((tiers == code).sum()) / total for code, name in enumerate(TIER_NAMES)}

"""Block sparsity: whole BxB tiles of a weight matrix are kept or zeroed together.

A tile's score is the mean of its element scores (the block-wise Wanda recipe; for SparseGPT the
OBS saliency), so edge tiles smaller than BxB compete fairly. The lowest tiles are pruned until the
pruned weights, counted by each tile's real size, are as close to the target as one tile allows.
Tiles map onto block-sparse kernels (Gray et al., 2017; "Block Pruning For Faster Transformers",
Lagunas et al., 2021).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from secateur.errors import SecateurError
from secateur.patterns.base import Pattern
from secateur.patterns.unstructured import DEFAULT_SPARSITY
from secateur.registry import register


def _tile_sizes(length: int, size: int, device: torch.device) -> torch.Tensor:
    """Lengths of the tiles along one axis: size, size, ..., remainder."""
    count = -(-length // size)
    sizes = torch.full((count,), size, dtype=torch.float32, device=device)
    sizes[-1] = length - size * (count - 1)
    return sizes


def tile_means(scores: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """scores (R, C) -> (mean score per tile, weights per tile), both (ceil(R/B), ceil(C/B)) fp32."""
    rows, cols = scores.shape
    rt, ct = -(-rows // size), -(-cols // size)
    padded = torch.zeros(rt * size, ct * size, dtype=torch.float32, device=scores.device)
    padded[:rows, :cols] = scores
    sums = padded.reshape(rt, size, ct, size).sum(dim=(1, 3))
    counts = torch.outer(_tile_sizes(rows, size, scores.device), _tile_sizes(cols, size, scores.device))
    return sums / counts, counts


def expand_tiles(tile_keep: torch.Tensor, size: int, shape: tuple[int, int]) -> torch.Tensor:
    """(Rt, Ct) bool -> (R, C) bool, each tile's value repeated over its weights."""
    full = tile_keep.repeat_interleave(size, 0).repeat_interleave(size, 1)
    return full[: shape[0], : shape[1]]


def choose_tiles(means: torch.Tensor, counts: torch.Tensor, target: float) -> torch.Tensor:
    """Prune the lowest-mean tiles until the pruned weights are closest to `target` (in weights)."""
    order = torch.argsort(means.flatten(), stable=True)
    cumulative = torch.cumsum(counts.flatten()[order], 0)
    below = int(torch.searchsorted(cumulative, torch.tensor(target, device=cumulative.device), right=True))
    # Taking one more tile may land closer to the target than stopping below it.
    if below < cumulative.numel():
        under = target - (float(cumulative[below - 1]) if below else 0.0)
        over = float(cumulative[below]) - target
        below += int(over < under)
    keep = torch.ones(means.numel(), dtype=torch.bool, device=means.device)
    keep[order[:below]] = False
    return keep.reshape(means.shape)


DEFAULT_BLOCK = 16


@register("pattern", "block")
@dataclass(frozen=True)
class Block(Pattern):
    kind: ClassVar[str] = "block"
    size: int
    extra_zeros_allowed = False  # zeros must come in whole tiles

    def __post_init__(self) -> None:
        if self.size < 2:
            raise SecateurError(
                f"block:{self.size} is not a tile size: use block:B with B >= 2, e.g. block:16"
            )

    @classmethod
    def from_arg(cls, arg: str | None) -> Block:
        if arg is None:
            return cls(DEFAULT_BLOCK)  # bare `block`, as the block-wise Wanda guide's default
        if not arg.strip().isdigit():
            raise SecateurError(
                f"malformed block pattern 'block:{arg or ''}': use block:B with a whole B, e.g. block:16"
            )
        return cls(int(arg))

    @property
    def spec(self) -> str:
        return f"block:{self.size}"

    def resolve_sparsity(self, requested: float | None) -> float:
        return DEFAULT_SPARSITY if requested is None else requested

    def check_shape(self, shape: tuple[int, ...], name: str) -> None:
        if self.size > min(shape):
            raise SecateurError(
                f"block:{self.size} is larger than {name} ({shape[0]}x{shape[1]}): choose a smaller tile"
            )

    def mask(self, scores: torch.Tensor, sparsity: float) -> torch.Tensor:
        means, counts = tile_means(scores.float(), self.size)
        tile_keep = choose_tiles(means, counts, sparsity * scores.numel())
        return expand_tiles(tile_keep, self.size, tuple(scores.shape))

    def pruned_per_matrix(self, shape: tuple[int, int], sparsity: float) -> int:
        """The target; a real mask is within one tile of it (see `sparsity_tolerance`)."""
        return round(sparsity * shape[0] * shape[1])

    def sparsity_tolerance(self, shape: tuple[int, int]) -> float:
        return self.size * self.size / (shape[0] * shape[1])

    def structure_violations(self, weight: torch.Tensor) -> int:
        return 0  # any set of whole tiles is valid; conforming_zeros checks they are whole

    def conforming_zeros(self, weight: torch.Tensor) -> int:
        zero_tiles, counts = self._zero_tiles(weight)
        return int(counts[zero_tiles].sum())

    def structure_details(self, weight: torch.Tensor) -> dict[str, int]:
        zero_tiles, _ = self._zero_tiles(weight)
        return {
            "tiles": zero_tiles.numel(),
            "tiles_pruned": int(zero_tiles.sum()),
            "tiles_kept": int((~zero_tiles).sum()),
        }

    def _zero_tiles(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        nonzero_means, counts = tile_means((weight != 0).float(), self.size)
        return nonzero_means == 0, counts

    def solver_strip_width(self, blocksize: int, cols: int) -> int:
        """The whole matrix: tiles are ranked globally by mean OBS saliency before any update.

        Choosing per strip of B columns would force every strip to the same sparsity, which
        prunes tiles in the columns of outlier features; a global choice, then reconstruction,
        measured a far lower output error.
        """
        return cols

"""Property tests (hypothesis): for random shapes, scores and sparsities, every pattern's mask has
exactly the promised structure and count, and keeps the higher scores."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from secateur.patterns.block import Block
from secateur.patterns.nm import NM
from secateur.patterns.unstructured import Unstructured

SETTINGS = settings(max_examples=60, deadline=None)


def _scores(seed: int, rows: int, cols: int) -> torch.Tensor:
    return torch.rand(rows, cols, generator=torch.Generator().manual_seed(seed)) + 0.1  # no zeros, no ties


@SETTINGS
@given(
    seed=st.integers(0, 2**31 - 1),
    rows=st.integers(1, 24),
    cols=st.integers(1, 64),
    sparsity=st.floats(0.0, 0.95),
)
def test_unstructured_removes_exactly_k_lowest_per_row(seed, rows, cols, sparsity):
    scores = _scores(seed, rows, cols)
    pattern = Unstructured()
    keep = pattern.mask(scores, sparsity)
    assert keep.shape == scores.shape and keep.dtype == torch.bool
    assert int((~keep).sum()) == pattern.pruned_per_matrix((rows, cols), sparsity)
    removed = (~keep).sum(1)
    assert bool((removed == removed[0]).all())  # the same count in every row
    for row in range(rows):
        if 0 < int(removed[row]) < cols:
            assert scores[row][~keep[row]].max() < scores[row][keep[row]].min()
    assert pattern.structure_violations(scores * keep) == 0


@SETTINGS
@given(
    seed=st.integers(0, 2**31 - 1),
    rows=st.integers(1, 24),
    groups=st.integers(1, 12),
    nm=st.sampled_from([(1, 2), (2, 4), (4, 8), (1, 4), (3, 8)]),
)
def test_nm_keeps_exactly_n_of_every_m_the_highest(seed, rows, groups, nm):
    n, m = nm
    scores = _scores(seed, rows, groups * m)
    pattern = NM(n, m)
    keep = pattern.mask(scores, pattern.sparsity)
    kept = keep.reshape(rows, groups, m)
    assert bool((kept.sum(-1) == n).all())
    assert int((~keep).sum()) == pattern.pruned_per_matrix(tuple(scores.shape), pattern.sparsity)
    grouped = scores.reshape(rows, groups, m)
    lowest_kept = grouped.masked_fill(~kept, float("inf")).min(-1).values
    highest_pruned = grouped.masked_fill(kept, float("-inf")).max(-1).values
    assert bool((highest_pruned < lowest_kept).all())
    assert pattern.structure_violations(scores * keep) == 0
    # One extra nonzero in a group is a violation.
    broken = scores * keep
    broken[0, :m] = 1.0
    assert pattern.structure_violations(broken) >= (1 if n < m else 0)


@SETTINGS
@given(
    seed=st.integers(0, 2**31 - 1),
    size=st.sampled_from([2, 4, 8, 16]),
    rows_extra=st.integers(0, 20),
    cols_extra=st.integers(0, 20),
    sparsity=st.floats(0.0, 0.95),
)
def test_block_zeroes_whole_tiles_to_the_promised_count(seed, size, rows_extra, cols_extra, sparsity):
    rows, cols = size + rows_extra, size + cols_extra
    scores = _scores(seed, rows, cols)
    pattern = Block(size)
    keep = pattern.mask(scores, sparsity)
    assert keep.shape == scores.shape
    for r in range(0, rows, size):
        for c in range(0, cols, size):
            tile = keep[r : r + size, c : c + size]
            assert bool(tile.all()) or not bool(tile.any())  # all or nothing, edge tiles included
    # Whole tiles cannot always hit the target: within one tile of it, and the lowest-mean tiles go.
    pruned, target = int((~keep).sum()), pattern.pruned_per_matrix((rows, cols), sparsity)
    assert abs(pruned - target) <= pattern.sparsity_tolerance((rows, cols)) * rows * cols
    means = {
        (r, c): float(scores[r : r + size, c : c + size].mean())
        for r in range(0, rows, size)
        for c in range(0, cols, size)
    }
    gone = [m for (r, c), m in means.items() if not keep[r, c]]
    kept = [m for (r, c), m in means.items() if keep[r, c]]
    if gone and kept:
        assert max(gone) <= min(kept)
    assert (
        pattern.structure_violations(scores * keep) == 0 and pattern.conforming_zeros(scores * keep) == pruned
    )

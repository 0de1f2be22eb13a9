import itertools

import pytest
import torch

from secateur.errors import SecateurError
from secateur.patterns.block import Block, tile_means
from secateur.patterns.parse import parse_pattern


def plain_tile_means(scores, b):
    rows, cols = scores.shape
    out = {}
    for r0, c0 in itertools.product(range(0, rows, b), range(0, cols, b)):
        tile = scores[r0 : r0 + b, c0 : c0 + b]
        out[(r0 // b, c0 // b)] = (tile.mean().item(), tile.numel())
    return out


@pytest.mark.parametrize(("rows", "cols", "b"), [(32, 48, 16), (37, 50, 16), (20, 9, 4), (8, 8, 8)])
def test_tile_means_match_a_plain_loop_including_edge_tiles(rows, cols, b):
    torch.manual_seed(0)
    scores = torch.rand(rows, cols)
    means, counts = tile_means(scores, b)
    for (i, j), (mean, count) in plain_tile_means(scores, b).items():
        assert means[i, j].item() == pytest.approx(mean, rel=1e-5)
        assert counts[i, j].item() == count


@pytest.mark.parametrize(
    ("rows", "cols", "b", "sparsity"), [(64, 64, 16, 0.5), (37, 50, 16, 0.5), (30, 45, 8, 0.3)]
)
def test_block_masks_are_tile_aligned_and_within_one_tile_of_target(rows, cols, b, sparsity):
    torch.manual_seed(1)
    scores = torch.rand(rows, cols)
    keep = Block(b).mask(scores, sparsity)
    for r0, c0 in itertools.product(range(0, rows, b), range(0, cols, b)):
        tile = keep[r0 : r0 + b, c0 : c0 + b]
        assert tile.all() or not tile.any(), (r0, c0)  # edge tiles too
    pruned = int((~keep).sum())
    assert abs(pruned - sparsity * rows * cols) <= b * b / 2 + 1e-9
    # Every pruned tile has a lower mean than every kept tile.
    tiles = plain_tile_means(scores, b)
    pruned_means = [m for (i, j), (m, _) in tiles.items() if not keep[i * b, j * b]]
    kept_means = [m for (i, j), (m, _) in tiles.items() if keep[i * b, j * b]]
    assert max(pruned_means) <= min(kept_means)


def test_block_report_details_and_conforming_zeros():
    w = torch.ones(32, 32)
    w[:16, :16] = 0  # one whole tile
    w[20, 20] = 0  # a stray zero inside a kept tile
    block = Block(16)
    assert block.structure_details(w) == {"tiles": 4, "tiles_pruned": 1, "tiles_kept": 3}
    assert block.conforming_zeros(w) == 256


def test_block_parsing_and_errors():
    assert parse_pattern("block:16") == Block(16)
    assert parse_pattern("block16") == Block(16)
    assert parse_pattern("BLOCK:8").spec == "block:8"
    assert parse_pattern("block") == Block(16)  # bare, as the block-wise Wanda guide's default
    for bad in ("block:1", "block:0", "block:", "block:x"):
        with pytest.raises(SecateurError):
            parse_pattern(bad)
    with pytest.raises(SecateurError, match="larger than"):
        Block(64).check_shape((32, 128), "q_proj")
    assert Block(16).resolve_sparsity(None) == 0.5

"""Three-tier tiles: shares, masks inside each tier, one-way progression, against loop references."""

import pytest
import torch

from secateur.config import PruneConfig
from secateur.errors import SecateurError
from secateur.patterns.nm import NM
from secateur.patterns.parse import parse_pattern
from secateur.patterns.tiered import (
    DENSE,
    MID,
    TOPK,
    Tiered,
    parse_shares,
    tier_counts,
    tile_sums,
    tile_view,
    untile,
)

B = 8


def _tiles(tensor, size=B):
    """Yield (tile row, tile column, tile) by plain slicing: the reference for the vectorised views."""
    for i in range(tensor.shape[0] // size):
        for j in range(tensor.shape[1] // size):
            yield i, j, tensor[i * size : (i + 1) * size, j * size : (j + 1) * size]


def test_tile_views_round_trip_and_sums_match_slicing():
    x = torch.randn(24, 40)
    assert torch.equal(untile(tile_view(x, B), B), x)
    sums = tile_sums(x, B)
    for i, j, tile in _tiles(x):
        assert torch.equal(tile_view(x, B)[i, j], tile.flatten())
        assert sums[i, j].item() == pytest.approx(tile.sum().item(), abs=1e-5)


@pytest.mark.parametrize("tiles", [1, 7, 15, 60, 144])
def test_tier_counts_cover_every_tile_and_move_one_way_along_a_schedule(tiles):
    schedule = [
        (1, 0, 0),
        (0.9, 0.1, 0),
        (0.8, 0.1, 0.1),
        (0.65, 0.2, 0.15),
        (0.5, 0.3, 0.2),
        (0.35, 0.45, 0.2),
    ]
    previous = (tiles, 0, 0)
    for shares in schedule:
        dense, mid, topk = tier_counts(tiles, shares)
        assert dense + mid + topk == tiles
        for count, share in zip((dense, mid, topk), shares, strict=True):
            assert abs(count - share * tiles) <= 1  # exact per matrix, within one tile
        assert dense <= previous[0] and topk >= previous[2]
        previous = (dense, mid, topk)


def test_one_shot_assignment_and_masks_match_a_loop_reference():
    torch.manual_seed(0)
    scores = torch.rand(48, 64)
    pattern = Tiered(size=B, shares=(0.35, 0.45, 0.2), topk=5)
    tiers = pattern.assign(scores)
    keep = pattern.keep_mask(scores, tiers)

    # Reference: rank tiles by summed score with a Python sort; lowest -> TOPK, next -> N:M.
    sums = sorted((float(t.sum()), i, j) for i, j, t in _tiles(scores))
    n = len(sums)
    _dense_n, mid_n, topk_n = tier_counts(n, pattern.shares)
    expected = {}
    for rank, (_, i, j) in enumerate(sums):
        expected[i, j] = TOPK if rank < topk_n else MID if rank < topk_n + mid_n else DENSE
    assert {(i, j): int(tiers[i, j]) for i, j, _ in _tiles(scores)} == expected

    for i, j, tile in _tiles(keep):
        tile_scores = scores[i * B : (i + 1) * B, j * B : (j + 1) * B]
        if expected[i, j] == DENSE:
            assert tile.all()
        elif expected[i, j] == TOPK:
            assert int(tile.sum()) == 5
            assert set(tile.flatten().nonzero().flatten().tolist()) == set(
                torch.topk(tile_scores.flatten(), 5).indices.tolist()
            )
        else:
            groups = tile.reshape(B, B // 4, 4)
            assert (groups.sum(-1) == 2).all()  # 2:4 inside the tile
            best = torch.topk(tile_scores.reshape(B, B // 4, 4), 2, dim=-1).indices
            assert torch.equal(groups.gather(-1, best).all(-1), torch.ones(B, B // 4, dtype=torch.bool))


def test_mask_sparsity_equals_the_tier_mix():
    pattern = Tiered(size=16, shares=(0.35, 0.45, 0.2), topk=10)
    scores = torch.rand(160, 320)
    keep = pattern.mask(scores, pattern.sparsity)
    pruned = int((~keep).sum())
    assert pruned == pattern.pruned_per_matrix((160, 320), pattern.sparsity)
    assert abs(pruned / keep.numel() - pattern.sparsity) <= pattern.sparsity_tolerance((160, 320))
    assert pattern.sparsity == pytest.approx(0.45 * 0.5 + 0.2 * (1 - 10 / 256))


def test_progression_only_moves_tiers_down_and_never_revives_a_weight():
    torch.manual_seed(1)
    pattern = Tiered(size=B, topk=4)
    weight = torch.randn(64, 96)
    tiers = torch.zeros(8, 12, dtype=torch.int8)
    kept = torch.ones_like(weight, dtype=torch.bool)
    schedule = [(0.9, 0.1, 0), (0.8, 0.1, 0.1), (0.65, 0.2, 0.15), (0.5, 0.3, 0.2), (0.35, 0.45, 0.2)]
    for shares in schedule:
        weight = weight + 0.01 * torch.randn_like(weight) * kept  # "fine-tuning" moves kept weights only
        scores = weight.abs()
        new_tiers, new_kept = pattern.progress(scores, tiers, kept, shares)
        assert (new_tiers >= tiers).all()  # dense -> N:M -> top-k, never back
        assert not (new_kept & ~kept).any()  # a pruned weight stays pruned
        counts = [int((new_tiers == code).sum()) for code in (DENSE, MID, TOPK)]
        assert tuple(counts) == tier_counts(new_tiers.numel(), shares)
        assert pattern.tier_violations(weight * new_kept, new_tiers) == 0
        tiers, kept = new_tiers, new_kept
    for i, j, tile in _tiles(kept):
        if tiers[i, j] == TOPK:
            assert int(tile.sum()) == 4


def test_stage_two_rescores_nm_tiles_on_their_kept_weights_only():
    pattern = Tiered(size=B, topk=4)
    scores = torch.ones(16, 16)
    tiers = torch.tensor([[MID, MID], [DENSE, DENSE]], dtype=torch.int8)
    kept = torch.ones(16, 16, dtype=torch.bool)
    # Tile (0, 0) has the larger total score, but only in weights its 2:4 mask has already pruned.
    scores[:8, :8] = 0.1
    scores[:8, :8].reshape(8, 2, 4)[..., 2:] = 100.0
    kept[:8, :8].reshape(8, 2, 4)[..., 2:] = False
    kept[:8, 8:].reshape(8, 2, 4)[..., 2:] = False
    new_tiers, _ = pattern.progress(scores, tiers, kept, (0.5, 0.25, 0.25))
    assert new_tiers.tolist() == [[TOPK, MID], [DENSE, DENSE]]


def test_tier_violations_find_broken_tiles():
    pattern = Tiered(size=B, topk=3)
    tiers = torch.tensor([[MID, TOPK]], dtype=torch.int8)
    weight = torch.zeros(8, 16)
    weight[:, :8].reshape(8, 2, 4)[..., :2] = 1.0  # valid 2:4
    weight[0, 8:11] = 1.0  # 3 weights: valid top-3
    assert pattern.tier_violations(weight, tiers) == 0
    weight[0, 11] = 1.0  # a 4th weight in the top-k tile
    weight[3, 2] = 1.0  # a 3rd weight in a 2:4 group
    assert pattern.tier_violations(weight, tiers) == 2


def test_configured_from_prune_config_and_sparsity_follows_the_mix():
    config = PruneConfig(pattern="tiered:16", tiers="0.5,0.3,0.2", topk=20, tier_nm="4:8")
    pattern = config.pattern_object()
    assert pattern == Tiered(size=16, shares=(0.5, 0.3, 0.2), topk=20, nm=NM(4, 8))
    assert config.resolved_sparsity() == pytest.approx(0.3 * 0.5 + 0.2 * (1 - 20 / 256))
    assert parse_pattern("tiered").size == 16


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pattern": "tiered", "tiers": "0.5,0.3"}, "three fractions"),
        ({"pattern": "tiered", "tiers": "0.5,0.3,0.3"}, "must sum to 1"),
        ({"pattern": "tiered", "tiers": "1.2,-0.1,-0.1"}, "[0, 1]"),
        ({"pattern": "tiered", "tiers": "a,b,c"}, "three fractions"),
        ({"pattern": "unstructured", "tiers": "0.5,0.3,0.2"}, "--tiers applies to --pattern tiered"),
        ({"pattern": "tiered", "topk": 200}, "--topk 200 must be between 0 and 128"),
        ({"pattern": "tiered:6"}, "not a multiple of M=4"),
        ({"pattern": "tiered:x"}, "malformed pattern"),
        ({"pattern": "tiered", "tier_nm": "unstructured"}, "must be an N:M pattern"),
        ({"pattern": "tiered", "sparsity": 0.5}, "set the mix with --tiers"),
        ({"pattern": "tiered", "method": "sparsegpt"}, "--method sparsegpt takes unstructured, N:M, block"),
        ({"pattern": "tiered", "owl": "5,0.08"}, "--owl varies sparsity"),
    ],
)
def test_bad_tier_settings_fail_before_any_work(kwargs, message):
    with pytest.raises(SecateurError, match=None) as info:
        PruneConfig(**kwargs)
    assert message in str(info.value)


def test_shapes_that_do_not_tile_are_refused():
    with pytest.raises(SecateurError, match="does not divide into 16x16 tiles"):
        Tiered().check_shape((48, 40), "layer 0 q_proj")
    assert parse_shares(None) == (0.35, 0.45, 0.2)

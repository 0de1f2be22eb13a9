import pytest
import torch

from secateur.errors import SecateurError
from secateur.patterns.nm import NM
from secateur.patterns.parse import parse_pattern
from secateur.patterns.unstructured import Unstructured


def test_unstructured_prunes_exactly_the_lowest_per_row():
    torch.manual_seed(0)
    scores = torch.randn(16, 40)
    keep = Unstructured().mask(scores, 0.3)
    assert keep.shape == scores.shape and keep.dtype == torch.bool
    assert (keep.sum(1) == 40 - 12).all()
    for row in range(16):
        pruned = scores[row][~keep[row]]
        kept = scores[row][keep[row]]
        assert pruned.max() < kept.min()


def test_unstructured_forgives_float_noise_and_ties_break_by_column():
    keep = Unstructured().mask(torch.zeros(2, 100), 0.29)  # 0.29 * 100 = 28.999999999999996
    assert (keep.sum(1) == 71).all()
    assert not keep[:, :29].any() and keep[:, 29:].all()  # equal scores: lowest columns go first


def test_zero_sparsity_keeps_everything():
    assert Unstructured().mask(torch.randn(3, 8), 0.0).all()


@pytest.mark.parametrize(("n", "m"), [(2, 4), (4, 8), (1, 4), (3, 8)])
def test_nm_keeps_the_n_best_of_every_m(n, m):
    torch.manual_seed(1)
    scores = torch.randn(12, 64)
    keep = NM(n, m).mask(scores, 1 - n / m)
    groups_keep = keep.reshape(12, -1, m)
    groups = scores.reshape(12, -1, m)
    assert (groups_keep.sum(-1) == n).all()
    kept_min = torch.where(groups_keep, groups, torch.inf).amin(-1)
    pruned_max = torch.where(~groups_keep, groups, -torch.inf).amax(-1)
    assert (pruned_max < kept_min).all()


def test_nm_structure_violations_counts_bad_groups():
    w = torch.ones(2, 8)
    w[0, :2] = 0  # row 0: first group has 2 nonzeros of 4 -> fine for 2:4; second group 4 nonzeros
    pattern = NM(2, 4)
    assert pattern.structure_violations(w) == 3  # (0,1), (1,0), (1,1)
    w = torch.tensor([[0.0, 1, 0, 2, 3, 0, 0, 4]])
    assert pattern.structure_violations(w) == 0


def test_nm_sparsity_is_fixed_and_a_different_request_is_an_error():
    assert NM(2, 4).resolve_sparsity(None) == 0.5
    assert NM(2, 4).resolve_sparsity(0.5) == 0.5
    assert NM(1, 4).resolve_sparsity(None) == 0.75
    with pytest.raises(SecateurError, match=r"always gives sparsity 0\.5"):
        NM(2, 4).resolve_sparsity(0.6)


def test_nm_needs_inputs_divisible_by_m():
    with pytest.raises(SecateurError, match="not a multiple of M=8"):
        NM(4, 8).check_shape((4, 12), "layer 0 q_proj")


@pytest.mark.parametrize("text", ["2:2", "4:2", "0:4", "2:4:1", "a:b", "2-4", "structured", ""])
def test_malformed_patterns_are_errors(text):
    with pytest.raises(SecateurError):
        parse_pattern(text)


def test_parse_pattern():
    assert parse_pattern("unstructured") == Unstructured()
    assert parse_pattern(" 2:4 ") == NM(2, 4)
    assert parse_pattern("4:8").spec == "4:8"
    assert parse_pattern("UNSTRUCTURED").spec == "unstructured"


def test_pruned_per_matrix_matches_masks():
    torch.manual_seed(2)
    scores = torch.randn(6, 24)
    for pattern, sparsity in [(Unstructured(), 0.37), (NM(2, 4), 0.5), (NM(1, 8), 0.875)]:
        keep = pattern.mask(scores, sparsity)
        assert int((~keep).sum()) == pattern.pruned_per_matrix((6, 24), sparsity)


def test_lowest_k_equals_a_stable_sort_even_with_many_ties():
    from secateur.patterns.unstructured import lowest_k_per_row

    torch.manual_seed(3)
    scores = torch.randint(0, 4, (50, 33)).float()  # heavy ties, as with quantized weights
    for k in (1, 7, 16, 32, 33):
        expected = torch.zeros_like(scores, dtype=torch.bool)
        expected.scatter_(1, torch.sort(scores, dim=1, stable=True).indices[:, :k], True)
        assert torch.equal(lowest_k_per_row(scores, k), expected), k

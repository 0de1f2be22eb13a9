"""DSnoT against a literal per-row implementation (Python lists, one row at a time), the patterns it
must keep, the expected error it must shrink, and the method on a tiny model (skip rules, refusals)."""

import pytest
import torch

import secateur
from helpers.tiny import tiny_model
from secateur.config import PruneConfig
from secateur.errors import SecateurError
from secateur.patterns.nm import NM
from secateur.patterns.unstructured import Unstructured
from secateur.scoring.wanda import wanda_scores
from secateur.solvers.dsnot import WINDOW_TOKENS, refine_nm, refine_unstructured


def _problem(rows=8, cols=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(rows, cols, generator=g)
    x = torch.randn(500, cols, generator=g) * torch.rand(cols, generator=g) * 2 + torch.randn(
        cols, generator=g
    )
    mean, var = x.double().mean(0), x.double().var(0, unbiased=False)
    return weight, mean, var, (x.double().square().sum(0)).float()


def _reference_row_unstructured(w, keep, mean, var, importance, cycles, threshold, power):
    """One row, written out: two sorted lists consumed from their ends, one swap per cycle."""
    d = [float(w[j]) * float(mean[j]) for j in range(len(w))]
    keep = list(keep)
    error = sum(d[j] for j in range(len(w)) if not keep[j])
    grow = sorted((j for j in range(len(w)) if not keep[j]), key=lambda j: d[j] / float(var[j]) ** power)
    negatives = sorted((j for j in range(len(w)) if keep[j] and d[j] < 0), key=lambda j: float(importance[j]))
    positives = sorted((j for j in range(len(w)) if keep[j] and d[j] > 0), key=lambda j: float(importance[j]))
    for _ in range(cycles):
        if abs(error) * WINDOW_TOKENS <= threshold or not grow:
            break
        prune_list = negatives if error >= 0 else positives
        if not prune_list:
            break
        g = grow.pop() if error > 0 else grow.pop(0)
        p = prune_list.pop(0)
        keep[g], keep[p] = True, False
        error += d[p] - d[g]
    return keep


def _reference_row_nm(w, keep, mean, var, initial, m, cycles, threshold, power):
    d = [float(w[j]) * float(mean[j]) for j in range(len(w))]
    keep = list(keep)
    error = sum(d[j] for j in range(len(w)) if not keep[j])
    start_sign = (error > 0) - (error < 0)
    grow = sorted((j for j in range(len(w)) if not keep[j]), key=lambda j: d[j] / float(var[j]) ** power)
    prunable = [keep[j] for j in range(len(w))]  # kept at the start and not pruned since
    for _ in range(cycles):
        if abs(error) * WINDOW_TOKENS <= threshold or not grow:
            break
        g = grow[-1] if error > 0 else grow[0]
        start = g - g % m
        options = [j for j in range(start, start + m) if prunable[j]]
        if not options:
            break
        p = min(options, key=lambda j: (float(initial[j]), j))
        after = error + d[p] - d[g]
        if ((after > 0) - (after < 0)) != start_sign:
            break
        grow.remove(g)
        keep[g], keep[p], prunable[p] = True, False, False
        error = after
    return keep


@pytest.mark.parametrize("threshold", [0.0, 0.1, 5.0])
def test_unstructured_matches_a_row_by_row_reference(threshold):
    weight, mean, var, sum_sq = _problem()
    importance = wanda_scores(weight, sum_sq)
    keep = Unstructured().mask(importance, 0.5)
    ours = refine_unstructured(weight, keep, mean, var, importance, max_cycles=6, threshold=threshold)
    for r in range(weight.shape[0]):
        expected = _reference_row_unstructured(
            weight[r], keep[r].tolist(), mean, var, importance[r], 6, threshold, 1.0
        )
        assert ours[r].tolist() == expected, r
    assert not torch.equal(ours, keep) or threshold == 5.0  # it did swap something
    assert torch.equal(ours.sum(1), keep.sum(1))  # every row keeps as many weights


def test_two_four_matches_a_row_by_row_reference_and_stays_two_four():
    weight, mean, var, sum_sq = _problem(seed=1)
    initial = wanda_scores(weight, sum_sq)
    pattern = NM(2, 4)
    keep = pattern.mask(initial, 0.5)
    ours = refine_nm(weight, keep, mean, var, initial, 4, max_cycles=10, threshold=0.0)
    for r in range(weight.shape[0]):
        expected = _reference_row_nm(weight[r], keep[r].tolist(), mean, var, initial[r], 4, 10, 0.0, 1.0)
        assert ours[r].tolist() == expected, r
    assert not torch.equal(ours, keep)
    assert pattern.structure_violations(weight * ours) == 0
    assert torch.equal(ours.view(8, -1, 4).sum(-1), keep.view(8, -1, 4).sum(-1))


def test_refinement_shrinks_the_expected_error():
    weight, mean, var, sum_sq = _problem(rows=64, cols=128, seed=2)
    importance = wanda_scores(weight, sum_sq)

    def total_error(keep):
        return float(((weight.double() * mean) * ~keep).sum(1).abs().sum())

    for pattern in (Unstructured(), NM(2, 4)):
        keep = pattern.mask(importance, 0.5)
        if isinstance(pattern, NM):
            refined = refine_nm(weight, keep, mean, var, importance, 4)
        else:
            refined = refine_unstructured(weight, keep, mean, var, importance)
        assert total_error(refined) < 0.7 * total_error(keep), pattern.spec


def test_dsnot_on_a_model_refines_attention_and_leaves_mlp_with_wandas_mask():
    windows = torch.randint(0, 256, (4, 32), generator=torch.Generator().manual_seed(0))
    wanda, dsnot, everywhere = tiny_model(), tiny_model(), tiny_model()
    secateur.prune(wanda, PruneConfig(method="wanda"), windows, show_progress=False)
    secateur.prune(dsnot, PruneConfig(method="dsnot"), windows, show_progress=False)
    secateur.prune(
        everywhere, PruneConfig(method="dsnot", skip_layer="no_skip"), windows, show_progress=False
    )
    differs = {"self_attn": False, "mlp": False}
    for (name, a), b, c in zip(
        wanda.named_parameters(), dsnot.parameters(), everywhere.parameters(), strict=True
    ):
        if ".layers." not in name or a.dim() != 2:
            continue
        block = "self_attn" if ".self_attn." in name else "mlp"
        if block == "mlp" and ".layers.0." in name:  # later layers see other inputs
            assert torch.equal(a != 0, b != 0), name  # the default skips MLP Linears
        else:
            differs["self_attn"] |= not torch.equal(a != 0, b != 0)
        differs["mlp"] |= block == "mlp" and not torch.equal(a != 0, c != 0)
        assert torch.equal((b != 0).sum(1), (a != 0).sum(1)), name
    assert differs == {"self_attn": True, "mlp": True}


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"pattern": "block:16"}, "--method dsnot takes unstructured, N:M patterns, not block:16"),
        ({"pattern": "tiered"}, "--method dsnot takes unstructured, N:M patterns, not tiered"),
        ({"percdamp": 0.05}, "--percdamp is not used here"),
        ({"initial_method": "owl"}, "--initial-method must be one of"),
        ({"skip_layer": "attention"}, "--skip-layer must be one of"),
        ({"max_cycle_time": -1}, "must be >= 0"),
    ],
)
def test_bad_settings_are_refused_in_one_line(settings, message):
    with pytest.raises(SecateurError, match=message) as error:
        PruneConfig(method="dsnot", **settings)
    assert "\n" not in str(error.value)


def test_dsnot_settings_are_refused_with_another_method():
    with pytest.raises(SecateurError, match="--max-cycle-time is not used here"):
        PruneConfig(method="wanda", max_cycle_time=3)

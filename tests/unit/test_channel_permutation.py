"""RIA's channel permutation: the order by hand, the model's function unchanged by it (dense MLPs,
OPT's biased fc1, Phi-3's fused gate_up, routed and shared experts), and RIA 2:4 with it equal to
RIA 2:4 on a model permuted beforehand."""

import copy

import pytest
import torch

import secateur
from helpers.tiny import tiny_model
from secateur.calibration.stats import InputStats
from secateur.config import PruneConfig
from secateur.errors import SecateurError
from secateur.models.adapter import ModelAdapter
from secateur.patterns.nm import NM
from secateur.scoring.channel_permutation import balanced_order, mlp_groups, permute_mlp_channels
from secateur.scoring.ria import ria_scores


def test_channels_are_dealt_out_one_per_tier_to_each_group():
    importance = torch.tensor([10.0, 1, 9, 2, 8, 3, 7, 4])
    order = balanced_order(importance, 4)  # ranks: 0, 2, 4, 6 | 7, 5, 3, 1
    assert order.tolist() == [0, 4, 7, 3, 2, 6, 5, 1]
    assert sorted(order.tolist()) == list(range(8))


@pytest.mark.parametrize("model_type", ["llama", "opt", "phi3", "qwen2_moe"])
def test_permuting_mlp_channels_keeps_the_function(model_type):
    model = tiny_model(model_type)
    ids = torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = model(ids).logits
    adapter = ModelAdapter(model)
    layer = adapter.decoder_layers()[0]
    with adapter.visiting(layer):
        linears = adapter.linears(layer)
        groups = mlp_groups(linears)
        assert groups, model_type  # every family has at least one MLP found
        generator = torch.Generator().manual_seed(1)
        applied = permute_mlp_channels(
            linears, {}, 4, lambda weight, _: torch.rand(weight.shape[1], generator=generator)
        )
    assert len(applied) == len(groups)
    assert any(not torch.equal(order, torch.arange(order.numel())) for order in applied.values())
    with torch.no_grad():
        after = model(ids).logits
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-5)


def test_ria_two_four_with_permutation_equals_ria_on_the_permuted_model():
    windows = torch.randint(0, 256, (4, 32), generator=torch.Generator().manual_seed(0))
    dense = tiny_model()
    # The order the method must pick for layer 0, from the dense model's own down_proj inputs.
    down = dense.model.layers[0].mlp.down_proj
    seen = InputStats.for_module(down)
    handle = down.register_forward_pre_hook(lambda _, args: seen.add(args[0].reshape(-1, args[0].shape[-1])))
    with torch.no_grad():
        dense(windows)
    handle.remove()
    order = balanced_order(ria_scores(down.weight, seen.sum_sq).sum(0), 4)

    by_hand = copy.deepcopy(dense)
    mlp = by_hand.model.layers[0].mlp
    with torch.no_grad():
        for projection in (mlp.gate_proj, mlp.up_proj):
            projection.weight.copy_(projection.weight[order])
        mlp.down_proj.weight.copy_(mlp.down_proj.weight[:, order])
    secateur.prune(by_hand, PruneConfig(method="ria", pattern="2:4"), windows, show_progress=False)
    permuted = copy.deepcopy(dense)
    config = PruneConfig(method="ria", pattern="2:4", channel_permutation=True)
    secateur.prune(permuted, config, windows, show_progress=False)
    for name in ("gate_proj", "up_proj", "down_proj"):
        ours = getattr(permuted.model.layers[0].mlp, name).weight
        assert torch.equal(ours, getattr(mlp, name).weight), name
        assert NM(2, 4).structure_violations(ours) == 0
    plain = copy.deepcopy(dense)
    secateur.prune(plain, PruneConfig(method="ria", pattern="2:4"), windows, show_progress=False)
    assert not torch.equal(
        plain.model.layers[0].mlp.down_proj.weight, permuted.model.layers[0].mlp.down_proj.weight
    )


def test_permutation_is_refused_without_an_nm_pattern():
    with pytest.raises(SecateurError, match="--channel-permutation spreads channels over N:M groups"):
        PruneConfig(method="ria", channel_permutation=True)
    with pytest.raises(SecateurError, match="--channel-permutation is not used here"):
        PruneConfig(method="wanda", pattern="2:4", channel_permutation=True)

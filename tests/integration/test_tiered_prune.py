"""One-shot tiered pruning through the pipeline and the CLI: exact shares, tier maps written and true."""

import pytest
import torch

import secateur
from helpers.cli import prune_args
from helpers.tiny import tiny_model
from secateur.cli.main import main
from secateur.config import PruneConfig
from secateur.export.tier_maps import TIER_MAPS, load_tier_maps
from secateur.models.adapter import ModelAdapter
from secateur.patterns.tiered import DENSE, MID, TOPK, tier_counts, tile_view
from secateur.scoring.wanda import Wanda


def _check_against_maps(adapter, maps, pattern):
    """Every module: shares exact (± one tile), 2:4 inside N:M tiles, exactly k in top-k tiles."""
    for index, layer in enumerate(adapter.decoder_layers()):
        names = adapter.linear_names(index)
        for role, linear in adapter.linears(layer).items():
            tiers = maps[names[role]]
            counts = tuple(int((tiers == c).sum()) for c in (DENSE, MID, TOPK))
            assert counts == tier_counts(tiers.numel(), pattern.shares)
            nonzero = tile_view((linear.weight != 0).float(), pattern.size)
            per_tile = nonzero.sum(-1)
            assert (per_tile[tiers == TOPK] == pattern.topk).all()
            assert (per_tile[tiers == DENSE] == pattern.size**2).all()
            groups = nonzero[tiers == MID].reshape(-1, pattern.nm.m).sum(-1)
            assert (groups == pattern.nm.n).all()


def test_wanda_tiered_prune_matches_one_shot_assignment_on_a_tiny_model(token_windows):
    model = tiny_model()
    windows = token_windows(4, 32)
    config = PruneConfig(method="wanda", pattern="tiered:16", tiers="0.5,0.25,0.25", topk=6)
    report = secateur.prune(model, config, windows, show_progress=False)
    pattern = config.pattern_object()
    adapter = ModelAdapter(model)
    _check_against_maps(adapter, report.tier_maps, pattern)
    assert report.tier_summary() == pytest.approx({"dense": 0.5, "nm": 0.25, "topk": 0.25}, abs=0.02)
    assert report.sparsity.actual == pytest.approx(pattern.sparsity, abs=0.02)
    assert report.timings["retier_s"] > 0
    # Layer 0 sees the same inputs either way, so its tiers are the pattern's own one-shot choice.
    dense = tiny_model()
    collector = Wanda().collector(ModelAdapter(dense).linears(ModelAdapter(dense).decoder_layers()[0]))
    with collector.attached() as stats, torch.no_grad():
        dense(windows)
    q = ModelAdapter(dense).linears(ModelAdapter(dense).decoder_layers()[0])["q"]
    expected = pattern.assign(Wanda().score(q.weight, stats["q"]))
    assert torch.equal(report.tier_maps[adapter.linear_names(0)["q"]], expected)


def test_cli_tiered_writes_tier_maps_and_heatmap(saved_llama, corpus, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "tiered"
    args = prune_args(saved_llama, corpus)
    args += ["--eval-windows", "2", "--out", str(out), "--quiet", "--pattern", "tiered", "--block-size", "16"]
    args += ["--tiers", "0.35,0.45,0.20", "--topk", "10"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "tiles (dense / N:M / top-k)" in printed and "top-k tiles" in printed
    maps, metadata = load_tier_maps(out / TIER_MAPS)
    assert metadata["tile_size"] == "16" and metadata["topk"] == "10" and metadata["nm"] == "2:4"
    assert all(t.dtype == torch.int8 for t in maps.values())
    assert (out / "tier_maps.png").stat().st_size > 1000
    model = AutoModelForCausalLM.from_pretrained(out)
    pattern = PruneConfig(pattern="tiered:16", tiers="0.35,0.45,0.20", topk=10).pattern_object()
    _check_against_maps(ModelAdapter(model), maps, pattern)

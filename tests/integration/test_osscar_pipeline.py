"""OSSCAR through the pipeline and the CLI: standard checkpoints, better than Wanda channels without refit."""

import copy

import torch

from helpers.cli import prune_args
from helpers.tiny import tiny_model
from secateur.calibration.capture import capture_layer_inputs
from secateur.calibration.pipeline import run_layers
from secateur.cli.main import main
from secateur.models.adapter import ModelAdapter
from secateur.structured.osscar_run import layer_problem, osscar_prune

CPU = torch.device("cpu")


def test_osscar_beats_wanda_channels_without_refit_layer_by_layer_and_end_to_end(token_windows):
    windows = token_windows(8, 32)
    model = tiny_model("llama")
    dense = copy.deepcopy(model)
    baseline = copy.deepcopy(model)
    common = dict(ratio=0.5, damp=0.01, swaps=4, round_to=16, device=CPU, show_progress=False)
    report = osscar_prune(ModelAdapter(model), windows, **common)
    plain = osscar_prune(ModelAdapter(baseline), windows, **common, reconstruct=False)
    assert report["params_after"] == plain["params_after"] < report["params_before"]
    assert all(layer["kept"] == 64 for layer in report["layers"])
    for ours, theirs in zip(report["layers"], plain["layers"], strict=True):
        assert ours["error_search"][-1] < theirs["error_search"][0]
    with torch.no_grad():  # the whole network's output stays closer to the dense model's
        reference = dense.model(windows).last_hidden_state
        ours = (model.model(windows).last_hidden_state - reference).pow(2).mean().item()
        theirs = (baseline.model(windows).last_hidden_state - reference).pow(2).mean().item()
    assert ours < theirs


def test_cli_osscar_writes_a_standard_checkpoint(saved_llama, corpus, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "osscar"
    args = prune_args(saved_llama, corpus)
    args += ["--eval-windows", "2", "--out", str(out), "--quiet", "--method", "osscar", "--round-to", "32"]
    assert main([*args, "--mlp-pruning-ratio", "0.25"]) == 0
    assert "after search" in capsys.readouterr().out
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.intermediate_size == 96
    assert all(layer.mlp.down_proj.in_features == 96 for layer in model.model.layers)
    assert (out / "osscar_analysis.json").is_file()
    assert main([*args, "--mlp-pruning-ratio", "1.5", "--overwrite"]) == 2
    assert "--mlp-pruning-ratio must be in (0, 1)" in capsys.readouterr().err


def test_refit_statistics_leave_the_sink_position_out(token_windows):
    windows = token_windows(4, 32)
    model = tiny_model("qwen2")
    adapter = ModelAdapter(model)
    inputs = capture_layer_inputs(adapter, windows, batch_size=3, compute_device=CPU, storage_device=CPU)
    seen = {}

    def visit(ctx):
        if ctx.index == 1:  # a layer whose inputs come through the pipeline
            captured = []
            hook = ctx.linears["down"].register_forward_pre_hook(lambda m, a: captured.append(a[0]))
            ctx.observe()
            hook.remove()
            x = torch.cat(captured)  # (windows, seqlen, intermediate)
            seen["direct"] = [torch.einsum("nti,ntj->ij", x[:, k:], x[:, k:]) for k in (0, 1)]
            seen["ours"] = [layer_problem(ctx, k) for k in (0, 1)]

    run_layers(adapter, visit, inputs=inputs, device=CPU, show_progress=False, changes=False)
    for direct, ours in zip(seen["direct"], seen["ours"], strict=True):
        assert torch.allclose(ours.gram, direct, rtol=1e-4, atol=1e-3)
    assert not torch.allclose(seen["ours"][0].gram, seen["ours"][1].gram)
    weight = model.model.layers[1].mlp.down_proj.weight
    assert torch.allclose(seen["ours"][1].cross, weight @ seen["direct"][1], rtol=1e-4, atol=1e-3)


def test_greedy_start_runs_end_to_end_and_is_recorded(token_windows):
    windows = token_windows(4, 32)
    model = tiny_model("llama")
    common = dict(ratio=0.25, damp=0.01, swaps=2, round_to=16, device=CPU, show_progress=False)
    report = osscar_prune(ModelAdapter(model), windows, **common, start="greedy")
    assert report["start"] == "greedy" and report["skip_first_tokens"] == 1
    assert all(layer["kept"] == 96 for layer in report["layers"])
    assert all(layer["error_search"][-1] < layer["error_wanda_no_refit"] for layer in report["layers"])


@torch.no_grad()
def test_opt_osscar_slices_fc1_rows_and_biases_and_fc2_columns(token_windows):
    """OPT's gate-less MLP: the shrunk model computes what the dense one does with the removed fc1
    rows (and their biases) zeroed and fc2 replaced by the refit, on the kept columns."""
    from secateur.export.structured import sync_uniform_config

    model = tiny_model("opt")
    dense = copy.deepcopy(model)
    adapter = ModelAdapter(model)
    osscar_prune(adapter, token_windows(4, 32), ratio=0.25, damp=0.01, swaps=2, round_to=16, device=CPU,
                 show_progress=False)  # fmt: skip
    assert sync_uniform_config(adapter) and model.config.ffn_dim == 96  # OPT's name for the width
    for ours, theirs in zip(model.model.decoder.layers, dense.model.decoder.layers, strict=True):
        # each kept fc1 row is a dense row, found by value
        keep = [int((theirs.fc1.weight == row).all(1).nonzero()) for row in ours.fc1.weight]
        assert len(keep) == 96 and keep == sorted(keep)
        assert torch.equal(ours.fc1.bias, theirs.fc1.bias[keep])
        removed = [c for c in range(128) if c not in keep]
        theirs.fc1.weight[removed] = 0
        theirs.fc1.bias[removed] = 0
        fitted = torch.zeros_like(theirs.fc2.weight)
        fitted[:, keep] = ours.fc2.weight
        theirs.fc2.weight.copy_(fitted)
        assert torch.equal(ours.fc2.bias, theirs.fc2.bias)
    ids = token_windows(2, 32)
    torch.testing.assert_close(model(ids).logits, dense(ids).logits, rtol=1e-5, atol=1e-5)

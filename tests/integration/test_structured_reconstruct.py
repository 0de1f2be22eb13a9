"""--reconstruct: after slicing, o_proj and down_proj are refit by least squares so that each
rebuilds its unpruned output from the inputs it keeps; checked against a direct solve, and for what
it is for: outputs closer to the dense model's than slicing alone."""

from __future__ import annotations

import copy

import torch

from helpers.cli import assert_refused, prune_args
from helpers.tiny import tiny_model
from secateur.cli.main import main
from secateur.models.adapter import ModelAdapter
from secateur.structured.apply import apply_plan
from secateur.structured.groups import q_rows
from secateur.structured.plan import LayerPlan, StructuredPlan
from secateur.structured.reconstruct import apply_plan_reconstructing

CPU = torch.device("cpu")


def _plan(model):
    geometry = ModelAdapter(model).geometry()
    plan = StructuredPlan(model.config.model_type, geometry.gqa_ratio, geometry.head_dim)
    plan.layers = [LayerPlan(0, [1], list(range(0, 128, 2))), LayerPlan(1, [0, 1], list(range(90))),
                   LayerPlan(2, [], list(range(30, 128)))]  # fmt: skip
    return plan


def _refit_by_hand(weight, x, keep, damp=0.01):
    """argmin_W ‖X_S Wᵀ − X W0ᵀ‖² + λ‖W‖², λ = damp · mean diag(X_SᵀX_S): the normal equations."""
    xs = x[:, keep].double()
    gram = xs.T @ xs
    gram += damp * gram.diagonal().mean() * torch.eye(len(keep), dtype=gram.dtype)
    return torch.linalg.solve(gram, xs.T @ (x.double() @ weight.double().T)).T


def test_layer_zero_refits_equal_a_direct_solve(token_windows):
    windows = token_windows(nsamples=4, seqlen=32)
    model = tiny_model("llama")
    dense = copy.deepcopy(model)
    layer = dense.model.layers[0]
    seen = {}
    layer.self_attn.o_proj.register_forward_pre_hook(lambda m, a: seen.setdefault("o", []).append(a[0]))
    with torch.no_grad():
        dense(windows)
    plan = _plan(model)
    apply_plan_reconstructing(ModelAdapter(model), plan, windows, device=CPU, show_progress=False)
    x = torch.cat(seen["o"])[:, 1:].reshape(-1, 64)  # the attention-sink position left out
    geometry = ModelAdapter(dense).geometry()
    shape = ModelAdapter(dense).layer_shape(0)
    keep = q_rows(torch.tensor([1]), shape)
    expected = _refit_by_hand(layer.self_attn.o_proj.weight, x, keep)
    torch.testing.assert_close(
        model.model.layers[0].self_attn.o_proj.weight.double(), expected, rtol=1e-3, atol=1e-4
    )
    assert model.model.layers[0].self_attn.o_proj.weight.shape == (64, geometry.gqa_ratio * geometry.head_dim)


def test_reconstruction_brings_the_outputs_closer_to_the_dense_model(token_windows):
    windows = token_windows(nsamples=8, seqlen=32)
    dense = tiny_model("llama")
    sliced, refit = copy.deepcopy(dense), copy.deepcopy(dense)
    apply_plan(ModelAdapter(sliced), _plan(sliced))
    apply_plan_reconstructing(ModelAdapter(refit), _plan(refit), windows, device=CPU, show_progress=False)
    assert [p.shape for p in sliced.parameters()] == [p.shape for p in refit.parameters()]
    with torch.no_grad():
        target = dense(windows, output_hidden_states=True).hidden_states[-1]
        errors = [(m(windows, output_hidden_states=True).hidden_states[-1] - target).square().mean()
                  for m in (sliced, refit)]  # fmt: skip
    assert errors[1] < 0.7 * errors[0]


def test_cli_reconstruct_and_its_refusals(saved_llama, corpus, tmp_path, capsys):
    args = prune_args(saved_llama, corpus, "--method", "structured", "--importance", "wanda", "--no-eval")
    assert (
        main([*args, "--reconstruct", "--out", str(tmp_path / "r"), "--json", str(tmp_path / "r.json")]) == 0
    )
    import json

    assert json.loads((tmp_path / "r.json").read_text())["timings"]["reconstruct_s"] > 0
    osscar = prune_args(saved_llama, corpus, "--method", "osscar", "--reconstruct", "--out", tmp_path / "o")
    assert_refused(capsys, osscar, "--reconstruct", out=tmp_path / "o")


def test_epsilon_collapses_thin_layers_whole_and_the_output_reloads(saved_llama, corpus, tmp_path, capsys):
    import json

    from secateur import api

    out = tmp_path / "collapsed"
    args = prune_args(saved_llama, corpus, "--method", "structured", "--importance", "wanda",
                      "--pruning-ratio", "0.3", "--temperature", "0", "--epsilon", "0.99",
                      "--eval-windows", "2")  # fmt: skip
    assert main([*args, "--out", str(out), "--json", str(tmp_path / "c.json")]) == 0
    report = json.loads((tmp_path / "c.json").read_text())
    collapsed = report["prune"]["collapsed_layers"]
    assert collapsed  # every layer the plan touched keeps < 99% of itself
    per_layer = json.loads((out / "config.json").read_text())["per_layer_config"]
    for index in collapsed:
        assert set(per_layer[str(index)]["skip"]) == {"attention", "mlp"}, per_layer
    reloaded = api.evaluate(
        api.load_model(str(out)), dataset=str(corpus), seqlen=32, max_windows=2, show_progress=False
    )
    assert reloaded.perplexity == report["perplexity"]["pruned"]["perplexity"]
    assert_refused(
        capsys, [*args, "--uniform", "--out", str(tmp_path / "u")], "--epsilon", out=tmp_path / "u"
    )

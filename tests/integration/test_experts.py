"""Mixture of experts: per-expert statistics from the router's choices, the starved-expert fallback,
per-expert patterns in the fused tensors, and `--method experts` (REAP) against hand computations."""

import json

import pytest
import torch

from helpers.cli import assert_refused, prune_args
from helpers.tiny import MOE_TYPES, save_tiny, tiny_model
from secateur.calibration.capture import capture_layer_inputs
from secateur.calibration.pipeline import run_layers
from secateur.models.adapter import ModelAdapter
from secateur.models.experts import expert_role
from secateur.pruning.statistics import layer_statistics
from secateur.scoring.wanda import Wanda
from secateur.solvers.sparsegpt import SparseGPT


def _toy():
    """One Mixtral layer, 3 experts, top-1. Router rows: w, -w and 0, so every token goes to expert
    0 or 1 (whichever sign its logit has) and expert 2 never receives one."""
    model = tiny_model("mixtral", num_hidden_layers=1, num_local_experts=3, num_experts_per_tok=1)
    router = model.model.layers[0].mlp.gate
    with torch.no_grad():
        router.weight[1] = -router.weight[0]
        router.weight[2] = 0
    return model


def _statistics_by_hand(model, windows, method, min_tokens):
    """(stats, starved) from the pipeline, and the router's token choices and block inputs seen there."""
    adapter = ModelAdapter(model)
    inputs = capture_layer_inputs(
        adapter, windows, batch_size=2, compute_device=torch.device("cpu"), storage_device=torch.device("cpu")
    )
    found = {}

    def visit(ctx):
        seen = []
        handle = ctx.layer.mlp.register_forward_pre_hook(
            lambda m, a: seen.append(a[0].reshape(-1, a[0].shape[-1]))
        )
        ctx.observe()
        handle.remove()
        found["x"] = torch.cat(seen)
        found["stats"], found["starved"] = layer_statistics(method, ctx, min_tokens)

    run_layers(adapter, visit, inputs=inputs, device=torch.device("cpu"), show_progress=False, changes=False)
    return found


def _expert_inputs(model, x, expert):
    """The tokens routed to `expert` (top-1) and what its down projection receives from them."""
    block = model.model.layers[0].mlp
    choice = (x @ block.gate.weight.T).argmax(-1)
    xe = x[choice == expert]
    width = block.experts.gate_up_proj.shape[1] // 2
    gate_up = block.experts.gate_up_proj[expert]
    hidden = block.experts.act_fn(xe @ gate_up[:width].T) * (xe @ gate_up[width:].T)
    return xe, hidden


@torch.no_grad()
def test_wanda_and_sparsegpt_statistics_come_from_the_tokens_the_router_sends(token_windows):
    model = _toy()
    windows = token_windows(4, 32)
    wanda = _statistics_by_hand(model, windows, Wanda(), min_tokens=1)
    hessian = _statistics_by_hand(model, windows, SparseGPT(), min_tokens=1)
    x = wanda["x"]
    counts = []
    for expert in (0, 1):
        xe, hidden = _expert_inputs(model, x, expert)
        counts.append(xe.shape[0])
        stats, gram = wanda["stats"], hessian["stats"]
        torch.testing.assert_close(stats[expert_role(expert, "gate")].sum_sq, xe.square().sum(0))
        assert stats[expert_role(expert, "up")] is stats[expert_role(expert, "gate")]  # one input, once
        torch.testing.assert_close(stats[expert_role(expert, "down")].sum_sq, hidden.square().sum(0))
        torch.testing.assert_close(
            gram[expert_role(expert, "gate")].total.float(), xe.T @ xe, rtol=1e-4, atol=1e-3
        )
        torch.testing.assert_close(
            gram[expert_role(expert, "down")].total.float(), hidden.T @ hidden, rtol=1e-4, atol=1e-3
        )
        assert stats[expert_role(expert, "gate")].tokens == xe.shape[0]
    assert sum(counts) == x.shape[0] == 4 * 32 and min(counts) > 0  # both experts used, every token once
    # Expert 2 saw nothing: neutral statistics (magnitude), and it is counted.
    assert wanda["starved"] == hessian["starved"] == [2]
    down_inputs = model.model.layers[0].mlp.experts.down_proj.shape[-1]
    torch.testing.assert_close(wanda["stats"][expert_role(2, "down")].sum_sq, torch.ones(down_inputs))
    torch.testing.assert_close(hessian["stats"][expert_role(2, "gate")].hessian(), torch.eye(64))


@torch.no_grad()
def test_a_starved_expert_is_pruned_by_magnitude_and_counted(token_windows, tmp_path):
    from secateur.config import PruneConfig
    from secateur.patterns.unstructured import Unstructured
    from secateur.pruning.masking import prune_with_masks

    model = _toy()
    experts = model.model.layers[0].mlp.experts
    before = experts.gate_up_proj.clone(), experts.down_proj.clone()
    config = PruneConfig(method="wanda", sparsity=0.5, expert_min_tokens=1)
    report = prune_with_masks(ModelAdapter(model), config, token_windows(4, 32), show_progress=False)
    assert report.expert_fallbacks == {0: [2]}
    pattern = Unstructured()
    gate_up, down = before[0][2], before[1][2]
    width = gate_up.shape[0] // 2
    by_magnitude = [pattern.mask(part.abs(), 0.5) for part in (gate_up[:width], gate_up[width:])]
    assert torch.equal(experts.gate_up_proj[2] != 0, torch.cat(by_magnitude))
    assert torch.equal(experts.down_proj[2] != 0, pattern.mask(down.abs(), 0.5))
    # With a threshold above every expert's count, all three fall back.
    model = _toy()
    config = PruneConfig(method="wanda", sparsity=0.5, expert_min_tokens=10**6)
    report = prune_with_masks(ModelAdapter(model), config, token_windows(4, 32), show_progress=False)
    assert report.expert_fallbacks == {0: [0, 1, 2]}


@pytest.mark.parametrize("model_type", MOE_TYPES)
def test_every_expert_slice_of_the_fused_tensors_holds_the_pattern(model_type, corpus, tmp_path):
    from safetensors.torch import load_file

    from secateur.cli.main import main

    source = save_tiny(tmp_path / "dense", model_type)
    dense = load_file(source / "model.safetensors")
    out = tmp_path / "out"
    args = prune_args(
        source, corpus, "--method", "sparsegpt", "--pattern", "2:4", "--no-eval", "--out", str(out)
    )
    assert main([*args, "--quiet"]) == 0
    pruned = load_file(out / "model.safetensors")
    # transformers 5 writes Mixtral in its original per-expert layout (block_sparse_moe.experts.E.w1)
    # and the Qwen MoEs fused; either way the router is a "...gate.weight" outside the experts.
    routers = [k for k in pruned if k.endswith(".gate.weight") and ".experts." not in k]
    assert routers and all(torch.equal(pruned[k], dense[k]) for k in routers)  # never pruned
    experts = [k for k in pruned if ".experts." in k]
    assert experts
    for key in experts:
        weight = pruned[key]
        groups = (weight.reshape(-1, 4) != 0).sum(-1)
        assert bool((groups <= 2).all()) and int((weight == 0).sum()) >= weight.numel() // 2, key


def _removed_by_router_mask(model, removed: dict[int, list[int]]):
    """The same model with the removed experts made unreachable: their router logits are -inf, so
    the softmax and top-k run over the kept experts only (the router's own code, otherwise)."""
    for index, gone in removed.items():
        router = model.model.layers[index].mlp.gate
        if hasattr(router, "e_score_correction_bias"):
            # DeepSeek-V3 chooses by sigmoid score + this bias and weights by the score alone:
            # -inf there makes an expert unreachable in its router's own code.
            router.e_score_correction_bias[gone] = float("-inf")
            continue

        def forward(hidden, router=router, gone=gone):
            logits = torch.nn.functional.linear(hidden.reshape(-1, router.hidden_dim), router.weight)
            logits[:, gone] = float("-inf")
            top, chosen = torch.topk(torch.softmax(logits.float(), dim=-1), router.top_k, dim=-1)
            if getattr(router, "norm_topk_prob", True):  # Mixtral always renormalizes
                top = top / top.sum(-1, keepdim=True)
            return logits, top.to(logits.dtype), chosen

        router.forward = forward
    return model


@pytest.mark.parametrize("model_type", MOE_TYPES)
def test_expert_pruning_equals_making_the_removed_experts_unreachable(model_type, corpus, tmp_path):
    from transformers import AutoModelForCausalLM

    from secateur.cli.main import main

    source = save_tiny(tmp_path / "dense", model_type)
    out = tmp_path / "out"
    args = prune_args(
        source, corpus, "--method", "experts", "--num-experts", "3", "--no-eval", "--out", str(out)
    )
    assert main([*args, "--quiet"]) == 0
    analysis = json.loads((out / "experts_analysis.json").read_text())
    removed = {layer["layer"]: layer["removed"] for layer in analysis["layers"]}
    assert all(len(gone) == 1 for gone in removed.values())
    pruned = AutoModelForCausalLM.from_pretrained(out).eval()  # plain transformers loads it
    config = pruned.config
    assert getattr(config, "num_local_experts", getattr(config, "num_experts", None)) == 3
    if model_type == "deepseek_v3":  # the router's score-correction buffer is sliced with its rows
        assert all(pruned.model.layers[i].mlp.gate.e_score_correction_bias.shape == (3,) for i in removed)
    reference = _removed_by_router_mask(AutoModelForCausalLM.from_pretrained(source).eval(), removed)
    ids = torch.randint(0, 250, (2, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(pruned(ids).logits, reference(ids).logits, rtol=1e-4, atol=1e-4)


@torch.no_grad()
def test_reap_scores_equal_router_weighted_output_norms_by_hand(token_windows, tmp_path):
    from secateur.config import ExpertsConfig, PruneConfig, PruneRecipe
    from secateur.methods.experts import prune_experts

    model = tiny_model("mixtral", num_hidden_layers=1, num_local_experts=4, num_experts_per_tok=2)
    block = model.model.layers[0].mlp
    seen = []
    handle = block.register_forward_pre_hook(lambda m, a: seen.append(a[0].reshape(-1, a[0].shape[-1])))
    windows = token_windows(4, 32)
    model(windows)
    handle.remove()
    x = torch.cat(seen)
    _, weights, chosen = block.gate(x)
    expected_reap, expected_tokens = [], []
    for expert in range(4):
        token, slot = torch.where(chosen == expert)
        width = block.experts.gate_up_proj.shape[1] // 2
        gate_up, down = block.experts.gate_up_proj[expert], block.experts.down_proj[expert]
        xe = x[token]
        y = (block.experts.act_fn(xe @ gate_up[:width].T) * (xe @ gate_up[width:].T)) @ down.T
        expected_reap.append(float((weights[token, slot].double() * y.double().norm(dim=-1)).mean()))
        expected_tokens.append(token.numel())
    for score, expected in (("reap", expected_reap), ("frequency", expected_tokens)):
        experts = ExpertsConfig(num_experts=2, expert_score=score)
        recipe = PruneRecipe(prune=PruneConfig(method="experts"), experts=experts)
        copy = tiny_model("mixtral", num_hidden_layers=1, num_local_experts=4, num_experts_per_tok=2)
        loaded = type("Loaded", (), {"model": copy, "adapter": ModelAdapter(copy)})()
        result = prune_experts(loaded, recipe, windows, torch.device("cpu"), False, lambda line: None)
        layer = result.report.data["layers"][0]
        assert layer["tokens"] == expected_tokens
        torch.testing.assert_close(
            torch.tensor(layer["scores"], dtype=torch.float64),
            torch.tensor(expected, dtype=torch.float64),
            rtol=1e-5,
            atol=1e-6,
        )
        best = sorted(sorted(range(4), key=lambda e: -expected[e])[:2])
        assert layer["kept"] == best and copy.model.layers[0].mlp.experts.gate_up_proj.shape[0] == 2


REFUSED = [
    ("llama", ("--method", "experts", "--num-experts", "2"), "needs a mixture-of-experts model"),
    ("qwen3_moe", ("--method", "experts", "--num-experts", "1"), "fewer than the 2 each token is routed to"),
    ("qwen3_moe", ("--method", "experts", "--num-experts", "4"), "keeps all 4 experts"),
    ("qwen3_moe", ("--method", "experts"), "exactly one of"),
    (
        "qwen3_moe",
        ("--method", "experts", "--num-experts", "2", "--sparsity", "0.5"),
        "--sparsity is not used",
    ),
    ("qwen3_moe", ("--method", "wanda", "--num-experts", "2"), "--num-experts is not used here"),
    ("qwen3_moe", ("--method", "magnitude", "--expert-min-tokens", "4"), "magnitude reads no statistics"),
    ("llama", ("--method", "wanda", "--expert-min-tokens", "4"), "llama has no routed experts"),
]


@pytest.mark.parametrize(("model_type", "args", "message"), REFUSED)
def test_expert_pruning_refuses_what_it_cannot_do(model_type, args, message, corpus, tmp_path, capsys):
    source = save_tiny(tmp_path / "dense", model_type)
    out = tmp_path / "out"
    assert_refused(capsys, prune_args(source, corpus, *args, "--out", out), message, out=out)


@pytest.mark.parametrize("command", ["finetune", "recover"])
def test_training_a_pruned_moe_keeps_every_expert_zero(command, corpus, tmp_path):
    """Masks guard the fused expert tensors themselves (not views of them); LoRA leaves them frozen."""
    from safetensors.torch import load_file

    from secateur.cli.main import main

    source = save_tiny(tmp_path / "dense", "qwen2_moe")
    pruned = tmp_path / "pruned"
    assert main([*prune_args(source, corpus, "--no-eval", "--out", str(pruned)), "--quiet"]) == 0
    out = tmp_path / "trained"
    extra = ["--merge", "--lora-r", "4"] if command == "recover" else []
    args = [command, "--model", str(pruned), "--dataset", str(corpus), "--train-seqlen", "32"]
    args += ["--max-steps", "3", "--lr", "1e-2", "--no-eval", "--out", str(out), "--quiet", *extra]
    assert main(args) == 0
    before, after = load_file(pruned / "model.safetensors"), load_file(out / "model.safetensors")
    experts = [k for k in before if ".experts." in k]
    assert experts
    for key in experts:
        assert not bool(((before[key] == 0) & (after[key] != 0)).any()), key
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    if command == "finetune":  # trained: the experts move too
        assert any(".experts." in k for k in changed)
    else:  # merged LoRA moves the attention and shared expert only
        assert changed and not any(".experts." in k for k in changed)


def test_grouped_routing_keeps_the_same_number_of_experts_in_every_group(corpus, tmp_path, capsys):
    """DeepSeek-V3 picks topk_group of n_group groups of consecutive experts, then experts inside
    them: each group keeps its best, equally many, and the result routes as the original does with
    the removed experts made unreachable."""
    from transformers import AutoModelForCausalLM

    from secateur.cli.main import main

    grouped = {"n_routed_experts": 8, "n_group": 2, "topk_group": 1}
    source = save_tiny(tmp_path / "dense", "deepseek_v3", **grouped)
    out = tmp_path / "out"
    args = prune_args(source, corpus, "--method", "experts", "--no-eval", "--out", str(out), "--quiet")
    assert main([*args, "--num-experts", "3"]) == 2 and not out.exists()
    assert "keep a multiple of 2 experts" in capsys.readouterr().err.strip().splitlines()[-1]
    assert main([*args, "--num-experts", "4"]) == 0
    analysis = json.loads((out / "experts_analysis.json").read_text())
    for layer in analysis["layers"]:
        kept, scores = layer["kept"], layer["scores"]
        for group in (range(4), range(4, 8)):
            best = sorted(group, key=lambda e: (-scores[e], e))[:2]
            assert sorted(e for e in kept if e in group) == sorted(best)
    removed = {layer["layer"]: layer["removed"] for layer in analysis["layers"]}
    pruned = AutoModelForCausalLM.from_pretrained(out).eval()
    assert pruned.config.n_routed_experts == 4 and pruned.config.n_group == 2
    reference = _removed_by_router_mask(AutoModelForCausalLM.from_pretrained(source).eval(), removed)
    ids = torch.randint(0, 250, (2, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(pruned(ids).logits, reference(ids).logits, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("model_type", "key", "after"),
    [("qwen2_moe", "mlp_only_layers", [0]), ("deepseek_v3", "first_k_dense_replace", 0)],
)
def test_depth_pruning_rewrites_which_layers_are_dense(model_type, key, after, tmp_path):
    """Qwen2-MoE lists its dense layers by index (layer 1 here), DeepSeek-V3 makes the first k
    dense (k = 1 here): removing layer 0 moves them, and a plain reload must build the same layers."""
    from transformers import AutoModelForCausalLM

    from secateur.structured.depth import remove_layers

    model = tiny_model(model_type)
    adapter = ModelAdapter(model)
    remove_layers(adapter, [0])
    assert getattr(model.config, key) == after
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    ids = torch.randint(0, 250, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids).logits, model.eval()(ids).logits)

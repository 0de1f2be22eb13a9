"""Structured width pruning on tiny LLaMA/Qwen2/Mistral/Qwen3, Phi-3 (fused), OPT (gate-less) and
Gemma 3 multimodal: shrinking equals masking, exact accounting,
frozen layers, importances against hand-computed references, save/load round trips, the CLI."""

import copy
import json

import pytest
import torch

from helpers.cli import prune_args
from helpers.tiny import tiny_model
from secateur.cli.main import main
from secateur.config import StructuredConfig
from secateur.export.structured import (
    is_heterogeneous,
    load_pruned,
    sync_uniform_config,
    write_pruned_config,
)
from secateur.models.adapter import ModelAdapter
from secateur.structured.apply import apply_plan
from secateur.structured.groups import kv_rows, q_rows
from secateur.structured.plan import LayerPlan, StructuredPlan
from secateur.structured.run import count_parameters, structured_prune

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def windows(token_windows):
    return token_windows(8, 32)


class _Part:
    """A role's weight and bias: a Linear's own, or rows of a fused Linear's (views)."""

    def __init__(self, weight, bias=None):
        self.weight, self.bias = weight, bias


def _weights_by_role(layer, shape):
    """Generic role -> its weight and bias; Phi-3's fused Linears split by hand, from the layout
    its modeling code reads: qkv_proj = [q | k | v], gate_up_proj = [gate | up] (chunk in two)."""
    attention = layer.self_attn
    if hasattr(layer, "fc1"):  # OPT: out_proj, and a gate-less MLP on the layer itself
        linears = {r: getattr(attention, f"{r}_proj") for r in "qkv"}
        linears.update({"o": attention.out_proj, "up": layer.fc1, "down": layer.fc2})
        return {role: _Part(linear.weight, linear.bias) for role, linear in linears.items()}
    mlp = layer.mlp
    if not hasattr(attention, "qkv_proj"):
        linears = {r: getattr(attention, f"{r}_proj") for r in "qkvo"}
        linears.update({r: getattr(mlp, f"{r}_proj") for r in ("gate", "up", "down")})
        return {role: _Part(linear.weight, linear.bias) for role, linear in linears.items()}
    q_width, kv_width = shape.num_heads * shape.head_dim, shape.num_kv_heads * shape.head_dim
    qkv = attention.qkv_proj.weight
    gate, up = mlp.gate_up_proj.weight.chunk(2, dim=0)
    views = {
        "q": qkv[:q_width],
        "k": qkv[q_width : q_width + kv_width],
        "v": qkv[q_width + kv_width :],
        "o": attention.o_proj.weight,
        "gate": gate,
        "up": up,
        "down": mlp.down_proj.weight,
    }
    return {role: _Part(weight) for role, weight in views.items()}


def _mask_like_plan(model, plan):
    """The masked equivalent: zero every weight and bias a plan removes, keep shapes."""
    adapter = ModelAdapter(model)
    with torch.no_grad():
        for row in plan.layers:
            shape = adapter.layer_shape(row.layer)
            linears = _weights_by_role(adapter.decoder_layers()[row.layer], shape)
            gone_kv = torch.tensor(
                [g for g in range(shape.num_kv_heads) if g not in row.kv_heads], dtype=torch.long
            )
            qr, kr = q_rows(gone_kv, shape), kv_rows(gone_kv, shape)
            for role, rows in (("q", qr), ("k", kr), ("v", kr)):
                linears[role].weight[rows] = 0
                if linears[role].bias is not None:
                    linears[role].bias[rows] = 0
            linears["o"].weight[:, qr] = 0
            gone = torch.tensor(
                [c for c in range(shape.intermediate) if c not in row.channels], dtype=torch.long
            )
            for role in ("gate", "up"):
                if role in linears:
                    linears[role].weight[gone] = 0
                    if linears[role].bias is not None:
                        linears[role].bias[gone] = 0
            linears["down"].weight[:, gone] = 0


@pytest.mark.parametrize(
    ("model_type", "heads", "kv_heads"),
    [
        ("llama", 4, 2),
        ("qwen2", 4, 1),
        ("mistral", 4, 4),
        ("qwen3", 4, 2),
        ("phi3", 4, 2),
        ("phi3", 4, 4),
        ("opt", 4, 4),
    ],
)
def test_shrinking_equals_masking(model_type, heads, kv_heads):
    kv = {} if model_type == "opt" else {"num_key_value_heads": kv_heads}  # OPT: plain multi-head
    model = tiny_model(model_type, num_attention_heads=heads, **kv)
    geometry = ModelAdapter(model).geometry()
    generator = torch.Generator().manual_seed(3)
    plan = StructuredPlan(model_type, geometry.gqa_ratio, geometry.head_dim)
    for layer in range(3):
        kv = torch.randperm(kv_heads, generator=generator)[: max(1, kv_heads // 2)].tolist()
        channels = torch.randperm(128, generator=generator)[:40].tolist()
        plan.layers.append(LayerPlan(layer, [] if layer == 1 else kv, [] if layer == 2 else channels))
    masked = copy.deepcopy(model)
    _mask_like_plan(masked, plan)
    apply_plan(ModelAdapter(model), plan)
    ids = torch.randint(0, 256, (2, 24))
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, masked(ids).logits, atol=1e-5)
    layers = ModelAdapter(model).decoder_layers()
    assert type(layers[1].self_attn).__name__ == "SkippedBlock"
    if model_type == "opt":  # no MLP module to remove: fc1/fc2 sliced to zero channels
        assert layers[2].fc1.weight.shape == (0, 64) and layers[2].fc2.weight.shape == (64, 0)
    else:
        assert type(layers[2].mlp).__name__ == "SkippedBlock"
    kept_kv = max(1, kv_heads // 2)
    kept_q_rows = kept_kv * geometry.gqa_ratio * geometry.head_dim
    if model_type == "phi3":  # the fused Linears keep all their parts' rows
        assert layers[0].self_attn.qkv_proj.weight.shape == (
            kept_q_rows + 2 * kept_kv * geometry.head_dim,
            64,
        )
        assert layers[0].mlp.gate_up_proj.weight.shape == (80, 64)
    elif model_type == "opt":
        assert layers[0].self_attn.q_proj.weight.shape == (kept_q_rows, 64)
        assert layers[0].fc1.bias.shape == (40,) and layers[0].fc2.weight.shape == (64, 40)
    else:
        assert layers[0].self_attn.q_proj.weight.shape == (kept_q_rows, 64)
    if model_type != "opt":
        assert layers[0].mlp.down_proj.weight.shape == (64, 40)


@pytest.mark.parametrize("importance", ["magnitude", "wanda", "taylor", "taylor_2nd"])
def test_parameter_accounting_is_exact_and_frozen_layers_are_untouched(windows, importance):
    model = tiny_model("qwen2", num_hidden_layers=4)
    original = copy.deepcopy(model)
    config = StructuredConfig(
        importance=importance, pruning_ratio=0.2, temperature=1.0, freeze_first_n_layers=1
    )
    report = structured_prune(ModelAdapter(model), config, windows, device=CPU, show_progress=False)
    assert report.params_before == count_parameters(original)
    assert report.removed == report.params_before - count_parameters(model)
    assert report.removed == int(report.table.cost[report.table.pruned].sum())
    target = int(0.2 * report.params_before)
    assert 0 <= target - report.removed < report.shapes_before[1].mlp_group_cost()
    assert 0 not in {p.layer for p in report.plan.layers}
    for (name, before), (_, after) in zip(
        original.model.layers[0].named_parameters(), model.model.layers[0].named_parameters(), strict=True
    ):
        assert torch.equal(before, after), name


def test_wanda_and_taylor_importances_match_hand_computed_references(windows):
    model = tiny_model("llama")
    adapter = ModelAdapter(model)
    layer0 = adapter.decoder_layers()[0]
    # Wanda: |W|·‖X‖ summed over attention group 0, with X the inputs layer 0's q/o see in a full forward.
    seen = {}
    hooks = [
        layer0.self_attn.q_proj.register_forward_pre_hook(lambda m, a: seen.__setitem__("q", a[0])),
        layer0.self_attn.o_proj.register_forward_pre_hook(lambda m, a: seen.__setitem__("o", a[0])),
    ]
    with torch.no_grad():
        model(windows)
    for h in hooks:
        h.remove()
    norm_in = seen["q"].reshape(-1, 64).pow(2).sum(0).sqrt()
    norm_o = seen["o"].reshape(-1, 64).pow(2).sum(0).sqrt()
    a = layer0.self_attn
    rows = slice(0, 32)  # KV group 0 = query heads 0-1 (2 x head_dim 16), k/v rows 0-15
    expected = (a.q_proj.weight[rows].abs() * norm_in).sum() + (a.k_proj.weight[:16].abs() * norm_in).sum()
    expected += (a.v_proj.weight[:16].abs() * norm_in).sum() + (
        a.o_proj.weight[:, rows].abs() * norm_o[rows]
    ).sum()

    from secateur.structured.importance import layer_group_importance
    from secateur.structured.run import _collect_activations

    stats, influence = _collect_activations(adapter, windows, {0}, True, CPU, 4, False)
    attention, _ = layer_group_importance("wanda", adapter, 0, adapter.layer_shape(0), stats[0])
    assert attention[0].item() == pytest.approx(expected.item(), rel=1e-4)
    assert 0 < influence[0]["layer"] < 2

    # Taylor: one batch holding every window gives the plain full-batch gradient.
    from secateur.structured.gradients import accumulate_gradients

    grads = accumulate_gradients(
        adapter, windows, batch_size=len(windows), second_order=True, checkpointing=False, show_progress=False
    )
    model.zero_grad(set_to_none=True)
    model(input_ids=windows, labels=windows).loss.backward()
    g = layer0.mlp.gate_proj.weight.grad
    name = adapter.linear_names(0)["gate"] + ".weight"
    assert torch.allclose(grads[name].mean, g, atol=1e-7) and torch.allclose(
        grads[name].mean_sq, g * g, atol=1e-9
    )


def test_an_mlp_channel_counts_its_biases_opt_fc1():
    """OPT's MLP channel j is fc1 row j, fc1 bias j and fc2 column j: magnitude importance sums all three."""
    from secateur.structured.importance import layer_group_importance

    model = tiny_model("opt")
    adapter = ModelAdapter(model)
    layer = adapter.decoder_layers()[0]
    with torch.no_grad():  # initialised to zero: make them count
        layer.fc1.bias.normal_()
    _, mlp = layer_group_importance("magnitude", adapter, 0, adapter.layer_shape(0))
    fc1, fc2 = layer.fc1, layer.fc2
    expected = fc1.weight.abs().sum(1) + fc1.bias.abs() + fc2.weight.abs().sum(0)
    assert torch.allclose(mlp, expected.float(), rtol=1e-5)


@pytest.mark.parametrize("model_type", ["qwen2", "qwen3", "phi3", "opt", "gemma3"])
@pytest.mark.parametrize("uniform", [False, True])
def test_save_then_load_gives_the_same_logits(windows, tmp_path, uniform, model_type):
    from transformers import AutoModelForCausalLM

    model = tiny_model(model_type, num_hidden_layers=4, tie_word_embeddings=True)
    adapter = ModelAdapter(model)
    config = StructuredConfig(
        importance="magnitude", pruning_ratio=0.3, temperature=1.0, uniform=uniform, round_to=16
    )
    structured_prune(adapter, config, windows, device=CPU, show_progress=False)
    # OPT derives head_dim from hidden / heads: fewer heads cannot be said in a standard config.
    fewer_heads = adapter.layer_shape(0).num_heads < adapter.config.num_attention_heads
    standard = uniform and not (model_type == "opt" and fewer_heads)
    assert sync_uniform_config(adapter) == standard
    model.save_pretrained(tmp_path)
    write_pruned_config(adapter, tmp_path)
    assert is_heterogeneous(tmp_path) != standard  # per_layer_config (Gemma 3: in its text_config)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path) if standard else load_pruned(tmp_path)
    with torch.no_grad():
        assert torch.allclose(model(windows[:2]).logits, loaded(windows[:2]).logits, atol=1e-6)
    assert count_parameters(loaded) == count_parameters(model)


def _args(model, corpus, out, *extra):
    common = ["--eval-windows", "2", "--out", str(out), "--quiet", "--method", "structured"]
    return prune_args(model, corpus, *common, *extra, nsamples=8)


def test_cli_structured_prune_writes_analysis_and_the_plan_replays(saved_llama, corpus, tmp_path, capsys):
    out = tmp_path / "pruned"
    assert (
        main(
            _args(
                saved_llama,
                corpus,
                out,
                "--importance",
                "taylor",
                "--pruning_ratio",
                "0.2",
                "--temperature",
                "1",
                "--tau",
                "inf",
            )
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "removed (of all parameters)" in printed and "KV heads" in printed
    analysis = json.loads((out / "pruning_analysis.json").read_text())
    assert analysis["summary"]["ratio_of_total"] == pytest.approx(0.2, abs=0.01)
    assert len(analysis["layers"]) == 3
    header = (out / "global_group_table.csv").read_text().splitlines()[0]
    assert header == "layer,kind,group,importance,cost,prior,score,pruned"
    assert (out / "kept_width.png").stat().st_size > 1000
    replay = tmp_path / "replayed"
    args = [
        "apply-plan",
        "--model",
        str(saved_llama),
        "--plan",
        str(out / "structured_plan.json"),
        "--out",
        str(replay),
    ]
    assert main([*args, "--dataset", str(corpus), "--seqlen", "32", "--eval-windows", "2", "--quiet"]) == 0
    first, second = load_pruned(out), load_pruned(replay)
    for (name, a), (_, b) in zip(first.named_parameters(), second.named_parameters(), strict=True):
        assert torch.equal(a, b), name


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--pruning-ratio", "0"), "--pruning-ratio must be in (0, 1)"),
        (("--pruning-ratio", "1.5"), "--pruning-ratio must be in (0, 1)"),
        (("--freeze-first-n-layers", "2", "--freeze-last-n-layers", "1"), "nothing is left to prune"),
        (("--pruning-ratio", "0.95"), "would remove every group"),
        (("--importance", "fisher"), "--importance must be one of"),
        (("--sparsity", "0.5"), "drop --sparsity"),
    ],
)
def test_bad_structured_input_is_one_line_and_writes_nothing(
    saved_llama, corpus, tmp_path, capsys, extra, message
):
    out = tmp_path / "out"
    assert main(_args(saved_llama, corpus, out, *extra)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("secateur: error:") and message in err[-1]
    assert not out.exists()


def test_gradient_checkpointing_gives_the_same_gradients(windows):
    from secateur.structured.gradients import accumulate_gradients

    plain = accumulate_gradients(
        ModelAdapter(tiny_model()),
        windows,
        batch_size=4,
        second_order=False,
        checkpointing=False,
        show_progress=False,
    )
    model = tiny_model()
    saved = accumulate_gradients(
        ModelAdapter(model),
        windows,
        batch_size=4,
        second_order=False,
        checkpointing=True,
        show_progress=False,
    )
    assert all(torch.allclose(plain[k].mean, saved[k].mean, atol=1e-6) for k in plain)
    assert not model.training  # left as found


def test_a_heterogeneous_model_fine_tunes_and_saves_with_its_per_layer_config(windows, corpus, tmp_path):
    from secateur.export.save import save_checkpoint
    from secateur.recovery.config import FinetuneConfig
    from secateur.recovery.finetune import finetune

    model = tiny_model("llama")
    adapter = ModelAdapter(model)
    config = StructuredConfig(importance="magnitude", pruning_ratio=0.25, temperature=0.0)
    structured_prune(adapter, config, windows, device=CPU, show_progress=False)
    assert not sync_uniform_config(adapter)
    from helpers.tiny import tiny_tokenizer

    tokenizer = tiny_tokenizer()
    config = FinetuneConfig(
        seqlen=32, max_steps=2, batch_size=2, grad_accum=1, learning_rate=1e-3, eval_steps=1
    )
    finetune(model, tokenizer, config, dataset=str(corpus), show_progress=False)
    save_checkpoint(model, tokenizer, tmp_path / "tuned", {})
    assert "per_layer_config" in json.loads((tmp_path / "tuned" / "config.json").read_text())
    reloaded = load_pruned(tmp_path / "tuned")
    with torch.no_grad():
        assert torch.allclose(model(windows[:2]).logits, reloaded(windows[:2]).logits, atol=1e-6)


def test_per_layer_config_is_spelled_as_transformers_heterogeneous_configs(tmp_path):
    """A removed sub-block is named in `skip` and has no widths (transformers validates widths > 0);
    folders written before that (widths 0) still load."""
    from secateur.api import save_pruned

    model = tiny_model("llama")
    geometry = ModelAdapter(model).geometry()
    plan = StructuredPlan("llama", geometry.gqa_ratio, geometry.head_dim)
    for layer, (kv, channels) in enumerate([([0], list(range(50))), ([], list(range(128))), ([0, 1], [])]):
        plan.layers.append(LayerPlan(layer, kv, channels))
    apply_plan(ModelAdapter(model), plan)
    save_pruned(model, None, tmp_path / "new")
    data = json.loads((tmp_path / "new" / "config.json").read_text())
    layers = data["per_layer_config"]
    assert layers["0"] == {"num_attention_heads": 2, "num_key_value_heads": 1, "intermediate_size": 50}
    assert layers["1"] == {"intermediate_size": 128, "skip": ["attention"]}
    assert layers["2"] == {"num_attention_heads": 4, "num_key_value_heads": 2, "skip": ["mlp"]}
    ids = torch.randint(0, 256, (2, 10))
    with torch.no_grad():
        expected = model(ids).logits
        assert torch.equal(load_pruned(tmp_path / "new")(ids).logits, expected)
        layers["1"].update(num_attention_heads=0, num_key_value_heads=0)  # the earlier spelling
        layers["2"]["intermediate_size"] = 0
        (tmp_path / "new" / "config.json").write_text(json.dumps(data))
        assert torch.equal(load_pruned(tmp_path / "new")(ids).logits, expected)

import pytest

from helpers.tiny import MODEL_TYPES, MOE_TYPES, tiny_model
from secateur.errors import SecateurError
from secateur.models.adapter import ModelAdapter


@pytest.mark.parametrize(
    "model_type", [t for t in MODEL_TYPES if t not in ("phi3", "opt", *MOE_TYPES)]
)  # fused / no gate / experts (test_moe_roles_are_views_of_the_fused_experts)
def test_roles_and_geometry(model_type):
    model = tiny_model(model_type, num_attention_heads=8, num_key_value_heads=2)
    adapter = ModelAdapter(model)
    g = adapter.geometry()
    head_dim = (
        32 if model_type in ("qwen3", "gemma2", "gemma3_text", "gemma3") else 64 // 8
    )  # given in their configs
    assert (g.num_heads, g.num_kv_heads, g.head_dim, g.gqa_ratio) == (8, 2, head_dim, 4)
    layer = adapter.decoder_layers()[1]
    linears = adapter.linears(layer)
    assert list(linears) == ["q", "k", "v", "o", "gate", "up", "down"]
    assert linears["k"].weight.shape == (2 * head_dim, 64)
    assert linears["q"].weight.shape == (8 * head_dim, 64) and linears["o"].weight.shape == (64, 8 * head_dim)
    assert linears["down"].weight.shape == (64, 128)
    assert (linears["q"].bias is not None) == (model_type == "qwen2")
    modules = dict(model.named_modules())
    for role, name in adapter.linear_names(1).items():
        assert modules[name] is linears[role]


def test_mha_when_num_key_value_heads_is_absent():
    model = tiny_model("llama")
    del model.config.num_key_value_heads
    g = ModelAdapter(model).geometry()
    assert g.num_kv_heads == g.num_heads == 4 and g.gqa_ratio == 1


def test_unsupported_architecture_names_the_supported_ones():
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50))
    with pytest.raises(SecateurError, match=r"'gpt2' is not supported; supported: .*llama.*mistral.*qwen2"):
        ModelAdapter(model)


def test_fused_and_gateless_families_map_their_roles():
    phi3 = ModelAdapter(tiny_model("phi3", num_attention_heads=8, num_key_value_heads=2))
    linears = phi3.linears(phi3.decoder_layers()[0])
    assert list(linears) == ["qkv", "o", "gate_up", "down"]
    g = phi3.geometry()
    assert (g.num_heads, g.num_kv_heads, g.head_dim) == (8, 2, 8)
    assert linears["qkv"].out_features == (8 + 2 * 2) * 8 and linears["gate_up"].out_features == 2 * 128
    opt = ModelAdapter(tiny_model("opt"))
    linears = opt.linears(opt.decoder_layers()[0])
    assert list(linears) == ["q", "k", "v", "o", "up", "down"] and linears["q"].bias is not None
    assert opt.geometry().gqa_ratio == 1 and opt.final_norm() is opt.model.model.decoder.final_layer_norm
    assert opt.layer_shape(0).mlp_inputs == 1 and opt.layer_shape(0).mlp_bias
    olmo2 = ModelAdapter(tiny_model("olmo2"))
    with pytest.raises(SecateurError, match="--method structured does not support olmo2 yet"):
        olmo2.require_structured("structured")


def test_fused_rows_translate_to_and_from_the_generic_roles():
    import torch

    phi3 = ModelAdapter(tiny_model("phi3", num_attention_heads=8, num_key_value_heads=2))
    shape = phi3.layer_shape(0)  # read off the fused rows: 96 = (8 q + 2 k + 2 v heads) x 8
    assert (shape.num_kv_heads, shape.gqa_ratio, shape.head_dim, shape.intermediate) == (2, 4, 8, 128)
    rows = torch.arange(96.0)
    parts = phi3.unfused({"qkv": rows, "gate_up": torch.arange(256.0), "o": None}, shape)
    assert parts["q"].tolist() == list(range(64)) and parts["k"].tolist() == list(range(64, 80))
    assert parts["v"].tolist() == list(range(80, 96)) and parts["o"] is None
    assert parts["gate"].tolist() == list(range(128)) and parts["up"].tolist() == list(range(128, 256))
    layer = phi3.decoder_layers()[0]
    # KV group 1: query rows 32-63, key and value rows 8-15 of their parts.
    keep = {"q": torch.arange(32, 64), "k": torch.arange(8, 16), "v": torch.arange(8, 16)}
    ((linear, fused_rows),) = phi3.output_rows(layer, keep, shape)
    assert linear is layer.self_attn.qkv_proj
    assert fused_rows.tolist() == [*range(32, 64), *range(72, 80), *range(88, 96)]
    ((linear, fused_rows),) = phi3.output_rows(
        layer, {"gate": torch.tensor([3]), "up": torch.tensor([3])}, shape
    )
    assert linear is layer.mlp.gate_up_proj and fused_rows.tolist() == [3, 131]


@pytest.mark.parametrize("model_type", MOE_TYPES)
def test_moe_roles_are_views_of_the_fused_experts(model_type):
    """Each expert's gate/up/down is a Linear over a slice of the fused tensors: writing it writes them."""
    import torch

    model = tiny_model(model_type)
    adapter = ModelAdapter(model)
    index = 2  # a routed layer in every tiny MoE (Qwen2-MoE's layer 1, DeepSeek's layer 0 are dense)
    layer = adapter.decoder_layers()[index]
    linears = adapter.linears(layer)
    experts = layer.mlp.experts
    count, width = experts.gate_up_proj.shape[0], experts.gate_up_proj.shape[1] // 2
    expert_roles = [r for r in linears if r.startswith("experts.")]
    assert expert_roles == [f"experts.{e}.{p}" for e in range(count) for p in ("gate", "up", "down")]
    assert torch.equal(linears["experts.1.up"].weight, experts.gate_up_proj[1, width:])
    assert torch.equal(linears["experts.2.down"].weight, experts.down_proj[2])
    with torch.no_grad():
        linears["experts.1.gate"].weight.zero_()
    assert not experts.gate_up_proj[1, :width].any() and experts.gate_up_proj[1, width:].any()
    assert adapter.linear_names(index)["experts.1.gate"] == f"model.layers.{index}.mlp.experts.1.gate"
    fused = adapter.weight_parameters(index)
    assert fused[f"model.layers.{index}.mlp.experts.gate_up_proj"] is experts.gate_up_proj
    assert "experts.0.gate" not in str(list(fused))  # views are never trained or guarded

"""nemotron-nas export (vLLM's DeciLMForCausalLM): the folder holds exactly the tensors its
block_configs call for, and computes what the pruned model computes (an oracle built from the
block_configs, as vLLM builds the model; helpers/decilm_reference.py). Offline, transformers cannot
run DeciLM's remote modeling code, so that oracle stands in for it; the config class shipped in
the folder is loaded for real."""

from __future__ import annotations

import json

import pytest
import torch

from helpers.cli import assert_refused
from helpers.decilm_reference import decilm_logits, decilm_shapes
from helpers.tiny import tiny_model, tiny_tokenizer
from secateur.export.nemotron_nas import divisor_at_least, write_nemotron_nas
from secateur.models.adapter import ModelAdapter
from secateur.structured.apply import apply_plan
from secateur.structured.plan import LayerPlan, StructuredPlan

IDS = torch.randint(0, 256, (2, 12), generator=torch.Generator().manual_seed(1))


def _pruned(model_type, kv_by_layer, channels_by_layer, **overrides):
    model = tiny_model(model_type, num_hidden_layers=len(kv_by_layer), **overrides)
    geometry = ModelAdapter(model).geometry()
    plan = StructuredPlan(model_type, geometry.gqa_ratio, geometry.head_dim)
    for layer, (kv, channels) in enumerate(zip(kv_by_layer, channels_by_layer, strict=True)):
        plan.layers.append(LayerPlan(layer, kv, channels))
    apply_plan(ModelAdapter(model), plan)
    return model


_LLAMA_CHANNELS = [list(range(128)), [], list(range(50)), list(range(7, 100))]
_QWEN_CHANNELS = [list(range(64)), list(range(128)), [], list(range(90))]
_QWEN_SIZES = {"num_attention_heads": 8, "num_key_value_heads": 4, "hidden_size": 128}
CASES = {
    # 6 query heads over 3 KV groups (2 each): 2 kept groups -> 3 query heads per KV head in the
    # file, one of them zero; 1 kept group -> 6, four of them zero.
    "llama": ("llama", {"num_attention_heads": 6, "num_key_value_heads": 3, "hidden_size": 96},
              [[0, 1, 2], [2], [], [0, 2]], _LLAMA_CHANNELS),
    # 8 heads over 4 groups: keeping 3 groups pads to 4 KV heads (3 does not divide 8).
    "qwen2 (biases, padding)": ("qwen2", _QWEN_SIZES, [[], [0, 1, 3], [1], [0, 1, 2, 3]], _QWEN_CHANNELS),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_folder_computes_what_the_pruned_model_computes(case, tmp_path):
    model_type, overrides, kv, channels = CASES[case]
    model = _pruned(model_type, kv, channels, **overrides)
    report = write_nemotron_nas(model, tiny_tokenizer(), tmp_path / "nas")
    from safetensors.torch import load_file

    tensors = load_file(str(tmp_path / "nas" / "model.safetensors"))
    expected = decilm_shapes(tmp_path / "nas")
    assert {k: tuple(v.shape) for k, v in tensors.items()} == expected  # nothing missing, nothing extra
    with torch.no_grad():
        ours = model(IDS).logits.double()
    torch.testing.assert_close(decilm_logits(tmp_path / "nas", IDS), ours, rtol=1e-4, atol=1e-4)  # fp32 model
    config = json.loads((tmp_path / "nas" / "config.json").read_text())
    assert config["architectures"] == ["DeciLMForCausalLM"] and config["model_type"] == "nemotron-nas"
    assert config["qkv_bias"] == (model_type == "qwen2")
    assert report.global_heads == overrides["num_attention_heads"]


def test_blocks_padding_and_stand_ins(tmp_path):
    model_type, overrides, kv, channels = CASES["qwen2 (biases, padding)"]
    report = write_nemotron_nas(
        _pruned(model_type, kv, channels, **overrides), tiny_tokenizer(), tmp_path / "nas"
    )
    blocks = json.loads((tmp_path / "nas" / "config.json").read_text())["block_configs"]
    # layer 0: no attention -> one zero KV head; 1: 3 groups -> padded to 4; 2: 1 group, no MLP
    assert [b["attention"]["n_heads_in_group"] for b in blocks] == [8, 2, 8, 2]
    assert [b["ffn"]["intermediate_size"] for b in blocks] == [64, 128, None, 90]
    assert blocks[2]["ffn"]["no_op"] and not any(b["attention"]["no_op"] for b in blocks)
    assert all(b["attention"]["replace_with_linear"] is False for b in blocks)
    assert report.padded_kv == {1: (3, 4)} and report.kv_heads == [1, 4, 1, 4]
    assert any("layer 0 has no attention" in note for note in report.notes)


def test_the_shipped_config_class_reads_block_configs_as_attributes(tmp_path):
    from transformers import AutoConfig

    model_type, overrides, kv, channels = CASES["llama"]
    write_nemotron_nas(_pruned(model_type, kv, channels, **overrides), tiny_tokenizer(), tmp_path / "nas")
    config = AutoConfig.from_pretrained(tmp_path / "nas", trust_remote_code=True)  # the local file
    assert type(config).__name__ == "DeciLMConfig" and config.model_type == "nemotron-nas"
    block = config.block_configs[1]
    assert block.ffn.no_op and block.attention.n_heads_in_group == 6  # vLLM reads these attributes
    assert not hasattr(config.block_configs[0].ffn, "ffn_mult")  # so vLLM takes intermediate_size as is
    assert config.to_dict()["block_configs"][3]["attention"]["n_heads_in_group"] == 3


def test_divisor_padding():
    assert [divisor_at_least(k, 12) for k in (1, 2, 3, 4, 5, 7, 12)] == [1, 2, 3, 4, 6, 12, 12]


def test_cli_and_refusals(saved_llama, tmp_path, capsys):
    from secateur.cli.main import main

    out = tmp_path / "nas"
    assert main(["export", "--model", str(saved_llama), "--format", "nemotron-nas", "--out", str(out)]) == 0
    assert "DeciLMForCausalLM" in capsys.readouterr().out and (out / "configuration_decilm.py").is_file()
    args = [
        "export",
        "--model",
        saved_llama,
        "--format",
        "nemotron-nas",
        "--outtype",
        "f16",
        "--out",
        tmp_path / "y",
    ]
    assert_refused(capsys, args, "--outtype is for --format gguf", out=tmp_path / "y")
    from secateur.errors import SecateurError

    with pytest.raises(SecateurError, match="Llama-style layers"):
        write_nemotron_nas(tiny_model("qwen3"), tiny_tokenizer(), tmp_path / "q3")


def test_a_plan_made_for_vllm_is_written_without_padding(saved_llama, corpus, tmp_path, capsys):
    from helpers.cli import prune_args
    from secateur.api import load_model
    from secateur.cli.main import main

    out = tmp_path / "served"
    args = prune_args(saved_llama, corpus, "--method", "structured", "--importance", "wanda", "--no-eval")
    assert main([*args, "--pruning-ratio", "0.3", "--serve", "vllm", "--out", str(out)]) == 0
    loaded = load_model(str(out))
    shapes = [ModelAdapter(loaded.model).layer_shape(i) for i in range(3)]
    assert shapes[0].num_kv_heads == 2 and {s.num_kv_heads for s in shapes} <= {0, 2}  # whole or kept
    assert any(s.num_kv_heads == 0 for s in shapes)
    report = write_nemotron_nas(loaded.model, loaded.tokenizer, tmp_path / "nas")
    assert report.padded_kv == {} and report.notes == []
    uniform = [*args, "--serve", "vllm", "--uniform", "--out", tmp_path / "u"]
    assert_refused(capsys, uniform, "drop --serve", out=tmp_path / "u")
    depth = prune_args(saved_llama, corpus, "--method", "depth", "--num-layers", "1", "--serve", "vllm")
    assert_refused(capsys, [*depth, "--out", tmp_path / "d"], "--serve", out=tmp_path / "d")

"""GGUF export: every output kind written for llama.cpp and read back by two oracles that share no
code with the writer: a forward pass computed from the file as llama.cpp's graphs compute it
(helpers/gguf_reference.py) and, for the uniform files transformers reads, transformers' own GGUF
loader. Per-layer arrays, tokenizer metadata, types and refusals are checked on the file itself."""

from __future__ import annotations

import pytest
import torch

from helpers.cli import assert_refused
from helpers.gguf_reference import gguf_logits, read_gguf
from helpers.tiny import tiny_bpe_tokenizer, tiny_model, tiny_tokenizer
from secateur.export.gguf import permute_rows, write_gguf
from secateur.export.gguf_vocab import pre_tokenizer_name
from secateur.models.adapter import ModelAdapter
from secateur.structured.apply import apply_plan
from secateur.structured.plan import LayerPlan, StructuredPlan

IDS = torch.randint(0, 256, (2, 12), generator=torch.Generator().manual_seed(0))


def _logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(IDS).logits.double()


def _structured(model, kv_by_layer, channels_by_layer):
    geometry = ModelAdapter(model).geometry()
    plan = StructuredPlan(model.config.model_type, geometry.gqa_ratio, geometry.head_dim)
    for layer, (kv, channels) in enumerate(zip(kv_by_layer, channels_by_layer, strict=True)):
        plan.layers.append(LayerPlan(layer, kv, channels))
    apply_plan(ModelAdapter(model), plan)
    return model


CASES = {
    # name: (model_type, overrides, how it is pruned, the GGUF architecture expected)
    "llama dense, tied": ("llama", {"tie_word_embeddings": True}, None, "llama"),
    "qwen2 dense (biases)": ("qwen2", {}, None, "qwen2"),
    "qwen3 dense (q/k norms)": ("qwen3", {"head_dim": 128}, None, "qwen3"),
    "mistral dense": ("mistral", {}, None, "llama"),
    "granite dense (multipliers)": ("granite", {}, None, "granite"),
    "phi3 dense (fused)": ("phi3", {}, None, "phi3"),
    "phi3 MLP channels": ("phi3", {}, ([[0, 1]] * 3, [list(range(80))] * 3), "phi3"),
    # Uniform structured: one KV group of two and half the channels in every layer.
    "llama uniform structured": ("llama", {}, ([[1]] * 3, [list(range(0, 128, 2))] * 3), "llama"),
    # Qwen2's GGUF architecture fixes the query width: fewer heads go out as llama, permuted.
    "qwen2 uniform structured": ("qwen2", {}, ([[0]] * 3, [list(range(64))] * 3), "llama"),
    # Per-layer widths and removed sub-blocks (deci): layer 0 loses its attention (a zero head
    # stands in), layer 1 its MLP (a zero feed-forward stands in), layer 2 keeps one KV group.
    "llama global structured": (
        "llama", {"num_hidden_layers": 4},
        ([[], [0, 1], [1], [0]], [list(range(90)), [], list(range(40)), list(range(128))]), "deci",
    ),
    "qwen2 global structured": (
        "qwen2", {"num_hidden_layers": 3}, ([[0, 1], [], [1]], [[], list(range(100)), list(range(7, 61))]),
        "deci",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_file_computes_what_the_model_computes(case, tmp_path):
    model_type, overrides, structured, arch = CASES[case]
    model = tiny_model(model_type, **overrides)
    if structured is not None:
        _structured(model, *structured)
    report = write_gguf(model, tiny_bpe_tokenizer(), tmp_path / "m.gguf", "f32")
    assert report.arch == arch
    fields, tensors = read_gguf(tmp_path / "m.gguf")
    assert (
        fields["general.architecture"] == arch
        and fields[f"{arch}.block_count"] == model.config.num_hidden_layers
    )
    torch.testing.assert_close(gguf_logits(tmp_path / "m.gguf", IDS), _logits(model), rtol=1e-5, atol=1e-5)
    assert ("output.weight" in tensors) == (not model.config.tie_word_embeddings)


def test_per_layer_arrays_and_stand_ins_of_a_global_plan(tmp_path):
    model = _structured(tiny_model("llama", num_hidden_layers=4), *CASES["llama global structured"][2])
    report = write_gguf(model, tiny_bpe_tokenizer(), tmp_path / "m.gguf", "f32")
    fields, tensors = read_gguf(tmp_path / "m.gguf")
    # Layer 0: no attention (one zero head stands in); 1: no MLP (a zero FFN of 32); 2: one group.
    assert fields["deci.attention.head_count"] == [1, 4, 2, 2] == report.head_count
    assert fields["deci.attention.head_count_kv"] == [1, 2, 1, 1]
    assert fields["deci.feed_forward_length"] == [90, 32, 40, 128]
    assert fields["deci.attention.key_length"] == fields["deci.rope.dimension_count"] == 16
    assert not tensors["blk.0.attn_output.weight"].any() and not tensors["blk.1.ffn_down.weight"].any()
    assert tensors["blk.2.attn_q.weight"].shape == (2 * 16, 64) and tensors["blk.2.attn_k.weight"].shape == (
        16,
        64,
    )
    assert len(report.notes) == 2


def test_permutation_is_rotate_half_to_adjacent_pairs():
    rows = torch.arange(2 * 8).float()  # two heads of 8
    permuted = permute_rows(rows, heads=2)
    assert permuted[:8].tolist() == [0, 4, 1, 5, 2, 6, 3, 7]  # row 2i+j <- row j*4+i
    assert permuted[8:].tolist() == [8, 12, 9, 13, 10, 14, 11, 15]


def test_transformers_reads_the_uniform_files_back(tmp_path):
    from transformers import AutoModelForCausalLM

    for model_type in ("llama", "qwen2", "phi3"):
        model = tiny_model(model_type, tie_word_embeddings=model_type == "llama")
        write_gguf(model, tiny_bpe_tokenizer(), tmp_path / f"{model_type}.gguf", "f32")
        back = AutoModelForCausalLM.from_pretrained(
            tmp_path, gguf_file=f"{model_type}.gguf", dtype=torch.float32
        )
        torch.testing.assert_close(_logits(back), _logits(model), rtol=0, atol=1e-6)


@pytest.mark.parametrize("outtype", ["f16", "q8_0"])
def test_smaller_types_keep_norms_f32_and_stay_close(outtype, tmp_path):
    import gguf

    model = _structured(tiny_model("llama"), [[0, 1]] * 3, [list(range(100))] * 3)  # 100: not x32
    report = write_gguf(model, tiny_bpe_tokenizer(), tmp_path / "m.gguf", outtype)
    types = {t.name: t.tensor_type.name for t in gguf.GGUFReader(str(tmp_path / "m.gguf")).tensors}
    assert types["blk.0.attn_norm.weight"] == "F32" and types["output_norm.weight"] == "F32"
    assert types["blk.0.attn_q.weight"] == outtype.upper()
    if outtype == "q8_0":  # ffn_down's rows are 100 long: not a whole number of 32-blocks
        assert types["blk.0.ffn_down.weight"] == "F16" and types["blk.0.ffn_up.weight"] == "Q8_0"
        assert any("kept f16" in note for note in report.notes)
    error = (gguf_logits(tmp_path / "m.gguf", IDS) - _logits(model)).abs().max()
    assert 0 < error < (0.05 if outtype == "f16" else 0.5)


def test_tokenizer_metadata(tmp_path):
    model = tiny_model("llama", vocab_size=300)  # more embeddings than the tokenizer has ids
    tokenizer = tiny_bpe_tokenizer()
    write_gguf(model, tokenizer, tmp_path / "m.gguf", "f32")
    fields, _ = read_gguf(tmp_path / "m.gguf")
    tokens = fields["tokenizer.ggml.tokens"]
    assert len(tokens) == 300 and tokens[256] == "<|endoftext|>" and tokens[257] == "th"
    assert tokens[299] == "[PAD299]" and fields["tokenizer.ggml.token_type"][299] == 5  # unused
    assert fields["tokenizer.ggml.token_type"][256] == 3  # a special token: control
    assert fields["tokenizer.ggml.merges"] == ["t h", "th e", "Ġ t"]
    assert fields["tokenizer.ggml.model"] == "gpt2" and fields["tokenizer.ggml.pre"] == "gpt-2"
    assert fields["tokenizer.ggml.eos_token_id"] == 256  # the tokenizer's; it has no BOS: the config's
    assert fields["tokenizer.ggml.bos_token_id"] == model.config.bos_token_id == 1
    assert fields["tokenizer.ggml.add_bos_token"] is False


def test_pre_tokenizer_names_follow_the_split():
    level = {"type": "ByteLevel", "use_regex": False}
    qwen = r"(?i:'s|'t)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s+"
    llama3 = qwen.replace(r"\p{N}|", r"\p{N}{1,3}|")
    split = {"type": "Split", "pattern": {"Regex": qwen}}
    assert pre_tokenizer_name({"type": "Sequence", "pretokenizers": [split, level]}) == ("qwen2", True)
    split3 = {"type": "Split", "pattern": {"Regex": llama3}}
    assert pre_tokenizer_name({"type": "Sequence", "pretokenizers": [split3, level]}) == ("llama-bpe", True)
    digits = {"type": "Digits", "individual_digits": True}
    assert pre_tokenizer_name({"type": "Sequence", "pretokenizers": [digits, {"type": "ByteLevel"}]}) == (
        "smollm",
        True,
    )
    assert pre_tokenizer_name({"type": "Whitespace"}) == ("default", False)


def test_what_cannot_be_written_is_refused_in_one_line(tmp_path):
    from secateur.errors import SecateurError

    with pytest.raises(SecateurError, match=r"llama\.cpp has no OPT architecture"):
        write_gguf(tiny_model("opt"), tiny_tokenizer(), tmp_path / "opt.gguf")
    qwen3 = _structured(tiny_model("qwen3"), [[0], [0, 1], [1]], [list(range(64))] * 3)
    with pytest.raises(SecateurError, match="prune with --uniform to export this family"):
        write_gguf(qwen3, tiny_bpe_tokenizer(), tmp_path / "q3.gguf")
    (tmp_path / "there.gguf").write_text("keep me")
    with pytest.raises(SecateurError, match="pass --overwrite"):
        write_gguf(tiny_model("llama"), tiny_bpe_tokenizer(), tmp_path / "there.gguf")
    assert (tmp_path / "there.gguf").read_text() == "keep me"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial file left


def test_cli_exports_a_saved_output(saved_llama, tmp_path, capsys):
    from secateur.cli.main import main

    out = tmp_path / "model.gguf"
    assert (
        main(
            ["export", "--model", str(saved_llama), "--format", "gguf", "--outtype", "f32", "--out", str(out)]
        )
        == 0
    )
    assert "llama" in capsys.readouterr().out
    fields, _ = read_gguf(out)
    assert fields["llama.block_count"] == 3
    assert_refused(
        capsys, ["export", "--model", saved_llama, "--format", "gguf", "--out", out], "--overwrite"
    )
    bad = [
        "export",
        "--model",
        saved_llama,
        "--format",
        "gguf",
        "--outtype",
        "q4",
        "--out",
        tmp_path / "x.gguf",
    ]
    assert_refused(capsys, bad, "--outtype", out=tmp_path / "x.gguf")


def test_gemma_norms_keys_and_refusals(tmp_path):
    """Gemma's norms compute x * (1 + w): llama.cpp reads 1 + w. Its sliding layers are a period;
    its attention scale must be the one llama.cpp derives (checked in llama.cpp: test_engines)."""
    from secateur.errors import SecateurError

    model = tiny_model("gemma3_text", query_pre_attn_scalar=32, tie_word_embeddings=True, num_hidden_layers=4)
    write_gguf(model, tiny_bpe_tokenizer(), tmp_path / "g.gguf", "f32")
    fields, tensors = read_gguf(tmp_path / "g.gguf")
    layer = model.model.layers[0]
    torch.testing.assert_close(
        tensors["blk.0.post_ffw_norm.weight"], layer.post_feedforward_layernorm.weight.double() + 1
    )
    torch.testing.assert_close(
        tensors["blk.0.attn_q_norm.weight"], layer.self_attn.q_norm.weight.double() + 1
    )
    assert (
        fields["gemma3.attention.sliding_window_pattern"] == 2
        and fields["gemma3.attention.sliding_window"] == 8
    )
    assert fields["gemma3.rope.freq_base"] == 1e6 and fields["gemma3.rope.freq_base_swa"] == 1e4
    assert "output.weight" not in tensors
    with pytest.raises(SecateurError, match=r"1/sqrt\(32\), its config by 1/sqrt\(256\)"):
        write_gguf(tiny_model("gemma2", tie_word_embeddings=True), tiny_bpe_tokenizer(), tmp_path / "x.gguf")
    kinds = ["sliding_attention", "full_attention", "full_attention", "sliding_attention"]
    odd = tiny_model(
        "gemma2", query_pre_attn_scalar=32, tie_word_embeddings=True, num_hidden_layers=4, layer_types=kinds
    )
    with pytest.raises(SecateurError, match="not periodic"):
        write_gguf(odd, tiny_bpe_tokenizer(), tmp_path / "y.gguf")


def test_lm_head_is_written_as_each_architecture_reads_it(tmp_path):
    """olmo2 requires output.weight even when tied; gemma2 never reads one (an untied head is refused)."""
    from secateur.errors import SecateurError

    write_gguf(
        tiny_model("olmo2", tie_word_embeddings=True), tiny_bpe_tokenizer(), tmp_path / "o.gguf", "f32"
    )
    _, tensors = read_gguf(tmp_path / "o.gguf")
    assert "output.weight" in tensors and "blk.0.attn_norm.weight" not in tensors
    assert tensors["blk.0.attn_q_norm.weight"].shape == (64,)  # the whole query width, as OLMo 2 norms it
    untied = tiny_model("gemma2", query_pre_attn_scalar=32, tie_word_embeddings=False)
    with pytest.raises(SecateurError, match="ties its LM head"):
        write_gguf(untied, tiny_bpe_tokenizer(), tmp_path / "g.gguf")

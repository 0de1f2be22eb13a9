"""LoRA recovery: loss falls, pruned zeros survive the merge, adapters round-trip on every kind of output."""

import json

import pytest
import torch

import secateur
from helpers.tiny import tiny_model
from secateur.cli.main import main
from secateur.config import PruneConfig, StructuredConfig
from secateur.models.adapter import ModelAdapter
from secateur.recovery.config import LoraConfig, LoraTrainingConfig
from secateur.recovery.instructions import IGNORE, encode, prompt
from secateur.recovery.lora import merge_keeping_masks, recover
from secateur.structured.run import structured_prune

CPU = torch.device("cpu")
TRAIN = dict(seqlen=32, max_steps=12, learning_rate=1e-2, batch_size=4, grad_accum=1, logging_steps=1)
RECORDS = [
    {"instruction": f"Repeat the word {w}.", "input": "" if i % 2 else "twice", "output": f"{w} {w}"}
    for i, w in enumerate(["apple", "river", "stone", "cloud", "green", "paper", "light", "music"] * 3)
]


@pytest.fixture
def windows(token_windows):
    return token_windows(4, 32)


def test_lora_lowers_the_loss_and_leaves_the_base_weights_alone(tokenizer, corpus, windows):
    model = tiny_model()
    base = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        before = model(windows, labels=windows).loss.item()
    wrapped, masks, result = recover(
        model,
        tokenizer,
        LoraConfig(r=4, alpha=8),
        LoraTrainingConfig(dataset=str(corpus), **TRAIN),
        show_progress=False,
    )
    assert result.data_kind == "text" and result.training.steps == 12 and masks.pruned == 0
    with torch.no_grad():
        after = model(windows, labels=windows).loss.item()
    assert after < before and result.training.last_loss < result.training.first_loss
    # 7 Linears x 3 layers, each r x (in + out)
    sizes = [(64, 64), (64, 32), (64, 32), (64, 64), (64, 128), (64, 128), (128, 64)]
    assert result.trainable_params == 3 * sum(4 * (i + o) for i, o in sizes)
    merged = wrapped.merge_and_unload()
    changed = [n for n, p in merged.named_parameters() if not torch.equal(p, base[n])]
    assert changed and all(n.endswith("proj.weight") for n in changed)


def test_pruned_zeros_survive_the_merge(tokenizer, corpus, windows):
    model = tiny_model()
    secateur.prune(model, PruneConfig(method="wanda", pattern="2:4"), windows, show_progress=False)
    zeros = {n: (p == 0).clone() for n, p in model.named_parameters() if (p == 0).any()}
    wrapped, masks, _ = recover(
        model,
        tokenizer,
        LoraConfig(r=4),
        LoraTrainingConfig(dataset=str(corpus), **TRAIN),
        show_progress=False,
    )
    assert masks.pruned == sum(int(z.sum()) for z in zeros.values()) > 0
    layer = wrapped.base_model.model.model.layers[0].self_attn.q_proj
    delta = layer.get_delta_weight("default")
    assert bool((delta[zeros["model.layers.0.self_attn.q_proj.weight"]] != 0).any())  # a plain merge revives
    merged = merge_keeping_masks(wrapped, masks)
    params = dict(merged.named_parameters())
    assert all(int((params[n][z] != 0).sum()) == 0 for n, z in zeros.items())
    assert all(bool((params[n][~z] != 0).all()) for n, z in zeros.items())


def test_alpaca_prompts_and_labels():
    from helpers.tiny import tiny_tokenizer

    tokenizer = tiny_tokenizer()
    record = {"instruction": "Say hi.", "input": "", "output": "hi"}
    assert prompt(record).endswith("### Instruction:\nSay hi.\n\n### Response:\n")
    assert "### Input:\nto Bob" in prompt(record | {"input": "to Bob"})
    example = encode(tokenizer, record, 512, train_on_inputs=False)
    head = len(tokenizer(prompt(record))["input_ids"])
    assert (example["labels"][:head] == IGNORE).all()
    assert example["labels"][head:].tolist() == [*tokenizer("hi")["input_ids"], tokenizer.eos_token_id]
    assert example["input_ids"][head:].tolist() == example["labels"][head:].tolist()
    assert (
        encode(tokenizer, record, 512, train_on_inputs=True)["labels"].tolist()
        == example["input_ids"].tolist()
    )
    assert len(encode(tokenizer, record, 20, train_on_inputs=False)["input_ids"]) == 20


@pytest.mark.parametrize("merge", [False, True])
def test_heterogeneous_model_recovers_and_round_trips(windows, corpus, tmp_path, merge, capsys):
    from secateur.api import save_pruned
    from secateur.export.loading import load_model
    from secateur.export.structured import sync_uniform_config

    model = tiny_model("llama", max_position_embeddings=512)  # room for the Alpaca preamble in bytes
    adapter = ModelAdapter(model)
    config = StructuredConfig(importance="magnitude", pruning_ratio=0.3, temperature=0.0)
    structured_prune(adapter, config, windows, device=CPU, show_progress=False)
    assert not sync_uniform_config(adapter)
    from helpers.tiny import tiny_tokenizer

    data = tmp_path / "alpaca.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    save_pruned(model, tiny_tokenizer(), tmp_path / "pruned")
    out = tmp_path / "recovered"
    args = [
        "recover",
        "--model",
        str(tmp_path / "pruned"),
        "--data",
        str(data),
        "--out",
        str(out),
        "--lora-r",
        "4",
        "--train-seqlen",
        "320",
        "--max-steps",
        "6",
        "--lr",
        "1e-2",
        "--val-set-size",
        "4",
        "--eval-dataset",
        str(corpus),
        "--eval-seqlen",
        "32",
        "--quiet",
        "--json",
        str(tmp_path / "m.json"),
    ]
    assert main([*args, *(["--merge"] if merge else [])]) == 0
    assert "instructions" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "m.json").read_text())
    assert manifest["recover"]["training"]["train_windows"] == len(RECORDS) - 4
    files = {p.name for p in out.iterdir()}
    if merge:
        assert "per_layer_config" in json.loads((out / "config.json").read_text())
    else:
        assert {"adapter_config.json", "adapter_model.safetensors"} <= files and "config.json" not in files
        base = json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"]
        assert base == str((tmp_path / "pruned").resolve())
    reloaded = load_model(str(out), "float32").model
    plain = load_model(str(tmp_path / "pruned"), "float32").model
    with torch.no_grad():
        ours, theirs = reloaded(windows[:2]).logits, plain(windows[:2]).logits
    assert not torch.allclose(ours, theirs, atol=1e-4)  # the adapter is in
    assert sum(p.numel() for p in reloaded.parameters()) == sum(p.numel() for p in plain.parameters())
    assert main([*args, "--overwrite", "--data", str(tmp_path / "none.json")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_bad_recover_input_is_one_line(saved_llama, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"instruction": "x"}]))
    common = [
        "recover",
        "--model",
        str(saved_llama),
        "--out",
        str(tmp_path / "o"),
        "--quiet",
        "--train-seqlen",
        "64",
    ]
    assert main([*common, "--data", str(bad)]) == 2
    assert "'instruction' and 'output'" in capsys.readouterr().err
    assert main([*common, "--lora-r", "0"]) == 2
    assert "--lora-r must be at least 1" in capsys.readouterr().err
    assert main([*common, "--target-modules", "qq_proj"]) == 2
    assert "matches no Linear" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_depth_pruned_model_recovers_and_merges_into_a_plain_checkpoint(tokenizer, corpus, windows, tmp_path):
    from transformers import AutoModelForCausalLM

    from secateur.api import save_pruned
    from secateur.structured.depth import remove_layers

    model = tiny_model("mistral", num_hidden_layers=4)
    remove_layers(ModelAdapter(model), [1, 2])
    training = LoraTrainingConfig(dataset=str(corpus), **(TRAIN | {"max_steps": 3}))
    wrapped, masks, _ = recover(model, tokenizer, LoraConfig(r=2), training, show_progress=False)
    merged = merge_keeping_masks(wrapped, masks)
    save_pruned(merged, tokenizer, tmp_path / "merged")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    assert reloaded.config.num_hidden_layers == 2
    with torch.no_grad():
        assert torch.allclose(reloaded(windows[:2]).logits, merged(windows[:2]).logits, atol=1e-5)

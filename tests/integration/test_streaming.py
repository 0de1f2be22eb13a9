"""--stream: decoder layers read from the checkpoint's shards just before their turn, written out
right after. The output must be bit-identical to the in-RAM run's, load with plain transformers,
and measure the same perplexity; what cannot stream is refused in one line."""

import json

import pytest
import torch

from helpers.cli import assert_refused, prune_args
from helpers.tiny import tiny_model, tiny_tokenizer
from secateur.cli.main import main


def _sharded(folder, model_type="llama", **overrides):
    """A tiny checkpoint split into many shards (every layer spread over several files)."""
    tiny_model(model_type, **overrides).save_pretrained(folder, max_shard_size="100KB")
    tiny_tokenizer().save_pretrained(folder)
    return folder


def _tensors(folder):
    from safetensors.torch import load_file

    state = {}
    for file in sorted(folder.glob("*.safetensors")):
        state.update(load_file(str(file)))
    return state


def _both(source, corpus, tmp_path, *method):
    outs = {}
    for kind, extra in (("in_ram", []), ("streamed", ["--stream"])):
        outs[kind] = tmp_path / kind
        args = prune_args(source, corpus, *method, "--eval-windows", "2", "--out", str(outs[kind]), "--quiet")
        assert main([*args, *extra]) == 0
    return outs


METHODS = {
    "wanda": ("--method", "wanda", "--sparsity", "0.5"),
    "sparsegpt-2:4": ("--method", "sparsegpt", "--pattern", "2:4"),
    "magnitude-block:16": ("--method", "magnitude", "--pattern", "block:16", "--sparsity", "0.5"),
    "wanda-owl-skip": ("--method", "wanda", "--sparsity", "0.5", "--owl", "5,0.08", "--skip-layers", "0"),
    "wanda-tiered": ("--method", "wanda", "--pattern", "tiered"),
    # Shape-changing methods: the layers on disk are sliced (or deleted) as in RAM.
    "osscar": ("--method", "osscar", "--round-to", "32", "--mlp-pruning-ratio", "0.25"),
    "depth-bi": ("--method", "depth", "--num-layers", "2", "--score", "bi"),
    "depth-layers": ("--method", "depth", "--layers", "1"),
    "structured-wanda-global": ("--method", "structured", "--importance", "wanda", "--pruning-ratio", "0.2"),
    "structured-magnitude-uniform": (
        "--method", "structured", "--importance", "magnitude", "--uniform", "--round-to", "16",
        "--pruning-ratio", "0.2", "--temperature", "0",
    ),
}  # fmt: skip


@pytest.mark.parametrize("method", sorted(METHODS))
def test_streamed_output_is_bit_identical_to_the_in_ram_run(method, corpus, tmp_path):
    from transformers import AutoModelForCausalLM

    source = _sharded(tmp_path / "dense", num_hidden_layers=4, tie_word_embeddings=True)
    outs = _both(source, corpus, tmp_path, *METHODS[method])
    in_ram, streamed = _tensors(outs["in_ram"]), _tensors(outs["streamed"])
    assert in_ram.keys() == streamed.keys()
    assert all(torch.equal(in_ram[key], streamed[key]) for key in in_ram), method
    manifests = [json.loads((outs[k] / "secateur.json").read_text()) for k in ("in_ram", "streamed")]
    for label in ("dense", "pruned"):  # in RAM the whole model runs at once, streamed layer by layer
        ram, stream = (m["perplexity"][label]["perplexity"] for m in manifests)
        assert stream == pytest.approx(ram, rel=1e-6)
    configs = [json.loads((outs[k] / "config.json").read_text()) for k in ("in_ram", "streamed")]
    assert configs[0] == configs[1]  # the same widths, layer count, per_layer_config
    layers = configs[1]["num_hidden_layers"]
    index = json.loads((outs["streamed"] / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) == layers + 1  # one shard per layer, one for the rest
    if "per_layer_config" not in configs[1]:  # plain transformers loads it
        model = AutoModelForCausalLM.from_pretrained(outs["streamed"])
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".secateur-stream-")]


@pytest.mark.parametrize("model_type", ["gemma3", "qwen3", "phi3", "opt"])
def test_families_stream_like_they_prune_in_ram(model_type, corpus, tmp_path):
    """Gemma 3 multimodal saves its weights under other names than the model's."""
    source = _sharded(tmp_path / "dense", model_type)
    outs = _both(source, corpus, tmp_path, "--method", "sparsegpt", "--sparsity", "0.5")
    in_ram, streamed = _tensors(outs["in_ram"]), _tensors(outs["streamed"])
    assert in_ram.keys() == streamed.keys()
    assert all(torch.equal(in_ram[key], streamed[key]) for key in in_ram)


def test_what_cannot_stream_is_refused_in_one_line(corpus, tmp_path, capsys):
    out = tmp_path / "out"
    source = _sharded(tmp_path / "dense")
    taylor = prune_args(source, corpus, "--method", "structured", "--importance", "taylor", "--stream")
    assert_refused(capsys, [*taylor, "--out", out], "--importance taylor needs gradients", out=out)
    ppl = prune_args(source, corpus, "--method", "depth", "--num-layers", "1", "--score", "ppl", "--stream")
    assert_refused(capsys, [*ppl, "--out", out], "use --score bi or --layers with --stream", out=out)
    for moe in ("mixtral", "qwen2_moe"):  # saved expert by expert, fused while loading
        args = prune_args(
            _sharded(tmp_path / moe, moe), corpus, "--method", "wanda", "--stream", "--out", out
        )
        assert_refused(capsys, args, "in another layout than the model", out=out)
    pickled = tmp_path / "pickled"  # an old-style checkpoint: a pickled state dict
    model = tiny_model("llama")
    model.save_pretrained(pickled)
    (pickled / "model.safetensors").unlink()
    torch.save(model.state_dict(), pickled / "pytorch_model.bin")
    tiny_tokenizer().save_pretrained(pickled)
    args = prune_args(pickled, corpus, "--method", "wanda", "--stream", "--out", out)
    assert_refused(capsys, args, "--stream reads safetensors checkpoints", out=out)


def test_a_killed_streamed_run_resumes_after_its_last_finished_layer(corpus, tmp_path):
    from helpers.processes import killed_at, run_cli

    source = _sharded(tmp_path / "dense", num_hidden_layers=4)
    method = ("--method", "sparsegpt", "--pattern", "2:4", "--no-eval", "--stream", "--quiet")
    reference, out = tmp_path / "reference", tmp_path / "out"
    assert main([*prune_args(source, corpus, *method), "--out", str(reference)]) == 0
    args = [*prune_args(source, corpus, *method), "--out", out]
    killed_at(args, "pruning-layer-2")  # layers 0 and 1 written, layer 2 pruned in memory only
    store = tmp_path / ".out.stream"
    assert json.loads((store / "state.json").read_text())["done"] == 2 and not out.exists()
    resumed = run_cli(args)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming: 2 of 4 layers were pruned by an earlier run" in resumed.stderr
    ours, theirs = _tensors(out), _tensors(reference)
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert not store.exists()
    # A store left by another recipe is not resumed from.
    again = tmp_path / "again"
    killed_at([*prune_args(source, corpus, *method), "--out", again], "pruning-layer-2")
    other = run_cli([*prune_args(source, corpus, *method, "--percdamp", "0.1"), "--out", again])
    assert other.returncode == 0 and "resuming" not in other.stderr
    assert not (tmp_path / ".again.stream").exists()


def test_a_model_above_max_memory_streams_or_is_refused(corpus, tmp_path, capsys):
    source = _sharded(tmp_path / "dense")  # about 0.4 MB of weights
    out = tmp_path / "out"
    args = prune_args(source, corpus, "--method", "wanda", "--no-eval", "--out", str(out))
    assert main([*args, "--max-memory", "0.0001"]) == 0
    assert "streaming its layers (--stream)" in capsys.readouterr().err
    assert (out / "model.safetensors.index.json").is_file()  # one shard per layer: it streamed
    taylor = prune_args(source, corpus, "--method", "structured", "--importance", "taylor", "--out", out)
    assert_refused(capsys, [*taylor, "--max-memory", "0.0001", "--overwrite"], "it cannot be streamed")
    both = [*prune_args(source, corpus, "--stream", "--max-memory", "1"), "--out", tmp_path / "x"]
    assert_refused(capsys, both, "with --stream it is not used", out=tmp_path / "x")

"""The CLI end to end on a tiny saved model, and every bad input it must refuse."""

import json
import subprocess
import sys

import pytest
import torch

from helpers.cli import prune_args
from secateur.cli.main import main


def _prune_args(model, corpus, out, *extra):
    windows = () if "--no-eval" in extra else ("--eval-windows", "3")  # unused flags are refused
    return prune_args(model, corpus, *windows, "--out", str(out), "--quiet", *extra)


def test_prune_end_to_end_writes_a_loadable_checkpoint_and_manifest(saved_llama, corpus, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "pruned"
    log = tmp_path / "log.txt"
    code = main(
        _prune_args(
            saved_llama,
            corpus,
            out,
            "--sparsity_ratio",
            "0.5",
            "--sparsity_type",
            "4:8",
            "--save_log",
            str(log),
        )
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "perplexity dense" in printed and "perplexity pruned" in printed and "| layer |" in printed
    assert log.read_text().strip() == printed.strip()
    manifest = json.loads((out / "secateur.json").read_text())
    assert manifest["recipe"]["prune"]["pattern"] == "4:8"
    assert manifest["prune"]["sparsity"]["actual"] == pytest.approx(0.5)
    assert len(manifest["prune"]["sparsity"]["layers"]) == 3
    # The reported perplexities are those of the input model and of the written checkpoint.
    from secateur import api

    for key, folder in (("dense", saved_llama), ("pruned", out)):
        again = api.evaluate(
            api.load_model(str(folder)), dataset=str(corpus), seqlen=32, max_windows=3, show_progress=False
        )
        assert manifest["perplexity"][key]["perplexity"] == pytest.approx(again.perplexity, rel=1e-6)
    assert manifest["perplexity"]["pruned"]["perplexity"] != manifest["perplexity"]["dense"]["perplexity"]
    model = AutoModelForCausalLM.from_pretrained(out)
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and "layers" in name:
            groups = (module.weight != 0).reshape(module.weight.shape[0], -1, 8).sum(-1)
            assert (groups <= 4).all(), name


def test_manifest_replays_as_a_recipe(saved_llama, corpus, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    assert main(_prune_args(saved_llama, corpus, first, "--method", "magnitude", "--no-eval")) == 0
    assert main(["prune", "--recipe", str(first / "secateur.json"), "--out", str(second), "--quiet"]) == 0
    from safetensors.torch import load_file

    a, b = load_file(first / "model.safetensors"), load_file(second / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_eval_command(saved_llama, corpus, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert (
        main(
            [
                "eval",
                "--model",
                str(saved_llama),
                "--dataset",
                str(corpus),
                "--seqlen",
                "32",
                "--windows",
                "2",
                "--json",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    assert result["windows"] == 2 and result["seqlen"] == 32 and result["perplexity"] > 1
    assert "perplexity" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--sparsity", "1.2"], "must be in [0, 1)"),
        (["--sparsity", "-0.1"], "must be in [0, 1)"),
        (["--pattern", "2of4"], "malformed pattern"),
        (["--pattern", "2:4", "--sparsity", "0.6"], "always gives sparsity 0.5"),
        (["--seqlen", "4096"], "beyond the model's context of 128"),
        (["--skip-layers", "9"], "out of range"),
        (["--method", "nope"], "unknown method 'nope'"),
        (["--pattern", "block:1"], "use block:B with B >= 2"),
        (["--pattern", "block:128"], "larger than"),
        (["--block_size", "16", "--pattern", "2:4"], "asks for block:16"),
        (["--owl", "5,0.9"], "must lie in [0, sparsity]"),
        (["--owl", "5"], "--owl takes M,lambda"),
        (["--pattern", "4:8", "--owl", "5,0.1"], "fixes it"),
        (["--device", "cuda:7"] if not torch.cuda.is_available() else ["--device", "tpu"], "--device"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    saved_llama, corpus, tmp_path, capsys, extra, message
):
    out = tmp_path / "out"
    assert main(_prune_args(saved_llama, corpus, out, *extra)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("secateur: error:") and message in err[-1]
    assert not out.exists() and not list(tmp_path.iterdir())


def test_bad_paths_and_corpora(saved_llama, corpus, tmp_path, capsys):
    def fails(args, message):
        assert main(args) == 2, args
        assert message in capsys.readouterr().err

    fails(_prune_args(tmp_path / "missing-model", corpus, tmp_path / "o"), "does not exist")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    fails(_prune_args(saved_llama, empty, tmp_path / "o"), "no text")
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("a b\n\nc d\n\ne f\n\ng h\n")
    fails(_prune_args(saved_llama, tiny, tmp_path / "o"), "exceeds the calibration text")
    existing = tmp_path / "exists"
    existing.mkdir()
    fails(_prune_args(saved_llama, corpus, existing), "already exists: pass --overwrite")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    fails(_prune_args(saved_llama, corpus, blocker / "out"), "not writable")
    assert not (tmp_path / "o").exists()


def test_unsupported_architecture_via_cli(tmp_path, corpus, capsys):
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=300)).save_pretrained(
        tmp_path / "gpt2"
    )
    assert main(_prune_args(tmp_path / "gpt2", corpus, tmp_path / "o")) == 2
    from secateur.models.adapter import supported_model_types

    supported = ", ".join(supported_model_types())
    assert f"'gpt2' is not supported; supported: {supported}" in capsys.readouterr().err


def test_embedded_models_get_demo_sizes_unless_given():
    import argparse

    from secateur.cli.main import build_parser
    from secateur.cli.prune import build_recipe

    parser = build_parser()
    notes = []
    recipe = build_recipe(parser.parse_args(["prune"]), note=notes.append)
    assert (recipe.calibration.nsamples, recipe.calibration.seqlen) == (32, 512)
    assert "demo-sized defaults" in notes[0]
    recipe = build_recipe(
        parser.parse_args(["prune", "--nsamples", "128", "--seqlen", "2048"]), note=notes.append
    )
    assert (recipe.calibration.nsamples, recipe.calibration.seqlen) == (128, 2048)
    recipe = build_recipe(parser.parse_args(["prune", "--model", "some/hub-model"]), note=notes.append)
    assert (recipe.calibration.nsamples, recipe.calibration.seqlen) == (128, 2048)
    assert isinstance(parser, argparse.ArgumentParser)
    # An embedded model with demo eval windows and --no-eval: no window count is chosen for a run
    # that measures nothing (it would be refused as an unused option).
    args = parser.parse_args(["prune", "--model", "qwen2.5-coder-1.5b", "--no-eval"])
    recipe = build_recipe(args, note=notes.append)
    assert not recipe.evaluation.enabled and recipe.calibration.nsamples == 8


def test_console_script_exit_codes(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "secateur", "prune", "--sparsity", "2"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "secateur: error: --sparsity must be in [0, 1), got 2.0"
    result = subprocess.run([sys.executable, "-m", "secateur", "models"], capture_output=True, text=True)
    assert result.returncode == 0 and "smollm2-135m" in result.stdout


def test_sparsegpt_block_via_the_seed_flag_spelling(saved_llama, corpus, tmp_path, capsys):
    out = tmp_path / "sgpt"
    code = main(
        _prune_args(
            saved_llama,
            corpus,
            out,
            "--method",
            "sparsegpt",
            "--block_size",
            "16",
            "--blocksize",
            "32",
            "--no-eval-dense",
        )
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "tiles pruned" in printed and " | sparsegpt | block:16 | " in printed
    manifest = json.loads((out / "secateur.json").read_text())
    assert manifest["recipe"]["prune"]["pattern"] == "block:16"
    assert manifest["recipe"]["prune"]["blocksize"] == 32
    # q 64x64: 16 tiles, k and v 32x64: 8 each, o: 16, gate and up 128x64: 32 each, down 64x128: 32.
    assert manifest["prune"]["sparsity"]["layers"][0]["tiles"] == 144

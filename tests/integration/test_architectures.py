"""Every supported family through every method, end to end on the CLI: prune, save, reload with
plain transformers (or `load_pruned` for per-layer widths), and the reloaded model computes what the
pruned one did (its perplexity, recomputed after the reload, equals the run's own)."""

import json

import pytest

from helpers.cli import prune_args
from helpers.tiny import MASK_ONLY, MODEL_TYPES, save_tiny
from secateur import api
from secateur.cli.main import main

METHODS = {
    "wanda-2:4": ("--method", "wanda", "--pattern", "2:4"),
    "sparsegpt": ("--method", "sparsegpt", "--sparsity", "0.5"),
    "structured": ("--method", "structured", "--pruning-ratio", "0.2"),
    "depth": ("--method", "depth", "--num-layers", "1"),
    "osscar": ("--method", "osscar", "--mlp-pruning-ratio", "0.25", "--round-to", "16", "--swaps", "2"),
}


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_every_family_through_every_method(model_type, method, corpus, tmp_path, capsys):
    source = save_tiny(tmp_path / "dense", model_type)
    out = tmp_path / "pruned"
    args = prune_args(source, corpus, *METHODS[method], "--eval-windows", "2", "--out", str(out), "--quiet")
    if model_type in MASK_ONLY and method in ("structured", "osscar"):
        assert main(args) == 2 and not out.exists()  # refused in one line, before any work
        assert f"does not support {model_type} yet" in capsys.readouterr().err.strip().splitlines()[-1]
        return
    assert main(args) == 0
    manifest = json.loads((out / "secateur.json").read_text())
    assert manifest["model"]["model_type"] == model_type
    reloaded = api.evaluate(
        api.load_model(str(out)), dataset=str(corpus), seqlen=32, max_windows=2, show_progress=False
    )
    assert reloaded.perplexity == pytest.approx(manifest["perplexity"]["pruned"]["perplexity"], rel=1e-6)


@pytest.mark.parametrize(
    ("model_type", "expected"),
    [
        ("llama", ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]),
        ("phi3", ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]),  # generic roles onto fused ones
        ("opt", ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]),  # no gate: left out
    ],
)
def test_lora_default_targets_follow_the_family(model_type, expected):
    from helpers.tiny import tiny_model
    from secateur.errors import SecateurError
    from secateur.models.adapter import ModelAdapter
    from secateur.recovery.config import LoraConfig
    from secateur.recovery.lora import target_names

    adapter = ModelAdapter(tiny_model(model_type))
    config = LoraConfig()
    assert target_names(adapter, config.targets(), default=config.is_default_targets()) == expected
    if model_type == "opt":  # asked for by name, a role the family lacks is an error
        with pytest.raises(SecateurError, match="matches no Linear"):
            target_names(adapter, ("gate",))

"""Every supported family through every method, end to end on the CLI: prune, save, reload with
plain transformers (or `load_pruned` for per-layer widths), and the reloaded model computes what the
pruned one did (its perplexity, recomputed after the reload, equals the run's own)."""

import json

import pytest

from helpers.cli import prune_args
from helpers.tiny import MASK_ONLY, MODEL_TYPES, MOE_TYPES, save_tiny
from secateur import api
from secateur.cli.main import main

METHODS = {
    "magnitude": ("--method", "magnitude", "--sparsity", "0.5"),
    "magnitude-block:16": ("--method", "magnitude", "--pattern", "block:16", "--sparsity", "0.5"),
    "wanda": ("--method", "wanda", "--sparsity", "0.5"),
    "wanda-2:4": ("--method", "wanda", "--pattern", "2:4"),
    "wanda-block:16": ("--method", "wanda", "--pattern", "block:16", "--sparsity", "0.5"),
    "wanda-tiered": ("--method", "wanda", "--pattern", "tiered"),
    "sparsegpt": ("--method", "sparsegpt", "--sparsity", "0.5"),
    "sparsegpt-2:4": ("--method", "sparsegpt", "--pattern", "2:4"),
    "sparsegpt-block:16": ("--method", "sparsegpt", "--pattern", "block:16", "--sparsity", "0.5"),
    "alps-2:4": ("--method", "alps", "--pattern", "2:4", "--admm-iterations", "8", "--refit-iterations", "8"),
    "ria": ("--method", "ria", "--sparsity", "0.5"),
    "dsnot-2:4": ("--method", "dsnot", "--pattern", "2:4", "--skip-layer", "no_skip"),
    "structured": ("--method", "structured", "--pruning-ratio", "0.2"),
    "structured-taylor-uniform": ("--method", "structured", "--uniform", "--pruning-ratio", "0.2"),
    "structured-wanda": ("--method", "structured", "--importance", "wanda", "--pruning-ratio", "0.2"),
    "structured-wanda-uniform": (
        "--method",
        "structured",
        "--importance",
        "wanda",
        "--uniform",
        "--pruning-ratio",
        "0.2",
        "--round-to",
        "16",
    ),
    "depth": ("--method", "depth", "--num-layers", "1"),
    "osscar": ("--method", "osscar", "--mlp-pruning-ratio", "0.25", "--round-to", "16", "--swaps", "2"),
    "experts": ("--method", "experts", "--num-experts", "2"),
}
STRUCTURED = (*(method for method in METHODS if method.startswith("structured")), "osscar")


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_every_family_through_every_method(model_type, method, corpus, tmp_path, capsys):
    source = save_tiny(tmp_path / "dense", model_type)
    out = tmp_path / "pruned"
    args = prune_args(source, corpus, *METHODS[method], "--eval-windows", "2", "--out", str(out), "--quiet")
    if model_type in MASK_ONLY and method in STRUCTURED:
        assert main(args) == 2 and not out.exists()  # refused in one line, before any work
        assert f"does not support {model_type} yet" in capsys.readouterr().err.strip().splitlines()[-1]
        return
    if method == "experts" and model_type not in MOE_TYPES:
        assert main(args) == 2 and not out.exists()
        assert "needs a mixture-of-experts model" in capsys.readouterr().err.strip().splitlines()[-1]
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
        ("mixtral", ["q_proj", "k_proj", "v_proj", "o_proj"]),  # routed experts are fused tensors
        ("qwen3_moe", ["q_proj", "k_proj", "v_proj", "o_proj"]),  # no dense layer in this one
        # the dense layer's and the shared expert's projections share the leaf names
        ("qwen2_moe", ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]),
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


def test_gemma3_multimodal_prunes_the_text_decoder_and_keeps_the_vision_tower(token_windows):
    import torch

    from helpers.tiny import tiny_model
    from secateur.config import PruneConfig

    model, dense = tiny_model("gemma3"), tiny_model("gemma3")
    api.prune(
        model, PruneConfig(method="sparsegpt", pattern="2:4"), token_windows(4, 32), show_progress=False
    )
    vision = [(n, p) for n, p in model.named_parameters() if "vision_tower" in n or "multi_modal" in n]
    assert vision and all(torch.equal(p, dense.get_parameter(n)) for n, p in vision)
    text = model.model.language_model.layers[0].mlp.down_proj.weight
    assert float((text == 0).float().mean()) == 0.5


# OPT-350m: embeddings narrower than the decoder (project_in / project_out around it) and a norm
# after each sub-block instead of a final one.
OPT_350M = {"word_embed_proj_dim": 32, "do_layer_norm_before": False}


def test_opt_350m_layout_computes_through_its_projections(token_windows):
    import torch

    from helpers.tiny import tiny_model
    from secateur.evaluation.perplexity import _direct, _layerwise
    from secateur.models.adapter import ModelAdapter

    model = tiny_model("opt", **OPT_350M)
    adapter = ModelAdapter(model)
    assert model.model.decoder.final_layer_norm is None and len(adapter.final_modules()) == 1
    windows = token_windows(4, 32)
    with torch.no_grad():
        reference = model(input_ids=windows, labels=windows).loss.item() * windows.shape[0] * 31
    cpu = torch.device("cpu")
    assert _direct(adapter, windows, 2, cpu, False) == pytest.approx(reference, rel=1e-5)
    assert _layerwise(adapter, windows, 2, cpu, False) == pytest.approx(reference, rel=1e-5)


@pytest.mark.parametrize("method", ["wanda", "structured", "depth"])
def test_opt_350m_layout_prunes_and_reloads(method, corpus, tmp_path):
    source = save_tiny(tmp_path / "dense", "opt", **OPT_350M)
    out = tmp_path / "pruned"
    args = prune_args(source, corpus, *METHODS[method], "--eval-windows", "2", "--out", str(out), "--quiet")
    assert main(args) == 0
    manifest = json.loads((out / "secateur.json").read_text())
    reloaded = api.evaluate(
        api.load_model(str(out)), dataset=str(corpus), seqlen=32, max_windows=2, show_progress=False
    )
    assert reloaded.perplexity == pytest.approx(manifest["perplexity"]["pruned"]["perplexity"], rel=1e-6)

"""Recipe files for every method parse and replay; Quark-style config objects round-trip and prune."""

import json
from pathlib import Path

import pytest
import torch

from helpers.tiny import tiny_model
from secateur.config import PruneRecipe, from_dict, load_recipe, to_dict
from secateur.errors import SecateurError
from secateur.quark import (
    Config,
    LayerImportancePruneConfig,
    ModelPruner,
    OSSCARConfig,
    PConfig,
    calibration_tensor,
)

RECIPES = Path(__file__).parents[2] / "recipes"


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_recipe_file_loads_and_round_trips(path):
    recipe = load_recipe(path)
    assert from_dict(PruneRecipe, to_dict(recipe)) == recipe
    assert recipe.prune.method in path.name or recipe.prune.method == "wanda"


def test_the_recipe_files_cover_every_method():
    methods = {load_recipe(p).prune.method for p in RECIPES.glob("*.yaml")}
    assert {"wanda", "sparsegpt", "structured", "depth", "osscar"} <= methods


def test_quark_config_round_trips_through_json_and_names_unknown_fields(tmp_path):
    config = Config.from_dict(json.loads((RECIPES / "quark-osscar.json").read_text()))
    assert isinstance(config.algo_config, OSSCARConfig) and config.algo_config.mlp_pruning_ratio == 0.1
    assert Config.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    depth = Config(algo_config=LayerImportancePruneConfig(delete_layer_num=2))
    assert Config.from_dict(depth.to_dict()) == depth
    with pytest.raises(SecateurError, match="unknown field 'mlp_ratio' in OSSCARConfig"):
        OSSCARConfig.from_dict({"mlp_ratio": 0.1})
    with pytest.raises(SecateurError, match="mlp_pruning_ratio must be in"):
        OSSCARConfig(mlp_pruning_ratio=1.0)


def test_model_pruner_runs_osscar_and_depth(token_windows):
    windows = token_windows(4, 32)
    stream = {"input_ids": windows.reshape(1, -1)}  # a tokenized test set, as Quark's examples pass it
    assert torch.equal(calibration_tensor(stream, 32), windows)
    model = tiny_model("llama")
    osscar = Config(algo_config=OSSCARConfig(mlp_pruning_ratio=0.25, swaps=2, round_to=1))
    pruned = ModelPruner(osscar).pruning_model(model, windows)
    assert pruned.config.intermediate_size == 96
    assert all(layer.mlp.down_proj.in_features == 96 for layer in pruned.model.layers)
    model = tiny_model("llama")
    depth = Config(algo_config=LayerImportancePruneConfig(delete_layer_num=1, seqlen=32))
    assert ModelPruner(depth).pruning_model(model, stream).config.num_hidden_layers == 2
    given = Config(algo_config=LayerImportancePruneConfig(delete_layers_index=[0]))
    assert len(ModelPruner(given).pruning_model(tiny_model("llama"), None).model.layers) == 2
    wrong = Config(algo_config=LayerImportancePruneConfig(model_decoder_layers="transformer.h"))
    with pytest.raises(SecateurError, match="does not match"):
        ModelPruner(wrong).pruning_model(tiny_model("llama"), windows)


def test_quark_osscar_defaults_are_secateurs_own():
    # One source of defaults: the Quark object, the CLI (PruneRecipe) and the recipe file agree.
    quark, recipe = OSSCARConfig(), PruneRecipe()
    assert quark.mlp_pruning_ratio == recipe.osscar.mlp_pruning_ratio == 0.1
    assert quark.round_to == recipe.structured.round_to == 64
    assert (quark.damp_percent, quark.swaps) == (recipe.osscar.damp_percent, recipe.osscar.swaps)
    assert quark.true_sequential is recipe.osscar.true_sequential is True
    shipped = Config.from_dict(json.loads((RECIPES / "quark-osscar.json").read_text())).algo_config
    assert shipped == quark


@torch.no_grad()
def _dense_down_grams(model, windows, skip_first=1):
    """X^T X of every down_proj's input in ONE forward of the dense model (not the layer pipeline)."""
    grams, handles = {}, []
    for index, layer in enumerate(model.model.layers):

        def hook(module, args, index=index):
            x = args[0][:, skip_first:].reshape(-1, args[0].shape[-1]).float()
            grams[index] = x.T @ x

        handles.append(layer.mlp.down_proj.register_forward_pre_hook(hook))
    model(windows)
    for handle in handles:
        handle.remove()
    return grams


def test_no_true_sequential_uses_the_dense_models_activations(token_windows):
    """secateur's --no-true-sequential: every layer's statistics from the dense model."""
    from secateur.models.adapter import ModelAdapter
    from secateur.structured.osscar import Reconstruction, greedy_channels, local_search, refit
    from secateur.structured.osscar_run import osscar_prune

    windows = token_windows(4, 32)
    dense = tiny_model("llama")
    grams = _dense_down_grams(dense, windows)
    settings = dict(
        ratio=0.25, damp=0.01, swaps=2, round_to=1, device=torch.device("cpu"), show_progress=False
    )
    pruned = tiny_model("llama")
    osscar_prune(ModelAdapter(pruned), windows, sequential=False, **settings)
    for index, layer in enumerate(pruned.model.layers):
        weight = dense.model.layers[index].mlp.down_proj.weight.float()
        problem = Reconstruction.of_layer(weight, grams[index], toward_weight=True)
        keep, _ = local_search(problem, greedy_channels(problem, 96, 0.01), 0.01, 2)
        expected = refit(problem, keep, 0.01)
        torch.testing.assert_close(layer.mlp.down_proj.weight, expected, rtol=1e-4, atol=1e-5)
    sequential = tiny_model("llama")
    osscar_prune(ModelAdapter(sequential), windows, **settings)
    last = sequential.model.layers[-1].mlp.down_proj.weight
    assert not torch.allclose(last, pruned.model.layers[-1].mlp.down_proj.weight, atol=1e-4)


def test_quark_true_sequential_groups_modules_so_with_down_proj_alone_it_changes_nothing(token_windows):
    """As in Quark 0.13: the flag orders a layer's inside_layer_modules; OSSCAR hooks one."""
    windows = token_windows(4, 32)
    settings = dict(mlp_pruning_ratio=0.25, swaps=2, round_to=1)
    models = [
        ModelPruner(PConfig(OSSCARConfig(**settings, true_sequential=flag))).pruning_model(
            tiny_model("llama"), windows
        )
        for flag in (True, False)
    ]
    for a, b in zip(*(m.state_dict().values() for m in models), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"mlp_pruning_modules": ["up_proj"]}, r"mlp_pruning_modules \['up_proj'\] is not supported"),
        ({"mlp_scaling_layers": {"down_proj": ["up_proj"]}}, "the rows removed with 'mlp.down_proj'"),
        ({"inside_layer_modules": ["mlp.up_proj"]}, "must list 'mlp.down_proj'"),
        ({"mlp_intermediate_size_name": "ffn_dim"}, "'ffn_dim' is not this model's MLP width"),
    ],
)
def test_quark_osscar_module_names_must_be_the_architectures(fields, message):
    config = Config(OSSCARConfig(mlp_pruning_ratio=0.25, round_to=1, **fields))
    with pytest.raises(SecateurError, match=message):
        ModelPruner(config).pruning_model(tiny_model("llama"), torch.zeros(2, 8, dtype=torch.long))


def test_quark_scaling_layers_in_any_order_and_the_width_attribute_is_rewritten(token_windows):
    windows = token_windows(2, 16)
    scaled = {"down_proj": ["gate_proj", "up_proj"]}
    config = Config(OSSCARConfig(mlp_pruning_ratio=0.25, round_to=1, swaps=0, mlp_scaling_layers=scaled))
    model = ModelPruner(config).pruning_model(tiny_model("llama"), windows)
    assert model.config.intermediate_size == 96 == model.model.layers[0].mlp.gate_proj.out_features


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"layer_num_field": "n_layer"}, "'n_layer' is not this model's layer count"),
        ({"layer_norm_field": "model.layers.0.input_layernorm"}, "is not this model's final norm"),
        ({"layer_norm_field": "model.nothing"}, "is not this model's final norm"),
    ],
)
def test_quark_depth_field_names_must_be_the_architectures(fields, message):
    config = Config(LayerImportancePruneConfig(delete_layers_index=[0], **fields))
    with pytest.raises(SecateurError, match=message):
        ModelPruner(config).pruning_model(tiny_model("llama"), None)


def test_quark_windows_keep_the_length_they_were_given(token_windows):
    # No fixed 512 inside: (n, L) windows are used as given, batches too; only one long stream is cut.
    windows = token_windows(3, 700)
    assert calibration_tensor(windows, 512).shape == (3, 700)
    assert calibration_tensor([windows[:1], windows[1:]], 512).shape == (3, 700)
    assert calibration_tensor({"input_ids": windows.reshape(1, -1)}, 512).shape == (4, 512)
    with pytest.raises(SecateurError, match="different lengths"):
        calibration_tensor([windows[:, :100], windows[:, :200]], 512)


def test_quark_save_gpu_memory_keeps_the_same_choice(token_windows):
    windows = token_windows(3, 32)
    kept = []
    for save in (False, True):
        model = ModelPruner(Config(LayerImportancePruneConfig(save_gpu_memory=save))).pruning_model(
            tiny_model("llama"), windows
        )
        kept.append([layer.mlp.down_proj.weight.clone() for layer in model.model.layers])
        assert model.config.num_hidden_layers == 2
    assert all(torch.equal(a, b) for a, b in zip(*kept, strict=True))

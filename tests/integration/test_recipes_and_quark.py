"""Recipe files for every method parse and replay; Quark-style config objects round-trip and prune."""

import json
from pathlib import Path

import pytest
import torch

import secateur
from helpers.tiny import tiny_model
from secateur.config import CalibrationConfig, PruneRecipe, from_dict, load_recipe, to_dict
from secateur.errors import SecateurError
from secateur.quark import Config, LayerImportancePruneConfig, ModelPruner, OSSCARConfig, calibration_tensor

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


def test_model_pruner_runs_osscar_and_depth(tokenizer, corpus):
    windows = secateur.calibration_windows(
        tokenizer, CalibrationConfig(dataset=str(corpus), nsamples=4, seqlen=32)
    )
    stream = {"input_ids": windows.reshape(1, -1)}  # a tokenized test set, as Quark's examples pass it
    assert torch.equal(calibration_tensor(stream, 32), windows)
    model = tiny_model("llama")
    osscar = Config(algo_config=OSSCARConfig(mlp_pruning_ratio=0.25, swaps=2))
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

import json

import pytest

from secateur.config import (
    CalibrationConfig,
    EvalConfig,
    PruneConfig,
    PruneRecipe,
    from_dict,
    load_recipe,
    parse_int_list,
    to_dict,
)
from secateur.errors import SecateurError


@pytest.mark.parametrize("sparsity", [-0.1, 1.0, 1.5, float("nan")])
def test_sparsity_outside_unit_interval_is_an_error(sparsity):
    with pytest.raises(SecateurError, match=r"\[0, 1\)"):
        PruneConfig(sparsity=sparsity)


def test_nm_with_another_sparsity_is_an_error_not_a_silent_change():
    with pytest.raises(SecateurError, match=r"2:4 always gives sparsity 0\.5"):
        PruneConfig(pattern="2:4", sparsity=0.7)
    assert PruneConfig(pattern="4:8").resolved_sparsity() == 0.5
    assert PruneConfig().resolved_sparsity() == 0.5


def test_malformed_pattern_fails_at_config_time():
    with pytest.raises(SecateurError, match="malformed pattern"):
        PruneConfig(pattern="2to4")


def test_other_bad_values():
    with pytest.raises(SecateurError):
        CalibrationConfig(nsamples=0)
    with pytest.raises(SecateurError):
        CalibrationConfig(seqlen=1)
    with pytest.raises(SecateurError):
        EvalConfig(max_windows=0)
    with pytest.raises(SecateurError):
        PruneRecipe(dtype="float8")
    with pytest.raises(SecateurError, match="layer indices"):
        PruneConfig(skip_layers="0,x")


def test_skip_layers_parse():
    assert parse_int_list("0,-1") == (0, -1)
    assert parse_int_list("") == ()
    assert PruneConfig(skip_layers="1, 2").skip_layers == (1, 2)
    assert PruneConfig(skip_layers=[3]).skip_layers == (3,)


def test_recipe_round_trip_through_json_and_yaml(tmp_path):
    recipe = PruneRecipe(
        model="m",
        out="o",
        calibration=CalibrationConfig(nsamples=3, seqlen=16, seed=5),
        prune=PruneConfig(method="magnitude", pattern="4:8", skip_layers=(0, -1)),
        evaluation=EvalConfig(dataset="x.txt", max_windows=2, dense=False),
    )
    data = to_dict(recipe)
    assert from_dict(PruneRecipe, data) == recipe
    (tmp_path / "r.json").write_text(json.dumps({"recipe": data}))
    assert load_recipe(tmp_path / "r.json") == recipe
    import yaml

    (tmp_path / "r.yaml").write_text(yaml.safe_dump(data))
    assert load_recipe(tmp_path / "r.yaml") == recipe


def test_unknown_field_is_named():
    with pytest.raises(SecateurError, match="unknown field 'sparsty'"):
        from_dict(PruneRecipe, {"prune": {"sparsty": 0.5}})
    with pytest.raises(SecateurError, match="does not exist"):
        load_recipe("/nonexistent/recipe.yaml")

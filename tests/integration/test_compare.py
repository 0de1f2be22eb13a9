"""`secateur compare` end to end on a tiny saved model, and its recipe parsing."""

import csv
import json

import pytest

from helpers.cli import assert_refused, compare_args
from secateur.cli.main import main
from secateur.comparison.recipes import expand_sparsities, parse_recipe
from secateur.errors import SecateurError


def test_recipe_strings():
    r = parse_recipe("wanda:unstructured:0.5")
    assert (r.config.method, r.config.pattern, r.config.sparsity) == ("wanda", "unstructured", 0.5)
    assert parse_recipe("sparsegpt:2:4").config.pattern == "2:4"
    assert parse_recipe("wanda:block16:0.5").config.pattern == "block16"
    assert parse_recipe("wanda:block:16:0.3").config.sparsity == 0.3
    r = parse_recipe("wanda:unstructured:0.7:owl=5,0.08", {"batch_size": 2})
    assert (r.config.owl, r.config.batch_size) == ("5,0.08", 2)
    assert parse_recipe("sparsegpt:2:4:blocksize=64").config.blocksize == 64
    # booleans are read as booleans: 'false' is not the (truthy) string "false"
    assert parse_recipe("ria:2:4:channel_permutation=false").config.channel_permutation is False
    assert parse_recipe("ria:2:4:channel_permutation=true").config.channel_permutation is True
    for bad, message in [
        ("wanda", "does not parse"),
        ("nope:2:4", "unknown method"),
        ("wanda:2to4", "no pattern"),
        ("wanda:unstructured:half", "neither a sparsity"),
        ("wanda:unstructured:0.5:colour=red", "unknown setting"),
        ("wanda:unstructured:0.5:batch_size=two", "batch_size='two' is not a int"),
        ("wanda:2:4:0.7", "always gives sparsity 0.5"),
        ("wanda:unstructured:1.5", "must be in [0, 1)"),
        ("wanda:block:1", "must be in [0, 1)"),  # bare block is block:16, then sparsity 1
    ]:
        with pytest.raises(SecateurError, match=message.replace("[", r"\[").replace(")", r"\)")):
            parse_recipe(bad)


def test_sparsity_expansion_leaves_fixed_recipes_alone():
    recipes = [
        parse_recipe("wanda:unstructured"),
        parse_recipe("sparsegpt:2:4"),
        parse_recipe("magnitude:block8:0.4"),
    ]
    expanded = expand_sparsities(recipes, [0.3, 0.6])
    assert [(r.config.method, r.config.sparsity) for r in expanded] == [
        ("wanda", 0.3),
        ("wanda", 0.6),
        ("sparsegpt", None),
        ("magnitude", 0.4),
    ]


def test_compare_writes_table_files_and_plot(saved_llama, corpus, tmp_path, capsys):
    out = tmp_path / "cmp"
    code = main(
        [
            *compare_args(saved_llama, corpus, nsamples=4),
            "--eval-windows",
            "3",
            "--recipes",
            "wanda:unstructured",
            "magnitude:unstructured",
            "sparsegpt:2:4",
            "wanda:block16",
            "--sparsity",
            "0.3,0.6",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "| dense " in printed and "sparsegpt:2:4" in printed
    rows = list(csv.DictReader((out / "comparison.csv").open()))
    assert [r["recipe"] for r in rows] == [
        "dense",
        "wanda:unstructured:0.3",
        "wanda:unstructured:0.6",
        "magnitude:unstructured:0.3",
        "magnitude:unstructured:0.6",
        "sparsegpt:2:4",
        "wanda:block16:0.3",
        "wanda:block16:0.6",
    ]
    data = json.loads((out / "comparison.json").read_text())
    first = data["rows"][0]["perplexity"]
    for row in data["rows"]:
        assert row["vs_dense"] == pytest.approx(row["perplexity"] - data["dense"]["perplexity"])
        assert row["vs_first_pct"] == pytest.approx(100 * (row["perplexity"] - first) / first)
        assert row["actual_sparsity"] == pytest.approx(row["target_sparsity"], abs=0.06)
    assert (out / "comparison.md").read_text().startswith("# secateur compare")
    png = (out / "perplexity_vs_sparsity.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_compare_rows_equal_separate_prune_runs(saved_llama, corpus, tmp_path):
    """Restoring the dense weights between recipes: each row is what a lone `prune` gives."""
    out = tmp_path / "cmp"
    assert (
        main(
            [
                *compare_args(saved_llama, corpus, nsamples=4),
                "--eval-windows",
                "3",
                "--recipes",
                "wanda:2:4",
                "magnitude:unstructured:0.5",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    rows = json.loads((out / "comparison.json").read_text())["rows"]
    single = tmp_path / "single"
    assert (
        main(
            [
                "prune",
                "--model",
                str(saved_llama),
                "--dataset",
                str(corpus),
                "--nsamples",
                "4",
                "--seqlen",
                "32",
                "--eval-windows",
                "3",
                "--method",
                "magnitude",
                "--sparsity",
                "0.5",
                "--out",
                str(single),
                "--quiet",
                "--no-eval-dense",
            ]
        )
        == 0
    )
    manifest = json.loads((single / "secateur.json").read_text())
    assert rows[1]["perplexity"] == pytest.approx(manifest["perplexity"]["pruned"]["perplexity"], rel=1e-6)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--recipes", "wanda:2to4"], "no pattern"),
        (["--recipes", "wanda:block:1"], "must be in [0, 1)"),
        (["--recipes", "wanda:unstructured:0.5:owl=5,0.7"], "must lie in [0, sparsity]"),
        (["--recipes", "wanda:unstructured", "--sparsity", "0.5,1.2"], "must be in [0, 1)"),
        (["--recipes", "missing.yaml"], "does not exist"),
    ],
)
def test_compare_bad_input(saved_llama, corpus, tmp_path, capsys, extra, message):
    out = tmp_path / "cmp"
    base = ["compare", "--model", saved_llama, "--dataset", corpus, "--out", out]
    assert_refused(capsys, [*base, *extra], message, out=out)


def test_compare_recipe_file(saved_llama, corpus, tmp_path):
    recipe_file = tmp_path / "recipes.yaml"
    recipe_file.write_text("- wanda:2:4\n- {name: mag-half, method: magnitude, sparsity: 0.5}\n")
    out = tmp_path / "cmp"
    assert (
        main(
            [
                *compare_args(saved_llama, corpus, nsamples=2),
                "--eval-windows",
                "2",
                "--recipes",
                str(recipe_file),
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    names = [r["name"] for r in json.loads((out / "comparison.json").read_text())["rows"]]
    assert names == ["wanda:2:4", "mag-half"]


def test_shape_changing_recipe_strings():
    r = parse_recipe("structured:taylor:0.2:temperature=0:reconstruct=true", {"batch_size": 2})
    ((name, section),) = r.sections
    assert name == "structured" and (section.importance, section.pruning_ratio) == ("taylor", 0.2)
    assert section.temperature == 0.0 and section.reconstruct is True and r.config.batch_size == 2
    depth = dict(parse_recipe("depth:3:score=bi").sections)["depth"]
    assert (depth.num_layers, depth.score) == (3, "bi")
    osscar = dict(parse_recipe("osscar:0.25:round_to=128").sections)
    assert osscar["osscar"].mlp_pruning_ratio == 0.25 and osscar["structured"].round_to == 128
    for bad, message in [
        ("structured:taylor:0.2:colour=red", "structured has no setting 'colour'"),
        ("depth:three", "is not a int"),
        ("structured:0.2:reconstruct=maybe", "takes true or false"),
        ("experts:0.5", "compare runs mask, structured, depth and osscar recipes"),
    ]:
        with pytest.raises(SecateurError, match=message):
            parse_recipe(bad)


def test_compare_mixes_mask_and_shape_changing_recipes_and_existing_outputs(
    saved_llama, corpus, tmp_path, capsys
):
    """A structured and a depth recipe beside a mask one; a depth output pruned before, as a row;
    each shape-changing row equals the same prune run on its own, and the parameters plot exists."""
    from safetensors.torch import load_file

    depth_out = tmp_path / "depth"
    prune = ["prune", "--model", saved_llama, "--dataset", corpus, "--nsamples", "4", "--seqlen", "32"]
    assert (
        main(
            [
                *map(str, prune),
                "--method",
                "depth",
                "--layers",
                "1",
                "--eval-windows",
                "4",
                "--out",
                str(depth_out),
            ]
        )
        == 0
    )
    alone = json.loads((depth_out / "secateur.json").read_text())["perplexity"]["pruned"]["perplexity"]
    out = tmp_path / "cmp"
    recipes = ["wanda:unstructured:0.5", "structured:wanda:0.3", "depth:layers=1"]
    args = compare_args(
        saved_llama, corpus, "--recipes", *recipes, "--models", depth_out, "--eval-windows", "4"
    )
    args += ["--out", out]
    assert main([*map(str, args)]) == 0
    data = json.loads((out / "comparison.json").read_text())
    rows = {row["name"]: row for row in data["rows"]}
    assert (
        rows["wanda:unstructured:0.5"]["params_removed"] == 0
        and rows["wanda:unstructured:0.5"]["prefill_speedup"] is None
    )
    structured = rows["structured:wanda:0.3"]
    assert (
        0.25 < structured["params_removed"] < 0.35 and structured["parameters"] < data["dense"]["parameters"]
    )
    assert structured["prefill_speedup"] > 0 and structured["decode_speedup"] > 0
    assert rows["depth:layers=1"]["perplexity"] == pytest.approx(alone, rel=1e-6)  # recipe == separate run
    assert rows["depth"]["perplexity"] == pytest.approx(alone, rel=1e-6)  # the folder given with --models
    assert rows["depth"]["method"] == "depth"
    assert (out / "perplexity_vs_parameters.png").stat().st_size > 0
    assert "removed %" in (out / "comparison.md").read_text()
    assert load_file(str(depth_out / "model.safetensors"))  # the output given is left as it was
    nothing = compare_args(saved_llama, corpus, "--out", tmp_path / "none")
    assert_refused(capsys, nothing, "compare needs --recipes, --models, or both", out=tmp_path / "none")

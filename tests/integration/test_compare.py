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
    for bad, message in [
        ("wanda", "does not parse"),
        ("nope:2:4", "unknown method"),
        ("wanda:2to4", "no pattern"),
        ("wanda:unstructured:half", "neither a sparsity"),
        ("wanda:unstructured:0.5:colour=red", "unknown setting"),
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

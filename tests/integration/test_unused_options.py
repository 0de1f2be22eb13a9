"""Every option the chosen method does not read is refused before any model is loaded (#12)."""

import pytest

from secateur.cli.main import main
from secateur.config import OsscarConfig, PruneConfig, PruneRecipe, StructuredConfig
from secateur.errors import SecateurError

# A model that does not exist: a refusal that names the flag proves it came before any loading.
MISSING_MODEL = "/nonexistent/model"


def _run(tmp_path, capsys, *flags: str) -> tuple[int, list[str]]:
    out = tmp_path / "out"
    code = main(["prune", "--model", MISSING_MODEL, "--out", str(out), "--quiet", *flags])
    assert not out.exists()
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (("--method", "osscar", "--pattern", "2:4"), "--pattern"),
        (("--method", "osscar", "--sparsity", "0.5"), "--sparsity"),
        (("--method", "osscar", "--owl", "5,0.08"), "--owl"),
        (("--method", "depth", "--num-layers", "1", "--pattern", "2:4"), "--pattern"),
        (("--method", "depth", "--num-layers", "1", "--sparsity", "0.5"), "--sparsity"),
        (("--method", "depth", "--num-layers", "1", "--owl", "5,0.08"), "--owl"),
        (("--method", "structured", "--pattern", "2:4"), "--pattern"),
        (("--method", "structured", "--skip-layers", "0"), "--skip-layers"),
        (("--method", "structured", "--offload-activations"), "--offload-activations"),
        (("--method", "wanda", "--blocksize", "64"), "--blocksize"),
        (("--method", "magnitude", "--percdamp", "0.1"), "--percdamp"),
        (("--method", "wanda", "--num-layers", "2"), "--num-layers"),
        (("--method", "wanda", "--mlp-pruning-ratio", "0.2"), "--mlp-pruning-ratio"),
        (("--method", "sparsegpt", "--pruning-ratio", "0.3"), "--pruning-ratio"),
        (("--method", "wanda", "--topk", "5"), "--topk"),
        (("--method", "wanda", "--pattern", "2:4", "--tier-nm", "4:8"), "--tier-nm"),
        (("--method", "osscar", "--importance", "wanda"), "--importance"),
        (("--method", "osscar", "--num-layers", "2"), "--num-layers"),
        (("--method", "depth", "--num-layers", "1", "--mlp-pruning-ratio", "0.3"), "--mlp-pruning-ratio"),
        (("--method", "structured", "--osscar-start", "wanda"), "--osscar-start"),
        (("--method", "structured", "--round-to", "32"), "--round-to"),
        (
            ("--method", "structured", "--importance", "wanda", "--gradient-batch-size", "2"),
            "--gradient-batch-size",
        ),
        (("--method", "structured", "--temperature", "0", "--tau", "1"), "--tau"),
        (("--method", "structured", "--plan", "plan.json", "--pruning-ratio", "0.3"), "--pruning-ratio"),
        (("--method", "depth", "--layers", "1", "--score", "bi"), "--score"),
        (("--method", "wanda", "--no-eval", "--eval-windows", "3"), "--eval-windows"),
    ],
)
def test_an_unused_flag_is_one_line_exit_2_before_loading(tmp_path, capsys, flags, named):
    code, err = _run(tmp_path, capsys, *flags)
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("secateur: error: ") and f"{named} is not used here" in err[0]
    assert f"drop {named}" in err[0] and MISSING_MODEL not in err[0]


@pytest.mark.parametrize(
    "flags",
    [
        ("--method", "osscar", "--round-to", "32", "--no-true-sequential"),  # OSSCAR rounds its width too
        ("--method", "structured", "--uniform", "--round-to", "32"),
        ("--method", "depth", "--num-layers", "1", "--pattern", "unstructured"),  # a default: harmless
        ("--method", "sparsegpt", "--blocksize", "64", "--percdamp", "0.05"),
        ("--method", "wanda", "--pattern", "tiered", "--topk", "5", "--tier-nm", "4:8"),
    ],
)
def test_flags_the_method_reads_pass_the_check(tmp_path, capsys, flags):
    code, err = _run(tmp_path, capsys, *flags)
    assert code == 2 and "is not used here" not in err[-1] and "/nonexistent/model" in err[-1]


def test_the_python_api_refuses_the_same():
    with pytest.raises(SecateurError, match="--sparsity is not used here: --method depth does not read it"):
        PruneRecipe(prune=PruneConfig(method="depth", sparsity=0.5))
    with pytest.raises(SecateurError, match="--swaps is not used here: --method wanda"):
        PruneRecipe(osscar=OsscarConfig(swaps=2))
    with pytest.raises(SecateurError, match="--uniform is not used here: --method osscar"):
        PruneRecipe(prune=PruneConfig(method="osscar"), structured=StructuredConfig(uniform=True))
    assert PruneRecipe(prune=PruneConfig(method="osscar"), structured=StructuredConfig(round_to=8))


@pytest.mark.parametrize("flag", ["--eval-dense", "--no-eval", "--eval"])
def test_eval_offers_no_flags_it_would_ignore(flag, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["eval", "--model", MISSING_MODEL, flag])
    assert stop.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err

"""`secateur compare`: several recipes on one model with one calibration set and one dense baseline."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from secateur.cli.options import add_config_arguments, collect
from secateur.cli.prune import apply_demo_sizes
from secateur.config import CalibrationConfig, EvalConfig, PruneRecipe, from_dict
from secateur.errors import SecateurError

# PruneConfig fields that apply to every recipe unless the recipe sets them itself.
SHARED_PRUNE_FLAGS = {
    "device": (str, "compute device (default: cuda when present, else cpu)"),
    "batch_size": (int, "calibration windows pushed through a layer at once (default 4)"),
    "skip_layers": (str, "decoder layers kept dense in every recipe, e.g. 0,-1"),
    "blocksize": (int, "sparsegpt: columns per lazy update (default 128)"),
    "percdamp": (float, "sparsegpt: Hessian dampening (default 0.01)"),
}


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="run several pruning recipes on one model and tabulate perplexity",
        description="e.g. secateur compare --recipes wanda:unstructured:0.5 wanda:block16:0.5 sparsegpt:2:4",
    )
    parser.add_argument("--model", default=PruneRecipe.model, help="embedded model, local folder or hub id")
    parser.add_argument("--dtype", default="auto", help="float32, float16, bfloat16 or auto")
    parser.add_argument(
        "--recipes",
        nargs="+",
        default=[],
        metavar="RECIPE",
        help="METHOD:PATTERN[:SPARSITY][:key=value] strings (wanda:2:4, sparsegpt:block16:0.5, "
        "wanda:unstructured:0.7:owl=5,0.08), METHOD[:VALUE][:key=value] for structured, depth and "
        "osscar (structured:taylor:0.2:temperature=0, depth:3:score=bi, osscar:0.25), or one YAML/JSON "
        "file listing them",
    )
    parser.add_argument(
        "--models",
        nargs="+",
        default=[],
        metavar="DIR",
        help="outputs pruned before, measured as rows on the same windows (no pruning; --model is "
        "the dense baseline)",
    )
    parser.add_argument(
        "--sparsity",
        "--sparsities",
        dest="sparsities",
        metavar="S1,S2,...",
        help="run recipes that give no sparsity at each of these (e.g. 0.3,0.5,0.7) and plot the curve",
    )
    parser.add_argument("--out", help="folder for comparison.md/.csv/.json and the plot")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_config_arguments(parser.add_argument_group("calibration"), CalibrationConfig, "calibration")
    evaluation = parser.add_argument_group("evaluation")
    add_config_arguments(evaluation, EvalConfig, "evaluation", skip=("dense", "enabled"))
    shared = parser.add_argument_group("settings shared by the recipes")
    for name, (kind, text) in SHARED_PRUNE_FLAGS.items():
        flag = "--" + name.replace("_", "-")
        names = [flag] if "_" not in name else [flag, "--" + name]
        shared.add_argument(*names, dest=f"prune.{name}", type=kind, default=argparse.SUPPRESS, help=text)
    parser.set_defaults(run=run)


def _sparsities(text: str | None) -> list[float]:
    if not text:
        return []
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise SecateurError(
            f"--sparsity takes comma-separated fractions such as 0.3,0.5,0.7; got {text!r}"
        ) from None
    for v in values:
        if not 0.0 <= v < 1.0:
            raise SecateurError(f"--sparsity values must be in [0, 1), got {v:g}")
    return values


def build(args: argparse.Namespace, note=print):
    from secateur.comparison.recipes import expand_sparsities, load_recipe_file, parse_recipe

    defaults = collect(args, "prune")
    if not args.recipes:
        recipes = []
    elif len(args.recipes) == 1 and Path(args.recipes[0]).suffix in (".yaml", ".yml", ".json"):
        path = Path(args.recipes[0])
        if not path.is_file():
            raise SecateurError(f"recipe file {path} does not exist")
        recipes = load_recipe_file(path, defaults)
    else:
        recipes = [parse_recipe(text, defaults) for text in args.recipes]
    recipes = expand_sparsities(recipes, _sparsities(args.sparsities))
    if not recipes and not args.models:
        raise SecateurError("compare needs --recipes, --models, or both")
    data = {
        "model": args.model,
        "calibration": collect(args, "calibration"),
        "evaluation": collect(args, "evaluation"),
    }
    message = apply_demo_sizes(data)
    calibration = from_dict(CalibrationConfig, data["calibration"])
    evaluation = from_dict(EvalConfig, data["evaluation"])
    if message:
        note(message)
    return recipes, calibration, evaluation


def run(args: argparse.Namespace) -> int:
    from secateur.comparison.outputs import markdown
    from secateur.runs.compare import run_compare

    recipes, calibration, evaluation = build(args, note=lambda m: print(m, file=sys.stderr))
    result = run_compare(
        args.model,
        recipes,
        calibration,
        evaluation,
        dtype=args.dtype,
        out=args.out,
        overwrite=args.overwrite,
        show_progress=not args.quiet,
        models=tuple(args.models),
    )
    print(markdown(result))
    if args.out:
        print(
            f"written to {args.out}/ (comparison.md, .csv, .json; perplexity_vs_sparsity.png and "
            "perplexity_vs_parameters.png when there is something to plot)"
        )
    return 0

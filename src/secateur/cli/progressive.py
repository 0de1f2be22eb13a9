"""`secateur progressive`: a schedule of three-tier mixes, with masked fine-tuning between steps."""

from __future__ import annotations

import argparse
import sys

from secateur.cli.options import add_config_arguments, collect
from secateur.config import CalibrationConfig, EvalConfig, PruneConfig, from_dict
from secateur.recovery.config import FinetuneConfig, ProgressiveRecipe

# Per-iteration epochs and tier mixes come from the schedule, so those flags are not offered.
SECTIONS = (
    ("calibration", CalibrationConfig, ()),
    ("prune", PruneConfig, ("tiers", "owl", "sparsity", "blocksize", "percdamp")),
    ("finetune", FinetuneConfig, ("epochs", "masked", "device")),
    ("evaluation", EvalConfig, ("dense",)),
)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "progressive",
        help="progressive three-tier pruning (dense / N:M / top-k tiles) with masked fine-tuning",
        description="Follow --schedule: each iteration degrades tiles on the latest weights, "
        "then fine-tunes with pruned weights held at zero.",
    )
    add_config_arguments(parser, ProgressiveRecipe, "recipe")
    for name, cls, skip in SECTIONS:
        add_config_arguments(parser.add_argument_group(name), cls, name, skip=skip)
    parser.add_argument(
        "--block-size", "--block_size", type=int, metavar="B", dest="block_size", help="tile size (tiered:B)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars or loss logs")
    parser.set_defaults(run=run)


def build_recipe(args: argparse.Namespace, note=print) -> ProgressiveRecipe:
    from secateur.cli.prune import apply_demo_sizes

    data = collect(args, "recipe")
    for name, _, _ in SECTIONS:
        data[name] = collect(args, name)
    data["prune"].setdefault("pattern", "tiered")
    if args.block_size is not None:
        data["prune"]["pattern"] = f"tiered:{args.block_size}"
    message = apply_demo_sizes(data)
    if message and "seqlen" not in data["finetune"]:
        data["finetune"]["seqlen"] = data["calibration"]["seqlen"]
    recipe = from_dict(ProgressiveRecipe, data)
    if message:
        note(message)
    return recipe


def run(args: argparse.Namespace) -> int:
    from secateur.recovery.summary import progressive_table
    from secateur.runs.progressive import run_progressive

    recipe = build_recipe(args, note=lambda m: print(m, file=sys.stderr))
    if recipe.iteration is not None:
        from secateur.runs.progressive_step import run_single_iteration

        log = run_single_iteration(recipe, show_progress=not args.quiet)
        tiers = ", ".join(f"{name} {share:.1%}" for name, share in (log["tiers"] or {}).items())
        sparsity = log["prune"]["sparsity"]["actual"]
        print(f"iteration {log['iteration']['iteration']}: {tiers}; sparsity {sparsity:.4f}")
        return 0
    result = run_progressive(recipe, show_progress=not args.quiet, argv=sys.argv)
    print(progressive_table(result))
    return 0

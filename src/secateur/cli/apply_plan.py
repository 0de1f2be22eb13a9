"""`secateur apply-plan`: shrink a model by a saved (possibly hand-edited) structured_plan.json."""

from __future__ import annotations

import argparse
import sys

from secateur.cli.options import add_config_arguments, collect
from secateur.config import EvalConfig, PruneRecipe, from_dict


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "apply-plan",
        help="apply a saved structured plan (kept KV groups and channels per layer)",
        description="Slice a model's attention groups and MLP channels as a structured_plan.json says.",
    )
    parser.add_argument(
        "--plan", required=True, metavar="FILE", help="structured_plan.json (from a structured prune)"
    )
    add_config_arguments(parser, PruneRecipe, "recipe")
    add_config_arguments(parser.add_argument_group("evaluation"), EvalConfig, "evaluation")
    parser.add_argument("--dataset", help="text for perplexity (default: lee)")
    parser.add_argument(
        "--seqlen", type=int, help="evaluation window length (default: the embedded demo size or 2048)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from secateur.cli.prune import apply_demo_sizes
    from secateur.methods.width import summary
    from secateur.runs.prune import run_prune

    data = collect(args, "recipe")
    data["evaluation"] = collect(args, "evaluation")
    data["calibration"] = {
        k: v for k, v in (("dataset", args.dataset), ("seqlen", args.seqlen)) if v is not None
    }
    data["prune"] = {"method": "structured"}
    data["structured"] = {"plan": args.plan}
    apply_demo_sizes(data)
    recipe = from_dict(PruneRecipe, data)
    result = run_prune(recipe, show_progress=not args.quiet, argv=sys.argv)
    print(summary(result))
    return 0

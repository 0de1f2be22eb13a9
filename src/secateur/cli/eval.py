"""`secateur eval`: perplexity of a model (a pruned output folder, an embedded model, a hub id)."""

from __future__ import annotations

import argparse
import json
import sys

from secateur.cli.options import add_config_arguments, collect
from secateur.config import EvalConfig, PruneRecipe

_FLAGS = {
    "dataset": ["--dataset", "--eval-dataset", "--eval_dataset"],
    "seqlen": ["--seqlen", "--eval-seqlen", "--eval_seqlen"],
    "batch_size": ["--batch-size", "--batch_size", "--eval-batch-size"],
    "max_windows": ["--windows", "--eval-windows", "--max-windows"],
}


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="measure perplexity",
        description="Perplexity over non-overlapping windows of a test split.",
    )
    parser.add_argument("--model", default=PruneRecipe.model, help="output folder, embedded model, or hub id")
    parser.add_argument("--dtype", default="auto", help="float32, float16, bfloat16 or auto")
    parser.add_argument(
        "--device", default=None, help="compute device (default: cuda when present, else cpu)"
    )
    parser.add_argument("--json", metavar="FILE", help="write the result as JSON to FILE")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_config_arguments(parser, EvalConfig, "evaluation", flags=_FLAGS)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from secateur.api import evaluate, load_model
    from secateur.evaluation.summary import format_table
    from secateur.models.embedded import embedded_model

    given = collect(args, "evaluation")
    embedded = embedded_model(args.model)
    if embedded is not None:
        given.setdefault("seqlen", embedded.demo.seqlen)
        if embedded.demo.eval_windows:
            given.setdefault("max_windows", embedded.demo.eval_windows)
    config = EvalConfig(
        **{k: v for k, v in given.items() if k in ("dataset", "seqlen", "batch_size", "max_windows")}
    )
    loaded = load_model(args.model, args.dtype, args.device)
    result = evaluate(
        loaded,
        dataset=config.dataset or "lee",
        seqlen=config.seqlen or 2048,
        batch_size=config.batch_size,
        max_windows=config.max_windows,
        device=args.device,
        show_progress=not args.quiet,
    )
    print(
        format_table(
            ["model", "dataset", "windows", "seqlen", "tokens", "perplexity", "seconds"],
            [
                [
                    args.model,
                    result.dataset,
                    result.windows,
                    result.seqlen,
                    result.tokens,
                    f"{result.perplexity:.3f}",
                    f"{result.seconds:.1f}",
                ]
            ],
        )
    )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"model": args.model, **result.to_dict()}, handle, indent=2)
    print(f"perplexity: {result.perplexity:.4f}", file=sys.stderr)
    return 0

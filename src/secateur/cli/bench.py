"""`secateur bench`: prefill/decode speed, memory and size of a model against its dense original."""

from __future__ import annotations

import argparse
import sys

from secateur.cli.options import add_config_arguments, collect
from secateur.config import from_dict
from secateur.evaluation.bench_config import BenchRecipe


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="measure prefill/decode speed and memory against the dense original",
        description="Same device, same shapes, warm-up then several runs (median and min..max). "
        "2:4 models on CUDA are also timed with semi-structured sparse kernels.",
    )
    add_config_arguments(parser, BenchRecipe, "bench")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from secateur.evaluation.bench_outputs import bench_table, write_bench
    from secateur.export.save import atomic_output_dir, check_output_dir
    from secateur.runs.bench import run_bench

    recipe = from_dict(BenchRecipe, collect(args, "bench"))
    if recipe.out is not None:
        check_output_dir(recipe.out, recipe.overwrite)
    note = (lambda message: None) if args.quiet else (lambda message: print(message, file=sys.stderr))
    result = run_bench(recipe, note)
    print(bench_table(result))
    if recipe.out is not None:
        with atomic_output_dir(recipe.out, recipe.overwrite) as tmp:
            write_bench(result, tmp)
        print(f"wrote {recipe.out}/bench.json, bench.csv, bench.png")
    return 0

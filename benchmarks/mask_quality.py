"""Mask methods side by side on SmolLM2-135M (#16): prune time and perplexity, same windows.

The setup of docs/benchmarks.md: 32 x 512 calibration windows of Lee's train split (seed 0), each
method on a fresh copy of the model, perplexity on Lee's test split (512-token windows) and, as a
second text the methods never saw, on Jane Austen (`--other austen`; first 40 windows). Nothing is
tuned on either: every method runs with its defaults. Rows accumulate in
benchmarks/results/mask_quality.json, keyed by method and pattern (a rerun replaces its rows).

    .venv/bin/python benchmarks/mask_quality.py --runs sparsegpt:2:4 alps:2:4 dsnot:2:4:skip_layer=no_skip
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import torch

from secateur import api
from secateur.comparison.recipes import parse_recipe
from secateur.config import CalibrationConfig
from secateur.evaluation.summary import format_table

RESULTS = Path(__file__).parent / "results" / "mask_quality.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--runs", nargs="+", default=["sparsegpt:unstructured", "alps:unstructured"])
    parser.add_argument("--nsamples", type=int, default=32)
    parser.add_argument("--seqlen", type=int, default=512)
    parser.add_argument("--other", default="austen", help="a second evaluation text ('' for none)")
    parser.add_argument("--other-windows", type=int, default=40)
    args = parser.parse_args()
    loaded = api.load_model(args.model)
    windows = api.calibration_windows(
        loaded.tokenizer, CalibrationConfig(nsamples=args.nsamples, seqlen=args.seqlen)
    )

    def evaluate(model) -> dict:
        result = {
            "lee": api.evaluate(model, dataset="lee", seqlen=args.seqlen, show_progress=False).perplexity
        }
        if args.other:
            result[args.other] = api.evaluate(
                model,
                dataset=args.other,
                seqlen=args.seqlen,
                max_windows=args.other_windows,
                show_progress=False,
            ).perplexity
        return result

    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["setup"] = {
        "model": args.model,
        "calibration": f"lee train, {args.nsamples} x {args.seqlen}, seed 0",
        "evaluation": f"lee test ({args.seqlen}-token windows); {args.other} (first {args.other_windows})",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
    }
    if "dense" not in results:
        results["dense"] = {"perplexity": evaluate(loaded)}
    for run in args.runs:
        config = parse_recipe(run).config  # compare's recipe strings, e.g. dsnot:2:4:skip_layer=no_skip
        fresh = api.load_model(args.model)
        report = api.prune(fresh, config, windows, show_progress=False)
        results[run] = {"prune_s": report.timings["prune_s"], "perplexity": evaluate(fresh)}
        print(run, json.dumps(results[run]), flush=True)
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    rows = [
        [key, f"{value.get('prune_s', 0):.1f}", *(f"{p:.2f}" for p in value["perplexity"].values())]
        for key, value in results.items()
        if key != "setup"
    ]
    print(format_table(["run", "prune s", *results["dense"]["perplexity"].keys()], rows))


if __name__ == "__main__":
    main()

"""Depth pruning on the embedded default model: remove 10% of the layers (3 of 30), by ppl and bi scores.

Reports the chosen window, perplexity on the Lee test split, pruning time and parameters.
Results go to benchmarks/results/depth_smollm2.json and a table on stdout.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import time
from pathlib import Path

import torch

from secateur import api
from secateur.config import CalibrationConfig
from secateur.evaluation.summary import format_table
from secateur.models.adapter import ModelAdapter
from secateur.structured.depth import remove_layers, window_scores
from secateur.structured.run import count_parameters

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--num-layers", type=int, default=3)
    parser.add_argument("--nsamples", type=int, default=16)
    parser.add_argument("--seqlen", type=int, default=512)
    args = parser.parse_args()
    loaded = api.load_model(args.model, "float32")
    windows = api.calibration_windows(
        loaded.tokenizer, CalibrationConfig(dataset="lee", nsamples=args.nsamples, seqlen=args.seqlen)
    )
    dense = api.evaluate(loaded, dataset="lee", seqlen=args.seqlen, show_progress=False).perplexity
    rows = []
    for score in ("bi", "ppl"):
        model = copy.deepcopy(loaded.model)
        adapter = ModelAdapter(model)
        start = time.perf_counter()
        scores = window_scores(
            adapter, windows, args.num_layers, score, device=torch.device("cpu"), show_progress=False
        )
        best = min(scores, key=lambda s: (scores[s], s))
        remove_layers(adapter, list(range(best, best + args.num_layers)))
        seconds = time.perf_counter() - start
        ppl = api.evaluate(
            model, loaded.tokenizer, dataset="lee", seqlen=args.seqlen, show_progress=False
        ).perplexity
        rows.append({"score": score, "removed": list(range(best, best + args.num_layers)), "perplexity": ppl,
                     "seconds": seconds, "params": count_parameters(model), "scores": scores})  # fmt: skip
        print(rows[-1], flush=True)
    cpu = platform.processor() or platform.machine()
    result = {"model": args.model, "dense_perplexity": dense, "dense_params": count_parameters(loaded.model),
              "calibration": f"lee {args.nsamples}x{args.seqlen}", "rows": rows,
              "machine": f"{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}"}  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "depth_smollm2.json").write_text(json.dumps(result, indent=2) + "\n")
    table = [["dense", "-", f"{dense:.2f}", "-", f"{result['dense_params']:,}"]]
    table += [
        [r["score"], str(r["removed"]), f"{r['perplexity']:.2f}", f"{r['seconds']:.1f}", f"{r['params']:,}"]
        for r in rows
    ]
    print(format_table(["score", "removed layers", "ppl", "prune s", "params"], table))


if __name__ == "__main__":
    main()

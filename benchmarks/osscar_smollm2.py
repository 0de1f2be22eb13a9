"""OSSCAR MLP pruning on the embedded default model at 10% and 25% MLP ratio (run by hand).

Against the baseline the issue sets: Wanda channel selection with no search and no refit, same
ratio, same sequential pipeline. OSSCAR from both starts (Wanda ranking, greedy elimination).
Perplexity on the Lee test split, time, parameters.
Results go to benchmarks/results/osscar_smollm2.json and a table on stdout.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
from pathlib import Path

import torch

from secateur import api
from secateur.config import CalibrationConfig
from secateur.evaluation.summary import format_table
from secateur.models.adapter import ModelAdapter
from secateur.structured.osscar_run import osscar_prune

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--nsamples", type=int, default=32)
    parser.add_argument("--seqlen", type=int, default=512)
    args = parser.parse_args()
    loaded = api.load_model(args.model, "float32")
    windows = api.calibration_windows(
        loaded.tokenizer, CalibrationConfig(dataset="lee", nsamples=args.nsamples, seqlen=args.seqlen)
    )
    dense = api.evaluate(loaded, dataset="lee", seqlen=args.seqlen, show_progress=False).perplexity
    rows = []
    for ratio in (0.10, 0.25):
        for start in ("greedy", "wanda", None):  # None: the baseline
            model = copy.deepcopy(loaded.model)
            settings = dict(ratio=ratio, damp=0.01, swaps=8, round_to=64, device=torch.device("cpu"))
            data = osscar_prune(
                ModelAdapter(model),
                windows,
                **settings,
                show_progress=False,
                reconstruct=start is not None,
                start=start or "wanda",
            )
            ppl = api.evaluate(
                model, loaded.tokenizer, dataset="lee", seqlen=args.seqlen, show_progress=False
            )
            rows.append(
                {
                    "ratio": ratio,
                    "method": f"osscar, {start} start" if start else "wanda channels, no refit",
                    "perplexity": ppl.perplexity,
                    "seconds": data["seconds"],
                    "params": data["params_after"],
                    "kept": data["layers"][0]["kept"],
                    "swaps": sum(len(layer["error_search"]) - 1 for layer in data["layers"]),
                }
            )
            print(rows[-1], flush=True)
    cpu = platform.processor() or platform.machine()
    result = {"model": args.model, "dense_perplexity": dense, "params_before": data["params_before"],
              "calibration": f"lee {args.nsamples}x{args.seqlen}", "rows": rows,
              "machine": f"{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}"}  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "osscar_smollm2.json").write_text(json.dumps(result, indent=2) + "\n")
    table = [[f"{r['ratio']:.0%}", r["method"], r["kept"], f"{r['perplexity']:.2f}", f"{r['seconds']:.1f}",
              f"{r['params']:,}", r["swaps"]] for r in rows]  # fmt: skip
    print(f"dense perplexity {dense:.2f}, {data['params_before']:,} parameters")
    print(
        format_table(
            ["MLP ratio", "method", "channels kept", "ppl", "prune s", "params", "swaps taken"], table
        )
    )


if __name__ == "__main__":
    main()

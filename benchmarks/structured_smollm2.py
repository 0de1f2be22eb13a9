"""Structured width pruning on the embedded default model at 20% (run by hand).

For each importance (taylor, taylor_2nd, wanda, magnitude) with T = 0 and T = 1, plus one uniform
run: the real parameter count, perplexity on the Lee test split, pruning time, and the forward-pass
time of the shrunk model against the dense one (same batch, median of repeats).
Results go to benchmarks/results/structured_smollm2.json and a table on stdout.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from secateur import api
from secateur.config import CalibrationConfig, StructuredConfig
from secateur.evaluation.summary import format_table
from secateur.models.adapter import ModelAdapter
from secateur.structured.run import count_parameters, structured_prune

RESULTS = Path(__file__).parent / "results"
RUNS = [(imp, t, False) for imp in ("taylor", "taylor_2nd", "wanda", "magnitude") for t in (0.0, 1.0)]
RUNS.append(("taylor", 0.0, True))


@torch.no_grad()
def forward_seconds(model, ids: torch.Tensor, repeats: int = 5) -> float:
    model(ids)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(ids, use_cache=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--ratio", type=float, default=0.2)
    parser.add_argument("--nsamples", type=int, default=32)
    parser.add_argument("--seqlen", type=int, default=512)
    args = parser.parse_args()

    loaded = api.load_model(args.model, "float32")
    windows = api.calibration_windows(
        loaded.tokenizer, CalibrationConfig(dataset="lee", nsamples=args.nsamples, seqlen=args.seqlen)
    )
    batch = windows[:4]
    dense_ppl = api.evaluate(loaded, dataset="lee", seqlen=args.seqlen, show_progress=False).perplexity
    dense_params = count_parameters(loaded.model)
    dense_forward = forward_seconds(loaded.model, batch)
    rows = []
    for importance, temperature, uniform in RUNS:
        model = copy.deepcopy(loaded.model)
        config = StructuredConfig(
            importance=importance, pruning_ratio=args.ratio, temperature=temperature, uniform=uniform
        )
        start = time.perf_counter()
        report = structured_prune(
            ModelAdapter(model), config, windows, device=torch.device("cpu"), show_progress=False
        )
        seconds = time.perf_counter() - start
        ppl = api.evaluate(
            model, loaded.tokenizer, dataset="lee", seqlen=args.seqlen, show_progress=False
        ).perplexity
        rows.append(
            {
                "importance": importance,
                "temperature": temperature,
                "uniform": uniform,
                "params": count_parameters(model),
                "ratio_of_total": report.summary()["ratio_of_total"],
                "perplexity": ppl,
                "prune_s": seconds,
                "forward_s": forward_seconds(model, batch),
                "removed_attention_groups": int((report.table.pruned & ~report.table.is_mlp).sum()),
                "removed_channels": int((report.table.pruned & report.table.is_mlp).sum()),
            }
        )
        print(rows[-1], flush=True)
        del model
    cpu = platform.processor() or platform.machine()
    machine = f"{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    result = {
        "model": args.model,
        "ratio": args.ratio,
        "calibration": f"lee {args.nsamples}x{args.seqlen}",
        "dense": {"params": dense_params, "perplexity": dense_ppl, "forward_s": dense_forward},
        "machine": machine,
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "structured_smollm2.json").write_text(json.dumps(result, indent=2) + "\n")
    table = [
        ["dense", "-", f"{dense_params:,}", "-", f"{dense_ppl:.2f}", "-", f"{dense_forward * 1000:.0f}", "-"]
    ]
    for r in rows:
        table.append(
            [
                r["importance"] + (" uniform" if r["uniform"] else ""),
                f"{r['temperature']:g}",
                f"{r['params']:,}",
                f"{r['ratio_of_total']:.2%}",
                f"{r['perplexity']:.2f}",
                f"{r['prune_s']:.1f}",
                f"{r['forward_s'] * 1000:.0f}",
                f"{r['removed_attention_groups']} / {r['removed_channels']}",
            ]
        )
    headers = [
        "importance",
        "T",
        "params",
        "removed",
        "ppl",
        "prune s",
        "forward ms (4x512)",
        "KV groups / channels cut",
    ]
    print(format_table(headers, table))
    print(machine)


if __name__ == "__main__":
    main()

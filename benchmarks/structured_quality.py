"""Structured 20% on SmolLM2-135M without fine-tuning: which settings lose least (#16).

The setup of docs/benchmarks.md (32 x 512 Lee calibration windows, seed 0). Each run is
`importance:T:reconstruct:uniform` (e.g. `taylor:0:1:0`). Defaults are chosen on a VALIDATION text
the runs never calibrate on and the reported numbers are not measured on (Moby Dick, first 40
windows of 512); the Lee test split is reported for every run, for the record only. Rows accumulate
in benchmarks/results/structured_quality.json (a rerun replaces its own rows).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import time
from pathlib import Path

import torch

from secateur import api
from secateur.config import CalibrationConfig, StructuredConfig
from secateur.evaluation.summary import format_table
from secateur.models.adapter import ModelAdapter
from secateur.structured.run import count_parameters, structured_prune

RESULTS = Path(__file__).parent / "results" / "structured_quality.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--ratio", type=float, default=0.2)
    parser.add_argument("--runs", nargs="+", default=["taylor:0:0:0", "taylor:0:1:0"])
    parser.add_argument("--nsamples", type=int, default=32)
    parser.add_argument("--seqlen", type=int, default=512)
    parser.add_argument("--validation", default="mobydick")
    parser.add_argument("--validation-windows", type=int, default=40)
    args = parser.parse_args()
    loaded = api.load_model(args.model, "float32")
    windows = api.calibration_windows(
        loaded.tokenizer, CalibrationConfig(dataset="lee", nsamples=args.nsamples, seqlen=args.seqlen)
    )

    def evaluate(model) -> dict:
        def ppl(dataset, limit=None):
            return api.evaluate(
                model, loaded.tokenizer, dataset=dataset, seqlen=args.seqlen, max_windows=limit,
                show_progress=False,
            ).perplexity  # fmt: skip

        return {"validation": ppl(args.validation, args.validation_windows), "lee_test": ppl("lee")}

    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["setup"] = {
        "model": args.model,
        "ratio": args.ratio,
        "calibration": f"lee train {args.nsamples}x{args.seqlen}, seed 0",
        "validation": f"{args.validation}, first {args.validation_windows} windows of {args.seqlen}",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
    }
    if "dense" not in results:
        results["dense"] = {"params": count_parameters(loaded.model), **evaluate(loaded.model)}
    for run in args.runs:
        importance, temperature, reconstruct, uniform = run.split(":")
        config = StructuredConfig(
            importance=importance, pruning_ratio=args.ratio, temperature=float(temperature),
            reconstruct=reconstruct == "1", uniform=uniform == "1",
        )  # fmt: skip
        model = copy.deepcopy(loaded.model)
        start = time.perf_counter()
        report = structured_prune(
            ModelAdapter(model), config, windows, device=torch.device("cpu"), show_progress=False
        )
        results[run] = {
            "prune_s": time.perf_counter() - start,
            "params": count_parameters(model),
            "removed_attention_groups": int((report.table.pruned & ~report.table.is_mlp).sum()),
            "removed_channels": int((report.table.pruned & report.table.is_mlp).sum()),
            **evaluate(model),
        }
        print(run, json.dumps(results[run]), flush=True)
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
        del model
    rows = []
    for key, v in results.items():
        if key == "setup":
            continue
        cut = f"{v.get('removed_attention_groups', '-')} / {v.get('removed_channels', '-')}"
        rows.append([key, f"{v['params']:,}", f"{v['validation']:.2f}", f"{v['lee_test']:.2f}",
                     f"{v.get('prune_s', 0):.0f}", cut])  # fmt: skip
    print(format_table(["importance:T:reconstruct:uniform", "params", "validation ppl", "Lee test ppl",
                        "prune s", "KV groups / channels cut"], rows))  # fmt: skip


if __name__ == "__main__":
    main()

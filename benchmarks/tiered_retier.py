"""Three-tier re-tiering speed on the embedded default model (run by hand).

For the first two rows of the progressive reference schedule, one progressive step on SmolLM2-135M:
  - retier_s: scoring + two-stage tier assignment + masking of all 210 Linears (the vectorised part
    the issue bounds at 10 s), measured inside the pipeline;
  - prune_s: the whole step, including the layer-by-layer Wanda statistics pass on fresh weights;
  - a pure re-tiering pass with the statistics already in hand (magnitude scores, no pipeline);
and the one-shot `--pattern tiered` prune with the final mix, with perplexity on the Lee test split.
Results go to benchmarks/results/tiered_retier.json and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from secateur import api
from secateur.config import CalibrationConfig, PruneConfig
from secateur.evaluation.summary import format_table
from secateur.pruning.masking import prune_with_masks
from secateur.pruning.tiered import TierState

RESULTS = Path(__file__).parent / "results"
ROWS = ((0.90, 0.10, 0.00), (0.80, 0.10, 0.10))


def shares_arg(shares) -> str:
    return ",".join(str(s) for s in shares)


@torch.no_grad()
def pure_retier_seconds(adapter, state: TierState, shares) -> float:
    """Two-stage re-tiering of every Linear from its current tiers, on magnitude scores."""
    pattern = PruneConfig(pattern="tiered", tiers=shares_arg(shares)).pattern_object()
    start = time.perf_counter()
    for index, layer in enumerate(adapter.decoder_layers()):
        names = adapter.linear_names(index)
        for role, linear in adapter.linears(layer).items():
            weight = linear.weight
            pattern.progress(weight.abs(), state.maps[names[role]], weight != 0, shares)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--nsamples", type=int, default=32)
    parser.add_argument("--seqlen", type=int, default=512)
    parser.add_argument("--eval-windows", type=int, default=36)
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())

    loaded = api.load_model(args.model, "float32")
    calibration = CalibrationConfig(dataset="lee", nsamples=args.nsamples, seqlen=args.seqlen)
    windows = api.calibration_windows(loaded.tokenizer, calibration)
    rows = []
    state = TierState(progressive=True)
    for shares in ROWS:
        config = PruneConfig(method="wanda", pattern="tiered", tiers=shares_arg(shares))
        report = prune_with_masks(loaded.adapter, config, windows, show_progress=False, tier_state=state)
        pure = pure_retier_seconds(loaded.adapter, state, shares)
        rows.append(
            {
                "step": f"progressive {shares_arg(shares)}",
                "retier_s": report.timings["retier_s"],
                "pure_retier_s": pure,
                "prune_s": report.timings["prune_s"],
                "sparsity": report.sparsity.actual,
                "tiers": report.tier_summary(),
            }
        )
        print(rows[-1], flush=True)

    fresh = api.load_model(args.model, "float32")
    config = PruneConfig(method="wanda", pattern="tiered", tiers="0.35,0.45,0.2", topk=10)
    dense = api.evaluate(
        fresh, dataset="lee", seqlen=args.seqlen, max_windows=args.eval_windows, show_progress=False
    )
    report = api.prune(fresh, config, windows, show_progress=False)
    pruned = api.evaluate(
        fresh, dataset="lee", seqlen=args.seqlen, max_windows=args.eval_windows, show_progress=False
    )
    rows.append(
        {
            "step": "one-shot 0.35,0.45,0.2",
            "retier_s": report.timings["retier_s"],
            "pure_retier_s": None,
            "prune_s": report.timings["prune_s"],
            "sparsity": report.sparsity.actual,
            "tiers": report.tier_summary(),
            "perplexity_dense": dense.perplexity,
            "perplexity": pruned.perplexity,
        }
    )
    cpu = platform.processor() or platform.machine()
    machine = f"{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    result = {
        "model": args.model,
        "calibration": f"lee {args.nsamples}x{args.seqlen}",
        "machine": machine,
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tiered_retier.json").write_text(json.dumps(result, indent=2) + "\n")
    table = [
        [
            r["step"],
            f"{r['retier_s']:.2f}",
            "-" if r["pure_retier_s"] is None else f"{r['pure_retier_s']:.2f}",
            f"{r['prune_s']:.1f}",
            f"{r['sparsity']:.4f}",
            f"{r.get('perplexity', float('nan')):.2f}",
        ]
        for r in rows
    ]
    print(
        format_table(["step", "re-tier s", "pure re-tier s", "step s (with stats)", "sparsity", "ppl"], table)
    )
    print(f"dense perplexity {dense.perplexity:.3f}; {machine}")


if __name__ == "__main__":
    main()

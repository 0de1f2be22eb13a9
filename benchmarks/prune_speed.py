"""Pruning speed, memory and quality on the embedded default model (run by hand: `make bench`).

Measures, on the same calibration windows:
  - one plain forward pass of the whole model (with logits) over them, at batch 1 and batch 8;
  - Wanda and magnitude pruning time (unstructured 50%, 2:4, 4:8) and its ratio to that forward;
  - the process's resident memory above what the loaded model needs, sampled during Wanda;
  - perplexity on the Lee test split (dense and each pruned model).
Results go to benchmarks/results/prune_speed.json and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import threading
import time
from pathlib import Path

import psutil
import torch

from secateur import api
from secateur.config import CalibrationConfig, PruneConfig
from secateur.evaluation.summary import format_table

RESULTS = Path(__file__).parent / "results"


class PeakRSS:
    """Samples this process's resident set size in a thread; `peak` is the highest seen."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._process = psutil.Process(os.getpid())

    def __enter__(self) -> PeakRSS:
        self.start = self.peak = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            time.sleep(self.interval)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


@torch.no_grad()
def plain_forward_seconds(model, windows: torch.Tensor, batch_size: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, windows.shape[0], batch_size):
            model(input_ids=windows[i : i + batch_size], use_cache=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--nsamples", type=int, default=32)
    parser.add_argument("--seqlen", type=int, default=512)
    parser.add_argument("--eval-windows", type=int, default=None, help="default: the whole Lee test split")
    parser.add_argument(
        "--repeats", type=int, default=3, help="timing repeats (median) for the headline rows"
    )
    parser.add_argument("--no-quality", action="store_true", help="skip the perplexity runs")
    args = parser.parse_args()

    loaded = api.load_model(args.model)
    windows = api.calibration_windows(
        loaded.tokenizer, CalibrationConfig(nsamples=args.nsamples, seqlen=args.seqlen)
    )
    forward = {bs: plain_forward_seconds(loaded.model, windows, bs, args.repeats) for bs in (1, 8)}
    best_forward = min(forward.values())

    def evaluate(model_loaded) -> float | None:
        if args.no_quality:
            return None
        return api.evaluate(
            model_loaded,
            dataset="lee",
            seqlen=args.seqlen,
            max_windows=args.eval_windows,
            show_progress=False,
        ).perplexity

    rows = [
        {"method": "dense", "pattern": "-", "prune_s": None, "ratio": None, "perplexity": evaluate(loaded)}
    ]
    for method in ("wanda", "magnitude"):
        for pattern in ("unstructured", "2:4", "4:8"):
            # This machine's timings wander by +-10%: the headline (Wanda, unstructured) is a median.
            repeats = args.repeats if (method, pattern) == ("wanda", "unstructured") else 1
            times = []
            for _ in range(repeats):
                fresh = api.load_model(args.model)
                # safetensors weights arrive memory-mapped and only count in RSS once touched; make
                # them resident first so the sampled growth is the pipeline's own memory.
                for parameter in fresh.model.parameters():
                    parameter.data = parameter.data.clone()
                config = PruneConfig(method=method, pattern=pattern)
                with PeakRSS() as rss:
                    report = api.prune(fresh, config, windows, show_progress=False)
                times.append(report.timings["prune_s"])
            prune_s = statistics.median(times)
            row = {
                "method": method,
                "pattern": pattern,
                "sparsity": report.sparsity.actual,
                "prune_s": prune_s,
                "ratio": prune_s / best_forward,
                "activations_mib": report.memory["activations_bytes"] / 2**20,
                "extra_rss_mib": (rss.peak - rss.start) / 2**20,
                "perplexity": evaluate(fresh),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
            del fresh

    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
        "model": args.model,
        "calibration": f"{args.nsamples} x {args.seqlen} tokens (lee)",
        "plain_forward_s": forward,
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "prune_speed.json").write_text(json.dumps(result, indent=2))
    print(
        f"\n{result['machine']}; {result['calibration']}; plain forward: "
        + ", ".join(f"batch {bs} {s:.1f}s" for bs, s in forward.items())
    )
    table = [
        [
            r["method"],
            r["pattern"],
            "-" if r["prune_s"] is None else f"{r['prune_s']:.1f}",
            "-" if r["ratio"] is None else f"{r['ratio']:.2f}",
            "-" if r.get("extra_rss_mib") is None else f"{r['extra_rss_mib']:.0f}",
            "-" if r["perplexity"] is None else f"{r['perplexity']:.2f}",
        ]
        for r in rows
    ]
    print(format_table(["method", "pattern", "prune s", "x forward", "extra RSS MiB", "perplexity"], table))


if __name__ == "__main__":
    main()

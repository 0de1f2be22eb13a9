"""Two processes against one (torchrun, gloo, one thread each): Wanda and SparseGPT on SmolLM2.

Each process gets half of the calibration windows; the statistics are summed before use, so the
masks are those of the single process (checked here too). One thread per process makes the
comparison about the processes, not about how torch spreads one process over the cores.
Results go to benchmarks/results/distributed_speed.json and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file

from secateur.evaluation.summary import format_table

RESULTS = Path(__file__).parent / "results"


def _prune(method: list[str], out: Path, processes: int, args) -> float:
    command = [sys.executable, "-m", "secateur", "prune", "--model", args.model, *method]
    command += ["--dataset", "lee", "--nsamples", str(args.nsamples), "--seqlen", str(args.seqlen)]
    command += ["--no-eval", "--quiet", "--out", str(out)]
    if processes > 1:
        launcher = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={processes}",
        ]
        command = [*launcher, *command[1:]]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    return json.loads((out / "secateur.json").read_text())["timings"]["prune_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--nsamples", type=int, default=32)
    parser.add_argument("--seqlen", type=int, default=512)
    args = parser.parse_args()
    methods = {
        "wanda 50%": ["--method", "wanda", "--sparsity", "0.5"],
        "sparsegpt 50%": ["--method", "sparsegpt", "--sparsity", "0.5"],
    }
    rows, result = [], {}
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as scratch:
        for name, method in methods.items():
            times, weights = {}, {}
            for processes in (1, 2):
                out = Path(scratch) / f"{name.split()[0]}-{processes}"
                times[processes] = _prune(method, out, processes, args)
                weights[processes] = load_file(out / "model.safetensors")
            # Entries kept by one run and pruned by the other; tensors not bit-identical (SparseGPT's
            # updates included). Both must be 0: the statistics are summed in fp64 (see
            # calibration/stats.py), and each solve runs on one process from the summed numbers.
            one, two = weights[1], weights[2]
            differing = sum(int(((one[k] == 0) != (two[k] == 0)).sum()) for k in one)
            unequal = sum(not torch.equal(one[k], two[k]) for k in one)
            entries = sum(w.numel() for w in one.values())
            ratio = times[1] / times[2]
            result[name] = {
                "one_process_s": times[1],
                "two_processes_s": times[2],
                "speedup": ratio,
                "mask_entries_differing": differing,
                "mask_entries": entries,
                "tensors_not_bit_identical": unequal,
            }
            rows.append(
                [name, f"{times[1]:.1f}", f"{times[2]:.1f}", f"{ratio:.2f}x", f"{differing:,}", str(unequal)]
            )
    result["setup"] = {
        "model": args.model,
        "calibration": f"lee {args.nsamples} x {args.seqlen}",
        "threads_per_process": 1,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "distributed_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    print(
        format_table(
            [
                "method",
                "1 process (s)",
                "2 processes (s)",
                "speed-up",
                "mask entries differing",
                "tensors differing",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()

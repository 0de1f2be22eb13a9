"""Streaming (--stream) against the in-RAM run: peak RSS, time, and bit-identical masks.

Runs `secateur prune --method wanda` twice in fresh processes, once with the whole model in RAM and
once streamed layer by layer from the safetensors shards, and compares every output tensor.
Peak RSS is the child process's own (getrusage via os.wait4), so the parent adds nothing.
Results go to benchmarks/results/stream_memory_<model>.json and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from secateur.evaluation.summary import format_table

RESULTS = Path(__file__).parent / "results"


def _run(command: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS in GiB) of one child process."""
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed")
    return time.perf_counter() - started, usage.ru_maxrss / 2**20  # ru_maxrss is KiB on Linux


def _tensors(folder: Path) -> dict[str, Path]:
    from safetensors import safe_open

    found = {}
    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(str(file), "pt") as handle:
            found.update(dict.fromkeys(handle.keys(), file))
    return found


def _identical(a: Path, b: Path) -> tuple[bool, int]:
    """Whether both outputs hold the same tensors, bit for bit (read one at a time)."""
    from safetensors import safe_open

    left, right = _tensors(a), _tensors(b)
    if set(left) != set(right):
        return False, 0
    for name in left:
        with safe_open(str(left[name]), "pt") as x, safe_open(str(right[name]), "pt") as y:
            if not torch.equal(x.get_tensor(name), y.get_tensor(name)):
                return False, len(left)
    return True, len(left)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-1.5b")
    parser.add_argument("--nsamples", type=int, default=8)
    parser.add_argument("--seqlen", type=int, default=512)
    parser.add_argument("--method", default="wanda")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as scratch:
        base = [
            sys.executable, "-m", "secateur", "prune", "--model", args.model, "--method", args.method,
            "--sparsity", "0.5", "--dataset", "lee", "--nsamples", str(args.nsamples),
            "--seqlen", str(args.seqlen), "--no-eval", "--dtype", "float32", "--quiet",
        ]  # fmt: skip
        outs = {kind: Path(scratch) / kind for kind in ("in_ram", "streamed")}
        measured = {}
        for kind, extra in (("in_ram", []), ("streamed", ["--stream"])):
            seconds, rss = _run([*base, *extra, "--out", str(outs[kind])])
            measured[kind] = {"seconds": round(seconds, 1), "peak_rss_gib": round(rss, 3)}
        identical, tensors = _identical(outs["in_ram"], outs["streamed"])
    result = {
        "model": args.model,
        "method": args.method,
        "calibration": f"lee {args.nsamples} x {args.seqlen}",
        **measured,
        "time_ratio": round(measured["streamed"]["seconds"] / measured["in_ram"]["seconds"], 3),
        "bit_identical": identical,
        "tensors_compared": tensors,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"stream_memory_{args.model}.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = [[k, v["seconds"], v["peak_rss_gib"]] for k, v in measured.items()]
    print(format_table(["run", "seconds", "peak RSS (GiB)"], rows))
    print(f"time ratio {result['time_ratio']}, bit-identical: {identical} ({tensors} tensors)")


if __name__ == "__main__":
    main()

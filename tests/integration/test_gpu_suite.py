"""benchmarks/gpu_suite.sh runs to the end on a machine without CUDA: what needs CUDA is skipped
with its reason, the rest is measured (here on a tiny model, in seconds)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).parents[2]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only path")
def test_the_gpu_suite_runs_to_the_end_without_cuda(saved_llama, corpus, tmp_path):
    out = tmp_path / "gpu_suite.json"
    args = ["--model", saved_llama, "--dataset", corpus, "--nsamples", "4", "--seqlen", "32"]
    args += ["--forward-batch", "2", "--prompt-len", "16", "--new-tokens", "4", "--out", out]
    done = subprocess.run(
        ["bash", ROOT / "benchmarks/gpu_suite.sh", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHON": sys.executable},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "no CUDA device: the CUDA parts are skipped" in done.stderr
    result = json.loads(out.read_text())
    assert sorted(result["prune"]) == ["sparsegpt 2:4", "sparsegpt 50%", "wanda 2:4", "wanda 50%"]
    for row in result["prune"].values():
        assert row["prune_s"] > 0 and row["x_forward"] == pytest.approx(
            row["prune_s"] / result["plain_forward_s"]
        )
    assert result["peak_gpu_memory"] == "skipped: no CUDA device here"
    assert result["kernels_2_4"] == "skipped: 2:4 kernels need CUDA; this run is on cpu"
    structured = result["structured_20"]
    assert structured["parameters_removed"] > 0
    assert set(structured["speedup"]) == {"batch 1", "batch 8"}
    assert "| prune" in done.stdout and "kernels_2_4: skipped" in done.stdout
    skips = [line for line in done.stdout.splitlines() if line.startswith("SKIPPED")]
    assert skips and all("needs CUDA" in line for line in skips)  # pytest tests/gpu ran: all skip here

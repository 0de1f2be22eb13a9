"""Two CPU processes (torchrun, gloo) prune what one process prunes: the calibration windows are
shared out, every statistic is summed over the processes before it is used, rank 0 writes."""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from helpers.cli import prune_args
from secateur.cli.main import main

METHODS = {
    "wanda": ("--method", "wanda", "--sparsity", "0.5"),
    "sparsegpt-2:4": ("--method", "sparsegpt", "--pattern", "2:4"),
    "wanda-owl-block:16": (
        "--method",
        "wanda",
        "--pattern",
        "block:16",
        "--sparsity",
        "0.5",
        "--owl",
        "5,0.08",
    ),
    # Shape-changing methods: importances, influences, Gram matrices and losses are summed too, so
    # the plans (which groups, layers, channels go) are those of one process.
    "structured-wanda-global": ("--method", "structured", "--importance", "wanda", "--pruning-ratio", "0.2"),
    "structured-taylor-uniform": (
        "--method",
        "structured",
        "--importance",
        "taylor",
        "--uniform",
        "--round-to",
        "16",
        "--pruning-ratio",
        "0.2",
    ),
    "depth-bi": ("--method", "depth", "--num-layers", "1", "--score", "bi"),
    "depth-ppl": ("--method", "depth", "--num-layers", "1", "--score", "ppl"),
    "osscar": ("--method", "osscar", "--round-to", "32", "--mlp-pruning-ratio", "0.25"),
}


def _torchrun(args, processes: int = 2) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [*command, "-m", "secateur", *map(str, args)], capture_output=True, text=True, timeout=300, env=env
    )


@pytest.mark.parametrize("method", sorted(METHODS))
def test_two_processes_prune_what_one_process_prunes(method, saved_llama, corpus, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    args = prune_args(saved_llama, corpus, *METHODS[method], "--eval-windows", "3", "--quiet", nsamples=8)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each torchrun process: a GEMM's sums depend on its thread count
    try:
        assert main([*args, "--out", str(one)]) == 0
    finally:
        torch.set_num_threads(threads)
    done = _torchrun([*args, "--out", two])
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("| summary") == 1  # rank 0 alone prints the summary
    single, shared = load_file(one / "model.safetensors"), load_file(two / "model.safetensors")
    assert single.keys() == shared.keys()
    for name, weight in single.items():
        assert weight.shape == shared[name].shape, name  # the same plan
        assert torch.equal(weight == 0, shared[name] == 0), name  # the very same masks
        assert torch.equal(shared[name], weight), name  # and the very same bits
    manifests = [json.loads((folder / "secateur.json").read_text()) for folder in (one, two)]
    for label in ("dense", "pruned"):
        ppl = [m["perplexity"][label]["perplexity"] for m in manifests]
        assert ppl[1] == pytest.approx(ppl[0], rel=1e-9)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".two.")]


def test_what_does_not_share_out_says_so_in_one_line(saved_llama, corpus, tmp_path):
    # Taylor gradients are means over batches: every process must hold whole single-process batches.
    args = prune_args(saved_llama, corpus, *METHODS["structured-taylor-uniform"], nsamples=6)
    done = _torchrun([*args, "--out", tmp_path / "x"])
    assert done.returncode != 0 and not (tmp_path / "x").exists()
    assert "Taylor gradients need a multiple of 8 windows (e.g. --nsamples 8)" in done.stderr
    done = _torchrun([*prune_args(saved_llama, corpus, "--stream"), "--out", tmp_path / "y"])
    assert done.returncode != 0 and not (tmp_path / "y").exists()
    assert "secateur: error: --stream runs in one process for now: launch it without torchrun" in done.stderr

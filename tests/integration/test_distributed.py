"""Two CPU processes (torchrun, gloo) prune what one process prunes: the calibration windows are
shared out, every statistic is summed over the processes before it is used, rank 0 writes."""

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

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


@contextlib.contextmanager
def _one_thread():
    """As in each torchrun process (OMP_NUM_THREADS=1): a GEMM's sums depend on its thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_two_processes_prune_what_one_process_prunes(method, saved_llama, corpus, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    args = prune_args(saved_llama, corpus, *METHODS[method], "--eval-windows", "3", "--quiet", nsamples=8)
    with _one_thread():
        assert main([*args, "--out", str(one)]) == 0
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


@pytest.mark.parametrize("command", ["finetune", "recover"])
def test_two_processes_train_like_one_process_with_the_same_global_batch(
    command, saved_llama, corpus, tmp_path
):
    """DDP on gloo: 2 processes x 2 windows per step follow the loss curve of 1 process x 4 windows,
    the pruned zeros stay zero, and one checkpoint is written."""
    pruned = tmp_path / "pruned"
    prune = prune_args(saved_llama, corpus, "--method", "wanda", "--sparsity", "0.5", "--no-eval", "--quiet")
    assert main([*prune, "--out", str(pruned)]) == 0
    args = [command, "--model", pruned, "--dataset", corpus, "--train-seqlen", "32", "--max-steps", "4"]
    args += ["--logging-steps", "1", "--learning-rate", "1e-3", "--grad-accum", "1", "--quiet"]
    args += ["--val-set-size", "4", "--eval-steps", "2"]
    if command == "recover":  # dropout draws depend on how a step's windows are split: none here
        args += ["--merge", "--lora-dropout", "0"]
    one, two = tmp_path / "one", tmp_path / "two"
    with _one_thread():
        assert (
            main([*map(str, args), "--train-batch-size", "4", "--out", str(one), "--json", f"{one}.json"])
            == 0
        )
    done = _torchrun([*args, "--train-batch-size", "2", "--out", two, "--json", f"{two}.json"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("| steps") == 1  # rank 0 alone prints the summary
    runs = [json.loads(Path(f"{folder}.json").read_text()) for folder in (one, two)]
    results = [run[command].get("training", run[command]) for run in runs]
    curves = [result["losses"] for result in results]
    assert [step for step, _ in curves[0]] == [1, 2, 3, 4] == [step for step, _ in curves[1]]
    assert curves[0][-1][1] < curves[0][0][1] - 0.1  # it learned something
    for (_, single), (_, shared) in zip(*curves, strict=True):
        assert shared == pytest.approx(single, rel=1e-5)
    for (_, single), (_, shared) in zip(results[0]["eval_losses"], results[1]["eval_losses"], strict=True):
        assert shared == pytest.approx(single, rel=1e-5)
    source, tuned = load_file(pruned / "model.safetensors"), load_file(two / "model.safetensors")
    pruned_zeros = sum(int((w == 0).sum()) for name, w in source.items() if "proj" in name)
    assert pruned_zeros > 0
    for name, weight in source.items():
        assert torch.all(tuned[name][weight == 0] == 0), name  # every pruned weight still zero
        torch.testing.assert_close(
            tuned[name], load_file(one / "model.safetensors")[name], rtol=1e-4, atol=1e-5
        )
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no scratch or partial left

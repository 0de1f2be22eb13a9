"""`secateur bench` on CPU with tiny models: sane numbers, the dense original found, report files."""

import csv
import json

import pytest
import torch

import secateur
from helpers.cli import prune_args
from helpers.tiny import tiny_model
from secateur.cli.main import main
from secateur.config import PruneConfig
from secateur.evaluation.sparse_kernels import is_two_four, two_four_linears, unavailable_reason
from secateur.evaluation.speed import measure_speed

CPU = torch.device("cpu")


def test_speed_row_is_consistent():
    row = measure_speed(
        tiny_model(), label="m", device=CPU, batch_size=2, prompt_len=16, new_tokens=4, warmup=1, runs=3
    )
    assert 0 < row.prefill_s.low <= row.prefill_s.median <= row.prefill_s.high
    assert 0 < row.decode_token_s.low <= row.decode_token_s.median <= row.decode_token_s.high
    assert row.prefill_tokens_per_s == pytest.approx(2 * 16 / row.prefill_s.median)
    assert row.decode_tokens_per_s == pytest.approx(2 / row.decode_token_s.median)
    assert row.dtype == "float32" and row.peak_memory_mb >= 0


def test_two_four_detection_is_exact():
    weight = torch.tensor([[1.0, 0, 2, 0, 0, 0, 3, 4], [0, 0, 0, 1, 5, 0, 0, 0]])
    assert is_two_four(weight)
    weight[0, 1] = 7  # three nonzeros in the first group of four
    assert not is_two_four(weight)
    assert not is_two_four(torch.zeros(4, 6))  # input width not a multiple of 4
    model = tiny_model()
    windows = torch.randint(0, 256, (4, 32), generator=torch.Generator().manual_seed(0))
    secateur.prune(model, PruneConfig(pattern="2:4"), windows, show_progress=False)
    assert len(two_four_linears(model)) == 3 * 7  # every decoder Linear, not the LM head
    assert len(two_four_linears(tiny_model())) == 0
    assert "need CUDA" in unavailable_reason(CPU, torch.float16)


def test_cli_bench_of_a_structured_model_against_its_dense_original(saved_llama, corpus, tmp_path, capsys):
    pruned = tmp_path / "pruned"
    args = [*prune_args(saved_llama, corpus), "--eval-windows", "2", "--out", str(pruned), "--quiet"]
    assert main([*args, "--method", "structured", "--pruning-ratio", "0.4", "--importance", "magnitude"]) == 0
    out = tmp_path / "bench"
    bench = ["bench", "--model", str(pruned), "--batch-sizes", "1,2", "--prompt-lens", "16", "--quiet"]
    assert main([*bench, "--new-tokens", "3", "--runs", "2", "--warmup", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "measured on cpu" in printed and "not a 2:4 model" in printed
    result = json.loads((out / "bench.json").read_text())
    models = {m["label"]: m for m in result["models"]}
    assert models["baseline"]["name"] == str(saved_llama)  # found through secateur.json
    assert models["model"]["parameters"] < models["baseline"]["parameters"]
    assert models["model"]["checkpoint_bytes"] < models["baseline"]["checkpoint_bytes"]
    assert len(result["rows"]) == 4 and len(result["speedups"]) == 2
    with (out / "bench.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["model"], r["batch_size"]) for r in rows] == [
        ("model", "1"),
        ("model", "2"),
        ("baseline", "1"),
        ("baseline", "2"),
    ]
    assert (out / "bench.png").stat().st_size > 1000
    assert main([*bench, "--out", str(out)]) == 2  # never overwritten without --overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert main([*bench, "--batch-sizes", "0"]) == 2
    assert "--batch-sizes must list positive integers" in capsys.readouterr().err

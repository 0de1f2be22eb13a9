"""`secateur report DIR`: the Markdown report of real output folders, with its plots."""

import json

from helpers.cli import prune_args
from secateur.cli.main import main


def test_report_of_a_pruned_folder_and_of_a_bench(saved_llama, corpus, tmp_path, capsys):
    pruned = tmp_path / "pruned"
    args = [*prune_args(saved_llama, corpus), "--eval-windows", "2", "--out", str(pruned), "--quiet"]
    assert main([*args, "--pattern", "2:4"]) == 0
    bench = ["bench", "--model", str(pruned), "--batch-sizes", "1", "--prompt-lens", "8", "--new-tokens", "2"]
    assert main([*bench, "--runs", "1", "--warmup", "0", "--out", str(pruned / "bench"), "--quiet"]) == 0
    assert main(["report", str(pruned)]) == 0
    report = (pruned / "report" / "report.md").read_text()
    manifest = json.loads((pruned / "secateur.json").read_text())
    assert f"{manifest['perplexity']['pruned']['perplexity']:.3f}" in report
    assert "50.00% of weights are zero" in report
    assert "![per-layer sparsity](layer_sparsity.png)" in report
    assert "## Speed" in report and "not measured: 2:4 kernels need CUDA" in report
    for image in ("layer_sparsity.png", "bench.png"):
        assert (pruned / "report" / image).stat().st_size > 1000
    capsys.readouterr()
    assert main(["report", str(pruned)]) == 2  # an existing report is kept without --overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2
    assert "holds no secateur results" in capsys.readouterr().err
    assert not (tmp_path / "report").exists()

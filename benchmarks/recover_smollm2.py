"""Prune 20% structured -> LoRA recovery -> speed, on the embedded default model (run by hand).

Runs the real commands, in order, into runs/bench-recover/ (existing steps are reused, so a broken run
can be continued): `secateur prune --method structured` (taylor, T=0, 20% of all parameters),
`secateur recover --merge` on the Lee corpus' train split (plain text), then `secateur bench` of the
pruned and the recovered models against the dense original. Perplexity on the Lee test split.
Results go to benchmarks/results/recover_smollm2.json and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch

from secateur.cli.main import main as secateur
from secateur.evaluation.summary import format_table

RESULTS = Path(__file__).parent / "results"


def step(out: Path, argv: list[str]) -> None:
    if (out / "secateur.json").is_file() or (out / "bench.json").is_file():
        print(f"reusing {out}")
        return
    print("secateur " + " ".join(argv), flush=True)
    if secateur(argv) != 0:
        raise SystemExit(f"step failed: {argv[0]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="runs/bench-recover")
    parser.add_argument("--epochs", default="2")
    parser.add_argument("--lr", default="3e-4")
    args = parser.parse_args()
    root = Path(args.runs)
    pruned, recovered = root / "pruned", root / "recovered"
    common = ["--model", "smollm2-135m", "--quiet"]
    step(
        pruned,
        [
            "prune",
            *common,
            "--method",
            "structured",
            "--importance",
            "taylor",
            "--pruning-ratio",
            "0.2",
            "--temperature",
            "0",
            "--out",
            str(pruned),
        ],
    )
    step(
        recovered,
        [
            "recover",
            "--model",
            str(pruned),
            "--data",
            "lee",
            "--merge",
            "--epochs",
            args.epochs,
            "--lr",
            args.lr,
            "--train-seqlen",
            "256",
            "--eval-seqlen",
            "512",
            "--eval-windows",
            "36",
            "--out",
            str(recovered),
            "--quiet",
        ],
    )
    speed = [
        "--baseline",
        "smollm2-135m",
        "--batch-sizes",
        "1,4",
        "--prompt-lens",
        "128",
        "--new-tokens",
        "32",
    ]
    for model in (pruned, recovered):
        step(
            model / "bench",
            ["bench", "--model", str(model), *speed, "--out", str(model / "bench"), "--quiet"],
        )
    prune = json.loads((pruned / "secateur.json").read_text())
    recover = json.loads((recovered / "secateur.json").read_text())
    bench = json.loads((pruned / "bench" / "bench.json").read_text())
    result = {
        "dense_perplexity": prune["perplexity"]["dense"]["perplexity"],
        "pruned_perplexity": prune["perplexity"]["pruned"]["perplexity"],
        "recovered_perplexity": recover["perplexity"]["after"]["perplexity"],
        "recover": {k: recover["recover"][k] for k in ("data", "data_kind", "trainable_params")}
        | {k: recover["recover"]["training"][k] for k in ("steps", "seconds", "first_loss", "last_loss")},
        "parameters": {m["label"]: m["parameters"] for m in bench["models"]},
        "checkpoint_bytes": {m["label"]: m["checkpoint_bytes"] for m in bench["models"]},
        "speed": bench["rows"],
        "speedups": bench["speedups"],
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "recover_smollm2.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = [
        ["dense", f"{result['dense_perplexity']:.2f}", f"{result['parameters']['baseline']:,}"],
        [
            "structured 20% (taylor)",
            f"{result['pruned_perplexity']:.2f}",
            f"{result['parameters']['model']:,}",
        ],
        [
            f"+ LoRA ({result['recover']['steps']} steps)",
            f"{result['recovered_perplexity']:.2f}",
            f"{result['parameters']['model']:,}",
        ],
    ]
    print(format_table(["model", "ppl (lee test)", "parameters"], rows))
    speed_rows = [
        [s["kernels"], f"{s['batch_size']}x{s['prompt_len']}", f"{s['prefill']:.2f}x", f"{s['decode']:.2f}x"]
        for s in result["speedups"]
    ]
    print(format_table(["kernels", "batch x prompt", "prefill speedup", "decode speedup"], speed_rows))


if __name__ == "__main__":
    main()

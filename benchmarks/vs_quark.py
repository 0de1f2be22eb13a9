"""secateur's OSSCAR against AMD Quark 0.13's own, on the same windows and the same kept width (#16).

Needs a second virtual environment with amd-quark (see benchmarks/quark_side.py):

    .venv/bin/python benchmarks/vs_quark.py --quark-python /path/to/quark-venv/bin/python

Both prune the embedded SmolLM2-135M's MLPs at mlp_pruning_ratio 0.2 from the same 32 x 512 Lee
windows; Quark keeps a multiple of 128 channels (1280 of 1536), so secateur runs with --round-to 128
to keep the same 1280. Both are evaluated by the same secateur perplexity code (Lee test split,
and Jane Austen as a second text). Times are the pruning calls alone, on this machine, one at a time.
Results: benchmarks/results/vs_quark.json and a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import torch

from secateur import api
from secateur.config import CalibrationConfig
from secateur.evaluation.summary import format_table
from secateur.export.structured import sync_uniform_config
from secateur.structured.osscar_run import osscar_prune

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quark-python", required=True)
    parser.add_argument("--ratio", type=float, default=0.2)
    parser.add_argument("--nsamples", type=int, default=32)
    parser.add_argument("--seqlen", type=int, default=512)
    args = parser.parse_args()
    loaded = api.load_model("smollm2-135m")
    windows = api.calibration_windows(
        loaded.tokenizer, CalibrationConfig(nsamples=args.nsamples, seqlen=args.seqlen)
    )

    def evaluate(model) -> dict:
        def ppl(dataset: str, limit: int | None) -> float:
            return api.evaluate(
                model,
                loaded.tokenizer,
                dataset=dataset,
                seqlen=args.seqlen,
                max_windows=limit,
                show_progress=False,
            ).perplexity

        return {"lee": ppl("lee", None), "austen": ppl("austen", 40)}

    result = {}
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        (work / "windows.json").write_text(json.dumps(windows.tolist()))
        command = [args.quark_python, str(HERE / "quark_side.py"), "--model", loaded.location]
        command += [
            "--windows",
            str(work / "windows.json"),
            "--ratio",
            str(args.ratio),
            "--out",
            str(work / "q"),
        ]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        quark = json.loads((work / "q" / "quark_run.json").read_text())
        pruned = api.load_model(str(work / "q"))
        result["quark"] = {"seconds": quark["seconds"], "kept": quark["kept_intermediate"],
                           "version": quark["quark_version"], **evaluate(pruned.model)}  # fmt: skip
    ours = api.load_model("smollm2-135m")
    started = time.perf_counter()
    osscar_prune(ours.adapter, windows, ratio=args.ratio, damp=0.01, swaps=8, round_to=128,
                 device=torch.device("cpu"), show_progress=False)  # fmt: skip
    seconds = time.perf_counter() - started
    sync_uniform_config(ours.adapter)
    result["secateur"] = {
        "seconds": seconds,
        "kept": ours.adapter.layer_shape(0).intermediate,
        **evaluate(ours.model),
    }
    result["setup"] = {
        "model": "smollm2-135m",
        "calibration": f"lee {args.nsamples} x {args.seqlen}, seed 0",
        "ratio": args.ratio,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
    }
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "vs_quark.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = [[name, str(r["kept"]), f"{r['lee']:.2f}", f"{r['austen']:.2f}", f"{r['seconds']:.1f}"]
            for name, r in result.items() if name != "setup"]  # fmt: skip
    print(format_table(["OSSCAR", "kept channels", "Lee test ppl", "Austen ppl", "prune s"], rows))


if __name__ == "__main__":
    main()

"""SparseGPT quality against llm-compressor's SparseGPTModifier on the same calibration windows.

Needs a second virtual environment with llm-compressor (it pins its own transformers 5.x):

    python3 -m venv /tmp/lcvenv && /tmp/lcvenv/bin/pip install torch==2.13.0 llmcompressor==0.14.0.1
    .venv/bin/python benchmarks/vs_llmcompressor.py --llmc-python /tmp/lcvenv/bin/python

Both prune the embedded SmolLM2-135M at 50% (unstructured and 2:4) from the same 32 x 512 windows;
both results are evaluated by the same secateur perplexity code on the Lee test split.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from secateur import api
from secateur.config import CalibrationConfig, PruneConfig
from secateur.evaluation.summary import format_table
from secateur.models.embedded import embedded_model

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--llmc-python", required=True, help="python of a venv with llmcompressor installed")
    parser.add_argument("--work", default="runs/vs-llmcompressor")
    parser.add_argument("--nsamples", type=int, default=32)
    parser.add_argument("--seqlen", type=int, default=512)
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    model_dir = embedded_model("smollm2-135m").ensure()

    loaded = api.load_model(str(model_dir))
    windows = api.calibration_windows(
        loaded.tokenizer, CalibrationConfig(nsamples=args.nsamples, seqlen=args.seqlen)
    )
    save_file({"windows": windows.contiguous()}, work / "windows.safetensors")

    def ppl(model_loaded) -> float:
        return api.evaluate(model_loaded, dataset="lee", seqlen=args.seqlen, show_progress=False).perplexity

    rows = [["dense", "-", "-", f"{ppl(loaded):.3f}"]]
    for pattern, structure in (("unstructured", "0:0"), ("2:4", "2:4")):
        for method in ("wanda", "sparsegpt"):
            fresh = api.load_model(str(model_dir))
            start = time.perf_counter()
            api.prune(fresh, PruneConfig(method=method, pattern=pattern), windows, show_progress=False)
            rows.append(
                [f"secateur {method}", pattern, f"{time.perf_counter() - start:.1f}", f"{ppl(fresh):.3f}"]
            )
            print(rows[-1], flush=True)
        out = work / f"llmc-{pattern.replace(':', '-')}"
        start = time.perf_counter()
        subprocess.run(
            [
                args.llmc_python,
                str(HERE / "llmcompressor_side.py"),
                str(model_dir),
                str(work / "windows.safetensors"),
                str(out),
                structure,
            ],
            check=True,
        )
        seconds = time.perf_counter() - start
        rows.append(
            [
                "llm-compressor SparseGPTModifier",
                pattern,
                f"{seconds:.1f} (incl. load)",
                f"{ppl(api.load_model(str(out))):.3f}",
            ]
        )
        print(rows[-1], flush=True)
    table = format_table(["pruner", "pattern", "prune s", "perplexity"], rows)
    print(table)
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "vs_llmcompressor.json").write_text(
        json.dumps(
            {"torch": torch.__version__, "calibration": f"{args.nsamples} x {args.seqlen} lee", "rows": rows},
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    sys.exit(main())

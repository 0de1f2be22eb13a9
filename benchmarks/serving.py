"""Every output kind in the engines people serve with: transformers, llama.cpp and vLLM (#14).

For SmolLM2-135M dense and pruned (Wanda 50%, structured 20% uniform and global, depth -3, OSSCAR
25%, structured 20% planned for vLLM): prune once into --work, then
  - secateur's perplexity on the Lee test split (512-token windows);
  - llama.cpp: the f32 GGUF export, its perplexity on the very same token windows, and its own
    timers for prompt processing (512 tokens) and generation (64 tokens), median of 5;
  - vLLM (CPU build): the checkpoint as it is, or its nemotron-nas export when the widths differ
    per layer; perplexity from its prompt log-probabilities on the same windows, and wall-clock
    prefill / decode throughput (4 prompts x 128 tokens, 32 new), median of 5.
The engines run in Pythons of their own (--llamacpp-python, --vllm-python). Results:
benchmarks/results/serving.json and a Markdown table (docs/serving.md has the measured one).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

from secateur import api
from secateur.data.sources import resolve_source
from secateur.data.tokens import eval_stream, eval_windows
from secateur.engines.driver import run_worker
from secateur.evaluation.summary import format_table
from secateur.export.gguf import write_gguf
from secateur.export.nemotron_nas import write_nemotron_nas
from secateur.export.structured import is_heterogeneous

RESULTS = Path(__file__).parent / "results"
SPEED = {  # llama.cpp: one sequence; vLLM: a batch of 4
    "llamacpp": {"prompt_tokens": 512, "new_tokens": 64, "runs": 5},
    "vllm": {"prompt_tokens": 128, "new_tokens": 32, "batch": 4, "runs": 5},
}
KINDS = {
    "dense": None,
    "wanda 50%": ["--method", "wanda", "--sparsity", "0.5"],
    "structured 20% uniform": [
        "--method", "structured", "--importance", "wanda", "--uniform", "--pruning-ratio", "0.2",
    ],
    "structured 20% global": ["--method", "structured", "--importance", "wanda", "--pruning-ratio", "0.2"],
    "structured 20% --serve vllm": [
        "--method", "structured", "--importance", "wanda", "--pruning-ratio", "0.2", "--serve", "vllm",
    ],
    "depth -3": ["--method", "depth", "--num-layers", "3", "--score", "bi"],
    "osscar 25%": ["--method", "osscar", "--mlp-pruning-ratio", "0.25"],
}  # fmt: skip


def _folder(kind: str, args) -> Path:
    """The pruned checkpoint of `kind` (pruned once, kept in --work)."""
    if KINDS[kind] is None:
        return Path(api.load_model(args.model).location)
    out = args.work / _slug(kind)
    if not out.exists():
        command = [sys.executable, "-m", "secateur", "prune", "--model", args.model, "--dataset", "lee"]
        subprocess.run([*command, *KINDS[kind], "--no-eval", "--quiet", "--out", str(out)], check=True)
    return out


def _llamacpp(folder: Path, windows: list, args) -> dict:
    gguf = folder.parent / f"{folder.name}.f32.gguf"
    if not gguf.exists():
        loaded = api.load_model(str(folder), dtype="float32")
        write_gguf(loaded.model, loaded.tokenizer, gguf, "f32")
    request = {"model": str(gguf), "threads": os.cpu_count(), "windows": windows, "speed": SPEED["llamacpp"]}
    return {"file": str(gguf), **run_worker("llamacpp", request, args.llamacpp_python)}


def _vllm(folder: Path, windows: list, args) -> dict:
    served = folder
    if is_heterogeneous(folder):  # per-layer widths: vLLM reads them as nemotron-nas
        served = folder.parent / f"{folder.name}.nemotron-nas"
        if not served.exists():
            loaded = api.load_model(str(folder))
            write_nemotron_nas(loaded.model, loaded.tokenizer, served)
    request = {
        "model": str(served), "dtype": "float32", "max_model_len": 1024, "trust_remote_code": True,
        "windows": windows, "speed": SPEED["vllm"],
    }  # fmt: skip
    return {"folder": str(served), **run_worker("vllm", request, args.vllm_python)}


def _slug(kind: str) -> str:
    return kind.replace(" ", "_").replace("%", "").replace("-", "")


def remeasure_speed(row: dict, args) -> dict:
    """--speed-only: the engines' speeds again (a quiet machine), perplexities kept."""
    for engine in args.engines:
        part = row.get(engine, {})
        served = part.get("file") or part.get("folder")
        if "error" in part or served is None:
            continue
        request = {
            "model": served,
            "threads": os.cpu_count(),
            "trust_remote_code": True,
            "max_model_len": 1024,
        }
        request["speed"] = SPEED[engine]
        part["speed"] = run_worker(engine, request, getattr(args, f"{engine}_python"))["speed"]
    return row


def measure(kind: str, args) -> dict:
    """One output kind in every engine; kept in --work/rows (a rerun measures only what is missing,
    unless --remeasure)."""
    saved = args.work / "rows" / f"{_slug(kind)}.json"
    if saved.exists() and not args.remeasure:
        row = json.loads(saved.read_text())
        if args.speed_only:
            row = remeasure_speed(row, args)
            saved.write_text(json.dumps(row, indent=1) + "\n")
        return row
    folder = _folder(kind, args)
    loaded = api.load_model(str(folder))
    parameters = sum(p.numel() for p in loaded.model.parameters())
    stream = eval_stream(loaded.tokenizer, resolve_source("lee"))
    windows = eval_windows(stream, args.seqlen, args.eval_windows, "of lee")
    ours = api.evaluate(
        loaded, dataset="lee", seqlen=args.seqlen, max_windows=args.eval_windows, show_progress=False
    )
    row = {
        "kind": kind,
        "folder": str(folder),
        "parameters": parameters,
        "secateur_perplexity": ours.perplexity,
    }
    del loaded
    ids = windows.tolist()
    for engine, run in (("llamacpp", _llamacpp), ("vllm", _vllm)):
        if engine in args.engines:
            started = time.perf_counter()
            try:
                row[engine] = run(folder, ids, args)
            except Exception as error:  # a kind an engine cannot load is a result, not a crash
                row[engine] = {"error": str(error)}
            row[engine]["seconds"] = time.perf_counter() - started
    print(json.dumps(row), flush=True)
    saved.parent.mkdir(exist_ok=True)
    saved.write_text(json.dumps(row, indent=1) + "\n")
    return row


def table(rows: list[dict]) -> str:
    dense = rows[0]

    def cell(row, engine, key):
        part = row.get(engine, {})
        if "error" in part:
            return "no: " + part["error"][:60]
        if key == "ppl":
            ppl = part["perplexity"]["perplexity"]
            return f"{ppl:.2f} ({100 * (ppl / row['secateur_perplexity'] - 1):+.2f}%)"
        base, this = dense[engine]["speed"][key], part["speed"][key]
        return f"{this:,.0f} ({this / base:.2f}x)"

    lines = []
    for row in rows:
        keys = ("ppl", "prompt_tokens_per_s", "decode_tokens_per_s")
        cells = [cell(row, engine, key) for engine in ("llamacpp", "vllm") for key in keys]
        lines.append(
            [row["kind"], f"{row['parameters'] / 1e6:.1f}M", f"{row['secateur_perplexity']:.2f}", *cells]
        )
    header = ["output", "params", "ppl (transformers)", "llama.cpp ppl", "llama.cpp pp tok/s",
              "llama.cpp tg tok/s", "vLLM ppl", "vLLM prefill tok/s", "vLLM decode tok/s"]  # fmt: skip
    return format_table(header, lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "secateur" / "serving-bench")
    parser.add_argument("--kinds", nargs="*", default=list(KINDS), choices=list(KINDS))
    parser.add_argument("--engines", nargs="*", default=["llamacpp", "vllm"], choices=["llamacpp", "vllm"])
    parser.add_argument("--seqlen", type=int, default=512)
    parser.add_argument("--eval-windows", type=int, default=None, help="default: the whole Lee test split")
    parser.add_argument("--llamacpp-python", default=None)
    parser.add_argument("--vllm-python", default=None)
    parser.add_argument("--remeasure", action="store_true", help="measure kinds already in --work/rows again")
    parser.add_argument("--speed-only", action="store_true", help="re-time the engines of saved rows only")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    kinds = ["dense", *[k for k in args.kinds if k != "dense"]]
    rows = [measure(kind, args) for kind in kinds]
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "model": args.model,
        "eval": f"lee test split, {args.seqlen}-token windows",
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "serving.json").write_text(json.dumps(result, indent=2) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()

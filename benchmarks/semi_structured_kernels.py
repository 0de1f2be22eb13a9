"""One decoder Linear on CUDA: dense bf16 against PyTorch's 2:4 semi-structured kernels.

`benchmarks/gpu_suite.py` measures whole-model speed; this isolates the matrix product, so a slow
whole-model number can be told apart from per-call overhead (the compressed tensor goes through
Python dispatch on every call in eager mode). Shapes are Qwen2.5-Coder-1.5B's MLP (1536 <-> 8960);
token counts cover decode (1, 8) and prefill (512, 4096). Backends: cuSPARSELt (PyTorch's default)
and CUTLASS. Prints a table and writes JSON (`--out`). Needs CUDA; says so and exits 0 without it.
"""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

import torch
import torch.nn.functional as F


def _time(fn, repeats: int) -> float:
    """Median milliseconds of `fn()` over `repeats` CUDA-event-timed calls after warm-up."""
    for _ in range(5):
        fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]


def _two_four(out_features: int, in_features: int) -> torch.Tensor:
    weight = torch.randn(out_features, in_features, device="cuda", dtype=torch.bfloat16)
    groups = weight.view(out_features, -1, 4)
    keep = groups.abs().topk(2, dim=-1).indices
    mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, keep, True)
    return (groups * mask).view(out_features, in_features)


def run(repeats: int) -> list[dict]:
    from torch.sparse import SparseSemiStructuredTensor, to_sparse_semi_structured

    rows = []
    for out_features, in_features in ((8960, 1536), (1536, 8960)):
        weight = _two_four(out_features, in_features)
        compressed = {}
        for backend, force_cutlass in (("cusparselt", False), ("cutlass", True)):
            SparseSemiStructuredTensor._FORCE_CUTLASS = force_cutlass
            compressed[backend] = to_sparse_semi_structured(weight)
        for tokens in (1, 8, 512, 4096):
            x = torch.randn(tokens, in_features, device="cuda", dtype=torch.bfloat16)
            row = {"shape": f"{in_features}->{out_features}", "tokens": tokens}
            row["dense_ms"] = _time(functools.partial(F.linear, x, weight), repeats)
            for backend, sparse in compressed.items():
                try:
                    row[f"{backend}_ms"] = _time(functools.partial(F.linear, x, sparse), repeats)
                    row[f"{backend}_speedup"] = row["dense_ms"] / row[f"{backend}_ms"]
                except (RuntimeError, NotImplementedError) as error:
                    row[f"{backend}_ms"] = f"failed: {str(error).splitlines()[0][:120]}"
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "semi_structured_kernels.json"
    )
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("semi_structured_kernels: no CUDA device here: nothing to measure")
        return
    rows = run(args.repeats)
    result = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['device']}, torch {result['torch']}")
    for row in rows:
        cells = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()]
        print("  ".join(cells))


if __name__ == "__main__":
    main()

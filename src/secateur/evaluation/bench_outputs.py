"""What `secateur bench` leaves behind: a table on stdout, bench.json, bench.csv and bench.png."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from secateur.evaluation.bench import BenchResult
from secateur.evaluation.summary import format_table

CSV_COLUMNS = [
    "model",
    "device",
    "dtype",
    "kernels",
    "batch_size",
    "prompt_len",
    "new_tokens",
    "prefill_s_median",
    "prefill_s_min",
    "prefill_s_max",
    "decode_token_s_median",
    "decode_token_s_min",
    "decode_token_s_max",
    "prefill_tokens_per_s",
    "decode_tokens_per_s",
    "peak_memory_mb",
]


def _spread(timing, digits: int) -> str:
    """Milliseconds: median (min..max)."""
    median, low, high = (f"{v * 1e3:.{digits}f}" for v in (timing.median, timing.low, timing.high))
    return f"{median} ({low}..{high})"


def bench_table(result: BenchResult) -> str:
    rows = []
    for r in result.rows:
        rows.append(
            [
                r.model,
                r.kernels,
                f"{r.batch_size}x{r.prompt_len}",
                _spread(r.prefill_s, 1),
                f"{r.prefill_tokens_per_s:,.0f}",
                _spread(r.decode_token_s, 2),
                f"{r.decode_tokens_per_s:,.1f}",
                f"{r.peak_memory_mb:,.0f}" if math.isfinite(r.peak_memory_mb) else "-",
            ]
        )
    header = [
        "model",
        "kernels",
        "batch x prompt",
        "prefill ms (min..max)",
        "prefill tok/s",
        "decode ms/token (min..max)",
        "decode tok/s",
        "peak MB",
    ]
    facts = [
        [
            m.label,
            m.name,
            f"{m.parameters:,}",
            f"{m.checkpoint_bytes / 2**20:,.1f}" if m.checkpoint_bytes else "-",
            m.sparse_kernels,
        ]
        for m in result.models
    ]
    text = format_table(["", "model", "parameters", "weights MB on disk", "2:4 kernels"], facts)
    text += "\n" + format_table(header, rows)
    if result.speedups:
        speed = [
            [
                s["kernels"],
                f"{s['batch_size']}x{s['prompt_len']}",
                f"{s['prefill']:.2f}x",
                f"{s['decode']:.2f}x" if s["decode"] is not None else "-",
            ]
            for s in result.speedups
        ]
        text += "\n" + format_table(
            ["vs baseline", "batch x prompt", "prefill speedup", "decode speedup"], speed
        )
    memory = "allocated above the weights" if result.device.startswith("cuda") else "process peak RSS"
    if " via " in result.device:
        memory = "not measured (the engine's own process)"
    return text + f"\nmeasured on {result.device}; peak MB = {memory}"


def write_csv(result: BenchResult, path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for r in result.rows:
            writer.writerow(
                [
                    r.model,
                    r.device,
                    r.dtype,
                    r.kernels,
                    r.batch_size,
                    r.prompt_len,
                    r.new_tokens,
                    r.prefill_s.median,
                    r.prefill_s.low,
                    r.prefill_s.high,
                    r.decode_token_s.median,
                    r.decode_token_s.low,
                    r.decode_token_s.high,
                    r.prefill_tokens_per_s,
                    r.decode_tokens_per_s,
                    r.peak_memory_mb,
                ]
            )


def plot_speed(result: BenchResult, path: Path) -> Path:
    """Two panels (prefill, decode throughput): one bar group per shape, one bar per model/kernels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shapes = sorted({(r.batch_size, r.prompt_len) for r in result.rows})
    series = sorted({(r.model, r.kernels) for r in result.rows}, key=lambda s: (s[0] != "baseline", s))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / len(series)
    for panel, (ax, metric, title) in enumerate(
        zip(axes, ("prefill_tokens_per_s", "decode_tokens_per_s"), ("prefill", "decode"), strict=True)
    ):
        for k, (model, kernels) in enumerate(series):
            values = []
            for shape in shapes:
                found = [
                    r
                    for r in result.rows
                    if (r.batch_size, r.prompt_len) == shape and (r.model, r.kernels) == (model, kernels)
                ]
                values.append(getattr(found[0], metric) if found else 0.0)
            label = model if kernels == "dense" else f"{model} ({kernels})"
            ax.bar([i + k * width for i in range(len(shapes))], values, width, label=label)
        ax.set_xticks([i + width * (len(series) - 1) / 2 for i in range(len(shapes))])
        ax.set_xticklabels([f"{b}x{n}" for b, n in shapes])
        ax.set_xlabel("batch x prompt tokens")
        ax.set_ylabel("tokens / s")
        ax.set_title(f"{title} throughput on {result.device}")
        if panel == 0:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_bench(result: BenchResult, folder: Path) -> None:
    (folder / "bench.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    write_csv(result, folder / "bench.csv")
    plot_speed(result, folder / "bench.png")

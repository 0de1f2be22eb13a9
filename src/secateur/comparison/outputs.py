"""The files `secateur compare` writes: comparison.md / .csv / .json and a perplexity plot."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path

from secateur.comparison.result import CompareResult
from secateur.evaluation.summary import format_table
from secateur.export.save import atomic_output_dir

COLUMNS = [
    "recipe",
    "method",
    "pattern",
    "target",
    "actual",
    "perplexity",
    "vs dense",
    "vs dense %",
    "vs first",
    "vs first %",
    "prune s",
    "params",
    "removed %",
    "prefill x",
    "decode x",
]


def _speed(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def table_rows(result: CompareResult) -> list[list[str]]:
    rows = [
        ["dense", "-", "-", "0.0000", "0.0000", f"{result.dense.perplexity:.3f}", "-", "-", "-", "-", "-",
         f"{result.dense_parameters:,}", "0.0%", "1.00x", "1.00x"]
    ]  # fmt: skip
    for r in result.table():
        rows.append(
            [
                r["name"],
                r["method"],
                r["pattern"] + (f" owl={r['owl']}" if r["owl"] else ""),
                f"{r['target_sparsity']:.4f}",
                f"{r['actual_sparsity']:.4f}",
                f"{r['perplexity']:.3f}",
                f"{r['vs_dense']:+.3f}",
                f"{r['vs_dense_pct']:+.1f}%",
                f"{r['vs_first']:+.3f}",
                f"{r['vs_first_pct']:+.1f}%",
                f"{r['prune_s']:.1f}",
                f"{r['parameters']:,}",
                f"{100 * r['params_removed']:.1f}%",
                _speed(r["prefill_speedup"]),
                _speed(r["decode_speedup"]),
            ]
        )
    return rows


def markdown(result: CompareResult) -> str:
    cal, ev = result.calibration, result.evaluation
    return "\n".join(
        [
            f"# secateur compare: {result.model}",
            "",
            f"Calibration: {cal.dataset}, {cal.nsamples} x {cal.seqlen} tokens, seed {cal.seed} "
            "(shared by every recipe).",
            f"Perplexity: {ev['dataset']} test split, {ev['windows']} windows x {ev['seqlen']} tokens.",
            "",
            format_table(COLUMNS, table_rows(result)),
            "",
        ]
    )


_MARKERS = "osD^v<>pPhX*"


def plot(result: CompareResult, path: Path) -> bool:
    """Perplexity against sparsity, a line per method+pattern; only when some series has 2+ points.

    Colour tells the method, marker the pattern, a dashed line OWL; the legend sits outside the axes
    so that twenty series stay readable.
    """
    series: dict[tuple[str, str, bool], list[tuple[float, float]]] = {}
    for row in result.rows:
        series.setdefault((row.method, row.pattern, bool(row.owl)), []).append(
            (row.target_sparsity, row.perplexity)
        )
    if not any(len(points) > 1 for points in series.values()):
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = sorted({key[0] for key in series})
    patterns = sorted({key[1] for key in series})
    colours = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(9, 5), dpi=120)
    for (method, pattern, owl), points in sorted(series.items()):
        points.sort()
        ax.plot(
            [p[0] for p in points],
            [p[1] for p in points],
            color=colours(methods.index(method) % 10),
            marker=_MARKERS[patterns.index(pattern) % len(_MARKERS)],
            linestyle="--" if owl else "-",
            label=f"{method} {pattern}" + (" OWL" if owl else ""),
        )
    ax.axhline(result.dense.perplexity, color="grey", linestyle=":", label="dense")
    ax.set_yscale("log")
    ax.set_xlabel("sparsity")
    ax.set_ylabel(f"perplexity ({Path(result.evaluation['dataset']).name}, log scale)")
    ax.set_title(f"{Path(result.model).name}: perplexity vs sparsity")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def plot_parameters(result: CompareResult, path: Path) -> bool:
    """Perplexity against the share of parameters removed, one point per recipe that removes some
    (structured, depth, OSSCAR, or pruned outputs given with --models)."""
    points = [(row.params_removed, row.perplexity, row.name) for row in result.rows if row.params_removed > 0]
    if not points:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    colours = plt.get_cmap("tab10")
    for index, (removed, ppl, name) in enumerate(points):
        ax.scatter([100 * removed], [ppl], color=colours(index % 10), marker=_MARKERS[index % len(_MARKERS)],
                   label=name, zorder=3)  # fmt: skip
    ax.axhline(result.dense.perplexity, color="grey", linestyle=":", label="dense")
    ax.set_yscale("log")
    ax.set_xlabel("parameters removed (%)")
    ax.set_ylabel(f"perplexity ({Path(result.evaluation['dataset']).name}, log scale)")
    ax.set_title(f"{Path(result.model).name}: perplexity vs parameters removed")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def write_outputs(result: CompareResult, out: str | Path, overwrite: bool) -> Path:
    with atomic_output_dir(out, overwrite) as tmp:
        (tmp / "comparison.md").write_text(markdown(result))
        with (tmp / "comparison.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(COLUMNS)
            writer.writerows(table_rows(result))
        data = {
            "model": result.model,
            "calibration": asdict(result.calibration),
            "evaluation": result.evaluation,
            "dense": {**result.dense.to_dict(), "parameters": result.dense_parameters},
            "rows": result.table(),
        }
        (tmp / "comparison.json").write_text(json.dumps(data, indent=2) + "\n")
        plot(result, tmp / "perplexity_vs_sparsity.png")
        plot_parameters(result, tmp / "perplexity_vs_parameters.png")
    return Path(out)

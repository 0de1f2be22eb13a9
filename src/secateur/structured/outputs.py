"""What a structured prune writes beside the model.

pruning_analysis.json: totals (parameters before/after, the ratio of the total and of the prunable
decoder weights, τ) and per layer the kept heads/KV groups/channels, parameters before and after,
block influence and importance statistics. global_group_table.csv: one row per group (layer, kind,
group, importance, cost, prior, score, pruned). kept_width.png: kept fraction per layer.
"""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from secateur.models.geometry import LayerShape
from secateur.structured.run import StructuredReport

TABLE_COLUMNS = ("layer", "kind", "group", "importance", "cost", "prior", "score", "pruned")


def _importance_stats(values: torch.Tensor) -> dict[str, float] | None:
    if values.numel() == 0:
        return None
    values = values.double()
    return {"min": float(values.min()), "mean": float(values.mean()), "max": float(values.max())}


def analysis(report: StructuredReport) -> dict:
    layers = []
    plans = {p.layer: p for p in report.plan.layers}
    table = report.table
    for index, before in sorted(report.shapes_before.items()):
        plan = plans.get(index)
        kv = len(plan.kv_heads) if plan else before.num_kv_heads
        channels = len(plan.channels) if plan else before.intermediate
        after = LayerShape(
            before.hidden,
            kv,
            before.gqa_ratio,
            before.head_dim,
            channels,
            before.attention_bias,
            before.mlp_bias,
        )
        row = {
            "layer": index,
            "planned": plan is not None,
            "kv_heads": {"before": before.num_kv_heads, "after": kv, "kept": plan.kv_heads if plan else None},
            "heads": {"before": before.num_heads, "after": after.num_heads},
            "channels": {"before": before.intermediate, "after": channels},
            "params": {"before": before.prunable_params(), "after": after.prunable_params()},
            "influence": report.influence.get(index),
        }
        if report.priors is not None and index in report.priors.attention:
            row["prior"] = {
                "attention": report.priors.attention[index],
                "mlp": report.priors.mlp[index],
                "layer_dominant": report.priors.layer_dominant[index],
            }
        if table is not None:
            here = table.layer == index
            row["importance"] = {
                "attention": _importance_stats(table.importance[here & ~table.is_mlp]),
                "mlp": _importance_stats(table.importance[here & table.is_mlp]),
            }
        layers.append(row)
    return {"summary": report.summary(), "timings": report.timings, "layers": layers}


def write_group_table(report: StructuredReport, path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=TABLE_COLUMNS)
        writer.writeheader()
        if report.table is not None:
            writer.writerows(report.table.rows())


def plot_kept_width(report: StructuredReport, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = analysis(report)["layers"]
    index = [r["layer"] for r in rows]
    heads = [r["kv_heads"]["after"] / max(r["kv_heads"]["before"], 1) for r in rows]
    channels = [r["channels"]["after"] / max(r["channels"]["before"], 1) for r in rows]
    fig, ax = plt.subplots(figsize=(9, 4), dpi=110)
    width = 0.4
    ax.bar([i - width / 2 for i in index], heads, width, label="attention (KV groups kept)")
    ax.bar([i + width / 2 for i in index], channels, width, label="MLP (channels kept)")
    ax.set_xlabel("decoder layer")
    ax.set_ylabel("fraction kept")
    ax.set_ylim(0, 1.05)
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize="small")
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)

"""The plots `secateur report` draws from what an output folder records (PNG, matplotlib Agg)."""

from __future__ import annotations

from pathlib import Path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def layer_sparsity(layers: list[dict], path: Path) -> Path:
    """Actual sparsity per decoder layer (bars) against its target (line)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 3.2))
    index = [row["layer"] for row in layers]
    ax.bar(index, [row["actual"] for row in layers], color="#4c72b0", label="actual")
    ax.plot(index, [row.get("target", 0.0) for row in layers], "k--", lw=1, label="target")
    ax.set_xlabel("decoder layer")
    ax.set_ylabel("sparsity")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title("per-layer sparsity")
    return _save(fig, path)


def per_layer_values(series: dict[str, dict[int, float]], path: Path, ylabel: str, title: str, log=False):
    """Several named per-layer series as lines (OSSCAR errors, depth window scores)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 3.2))
    for name, values in series.items():
        keys = sorted(values)
        ax.plot(keys, [values[k] for k in keys], marker="o", ms=3, label=name)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("decoder layer")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, path)


def perplexity_steps(labels: list[str], series: dict[str, list[float | None]], path: Path) -> Path:
    """Perplexity along a sequence of steps (progressive iterations), one line per kind of result."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.4))
    for name, values in series.items():
        points = [(i, v) for i, v in enumerate(values) if v is not None]
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=name)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels)
    ax.set_yscale("log")
    ax.set_ylabel("perplexity")
    ax.legend(fontsize=8)
    ax.set_title("perplexity by iteration")
    return _save(fig, path)

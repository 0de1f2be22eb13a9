"""A picture of tier maps: one panel per Linear role, the layers stacked top to bottom.

Each pixel is one BxB tile: dark = dense, mid = N:M, light = top-k. Looking at it shows at a glance
which layers and which projections the scores protect.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

_LAYER = re.compile(r"\.(\d+)\.")


def _group(maps: dict[str, torch.Tensor]) -> dict[str, list[tuple[int, torch.Tensor]]]:
    """module name -> {role: [(layer, tiers), ...]} by the name's last part and first index."""
    roles: dict[str, list[tuple[int, torch.Tensor]]] = {}
    for name, tiers in maps.items():
        match = _LAYER.search(f".{name}.")
        layer = int(match[1]) if match else 0
        roles.setdefault(name.rsplit(".", 1)[-1], []).append((layer, tiers))
    return {role: sorted(items, key=lambda item: item[0]) for role, items in roles.items()}


def plot_tier_maps(maps: dict[str, torch.Tensor], path: str | Path, title: str = "tier maps") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    colours = ["#1b3a5c", "#4f9bd1", "#f2e394"]  # dense, N:M, top-k
    cmap = ListedColormap(colours).with_extremes(bad="white")
    roles = _group(maps)
    widths = [max(t.shape[1] for _, t in items) for items in roles.values()]
    fig, axes = plt.subplots(
        1,
        len(roles),
        figsize=(min(2.0 * len(roles) + 2, 18), 9),
        dpi=110,
        gridspec_kw={"width_ratios": widths},
        squeeze=False,
    )
    for ax, (role, items) in zip(axes[0], roles.items(), strict=True):
        width = max(t.shape[1] for _, t in items)
        rows = []
        for _, tiers in items:  # one blank tile row between layers
            block = torch.full((tiers.shape[0] + 1, width), float("nan"))
            block[: tiers.shape[0], : tiers.shape[1]] = tiers.float()
            rows.append(block)
        image = torch.cat(rows).numpy()
        ax.imshow(image, cmap=cmap, vmin=0, vmax=2, aspect="auto", interpolation="nearest")
        ax.set_title(role, fontsize="small")
        ax.set_xticks([])
        starts, offset = [], 0
        for block in rows:
            starts.append(offset + (block.shape[0] - 1) / 2)
            offset += block.shape[0]
        step = max(1, len(items) // 8)
        ax.set_yticks(starts[::step], [str(layer) for layer, _ in items][::step], fontsize="x-small")
    axes[0][0].set_ylabel("layer")
    handles = [Patch(color=c, label=n) for c, n in zip(colours, ("dense", "N:M", "top-k"), strict=True)]
    fig.legend(handles=handles, loc="lower center", ncol=3, frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path)
    plt.close(fig)
    return Path(path)

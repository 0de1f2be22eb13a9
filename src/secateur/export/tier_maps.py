"""Tier maps on disk: one int8 (rows/B, cols/B) tensor per module in a safetensors file.

Codes: 0 = dense, 1 = N:M, 2 = top-k. The metadata records the tile size, N:M pattern and k, so a
map can be read back (to resume a progressive run, or to check a checkpoint) without the recipe.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from secateur.errors import SecateurError
from secateur.patterns.tiered import TIER_NAMES, Tiered
from secateur.scratch import atomic_path

TIER_MAPS = "tier_maps.safetensors"


def save_tier_maps(path: str | Path, maps: dict[str, torch.Tensor], pattern: Tiered) -> Path:
    """Write atomically (temporary file, then rename)."""
    path = Path(path)
    metadata = {
        "tile_size": str(pattern.size),
        "nm": pattern.nm.spec,
        "topk": str(pattern.topk),
        "codes": ",".join(f"{code}={name}" for code, name in enumerate(TIER_NAMES)),
    }
    tensors = {name: tiers.to(torch.int8).contiguous().cpu() for name, tiers in maps.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def load_tier_maps(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(maps, metadata) from a file written by `save_tier_maps`."""
    path = Path(path)
    if not path.is_file():
        raise SecateurError(f"tier map file {path} does not exist")
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        maps = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118 - not a dict
    return maps, metadata

"""`secateur export`, as a function: load any secateur output as every command does (heterogeneous
widths, LoRA adapters merged), then write it in a serving engine's format."""

from __future__ import annotations

from collections.abc import Callable

from secateur.export.export_config import ExportRecipe
from secateur.runs.session import load_model, stderr


def run_export(recipe: ExportRecipe, note: Callable[[str], None] = stderr):
    """Returns the writer's report (GgufReport)."""
    from pathlib import Path

    from secateur.errors import SecateurError
    from secateur.export.gguf import write_gguf

    if Path(recipe.out).expanduser().exists() and not recipe.overwrite:  # before loading anything
        raise SecateurError(f"{recipe.out} exists; pass --overwrite to replace it")
    loaded = load_model(recipe.model, "float32", "cpu")
    note(f"loaded {recipe.model} ({loaded.location}); writing {recipe.format} ({recipe.outtype})")
    return write_gguf(loaded.model, loaded.tokenizer, recipe.out, recipe.outtype, recipe.overwrite)

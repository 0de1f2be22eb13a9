"""`secateur export`, as a function: load any secateur output as every command does (heterogeneous
widths, LoRA adapters merged), then write it in a serving engine's format."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from secateur.errors import SecateurError
from secateur.export.export_config import ExportRecipe
from secateur.runs.session import load_model, stderr


def run_export(recipe: ExportRecipe, note: Callable[[str], None] = stderr):
    """Returns the writer's report (GgufReport or NasReport)."""
    from secateur.export.gguf import write_gguf
    from secateur.export.nemotron_nas import write_nemotron_nas

    if Path(recipe.out).expanduser().exists() and not recipe.overwrite:  # before loading anything
        raise SecateurError(f"{recipe.out} exists; pass --overwrite to replace it")
    gguf = recipe.format == "gguf"
    # GGUF converts from fp32 (then to its own types); nemotron-nas keeps the checkpoint's dtype.
    loaded = load_model(recipe.model, "float32" if gguf else "auto", "cpu")
    note(f"loaded {recipe.model} ({loaded.location}); writing {recipe.format}")
    if gguf:
        return write_gguf(loaded.model, loaded.tokenizer, recipe.out, recipe.gguf_type, recipe.overwrite)
    return write_nemotron_nas(loaded.model, loaded.tokenizer, recipe.out, recipe.overwrite)

"""What `secateur export` writes, as a recipe (its fields are the CLI flags)."""

from __future__ import annotations

from dataclasses import dataclass

from secateur.config import option
from secateur.errors import SecateurError

FORMATS = ("gguf",)


@dataclass(frozen=True)
class ExportRecipe:
    """A secateur output (or any supported checkpoint) in a serving engine's format."""

    model: str = option(
        "smollm2-135m", "what to export: any secateur output folder (LoRA adapters are merged), hub id"
    )
    format: str = option("gguf", "gguf (llama.cpp, Ollama, LM Studio)")
    outtype: str = option("f16", "gguf: f32, f16 or q8_0 for the 2-D weights (norms and biases stay f32)")
    out: str | None = option(None, "the file to write (e.g. model.gguf)")
    overwrite: bool = option(False, "replace an existing --out")

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise SecateurError(f"--format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        from secateur.export.gguf import OUTTYPES

        if self.outtype not in OUTTYPES:
            raise SecateurError(f"--outtype must be one of {', '.join(OUTTYPES)}, got {self.outtype!r}")
        if self.out is None:
            raise SecateurError("export needs --out FILE (e.g. --out model.gguf)")

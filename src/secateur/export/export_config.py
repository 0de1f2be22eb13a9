"""What `secateur export` writes, as a recipe (its fields are the CLI flags)."""

from __future__ import annotations

from dataclasses import dataclass

from secateur.config import option
from secateur.errors import SecateurError

FORMATS = ("gguf", "nemotron-nas")
OUTTYPES = ("f32", "f16", "q8_0")
DEFAULT_OUTTYPE = "f16"


@dataclass(frozen=True)
class ExportRecipe:
    """A secateur output (or any supported checkpoint) in a serving engine's format."""

    model: str = option(
        "smollm2-135m", "what to export: any secateur output folder (LoRA adapters are merged), hub id"
    )
    format: str = option(
        "gguf",
        "gguf (one file for llama.cpp, Ollama, LM Studio) or nemotron-nas (a folder vLLM serves as "
        "DeciLMForCausalLM: per-layer KV heads and MLP widths)",
    )
    outtype: str | None = option(
        None,
        f"gguf only: f32, f16 or q8_0 for the 2-D weights; norms and biases stay f32 "
        f"(default {DEFAULT_OUTTYPE})",
    )
    out: str | None = option(None, "the file (gguf) or folder (nemotron-nas) to write")
    overwrite: bool = option(False, "replace an existing --out")

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise SecateurError(f"--format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if self.outtype is not None and self.format != "gguf":
            raise SecateurError(
                f"--outtype is for --format gguf; {self.format} keeps the model's dtype: drop it"
            )
        if self.outtype is not None and self.outtype not in OUTTYPES:
            raise SecateurError(f"--outtype must be one of {', '.join(OUTTYPES)}, got {self.outtype!r}")
        if self.out is None:
            raise SecateurError("export needs --out (a .gguf file, or a folder for nemotron-nas)")

    @property
    def gguf_type(self) -> str:
        return self.outtype or DEFAULT_OUTTYPE

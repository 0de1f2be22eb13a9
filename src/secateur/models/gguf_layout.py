"""How a family's Hugging Face weights are named and laid out in llama.cpp's GGUF files.

One row per model_type: the GGUF architecture its uniform checkpoints are written as, whether that
architecture applies rotary embeddings to adjacent pairs (llama.cpp's "normal" rope: Q and K rows
are then permuted from Hugging Face's half-split layout), the decoder tensors by their name inside a
layer, and whether per-layer widths can be written (llama.cpp's `deci` architecture, the one
llama-style graph that reads a head count and a feed-forward width per layer).

Facts from llama.cpp's sources (src/models/<arch>.cpp, src/llama-model.cpp), checked by loading
the files in llama.cpp itself (tests/integration/test_llamacpp.py, slow):
  - `qwen2` hard-codes the query width to the hidden size, so a Qwen2 whose heads were pruned is
    written as `llama` (which loads optional q/k/v biases) with the rows permuted;
  - `deci` has no q/k norms (Qwen3), so only families without them get per-layer widths.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from secateur.errors import SecateurError

# Decoder-layer tensors of the Llama-like families: Hugging Face name inside a layer -> GGUF name
# inside `blk.N.` (weights and biases alike).
_LLAMA_LAYER = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.o_proj.bias": "attn_output.bias",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
_QK_NORMS = {"self_attn.q_norm.weight": "attn_q_norm.weight", "self_attn.k_norm.weight": "attn_k_norm.weight"}
# Phi-3: fused projections, as llama.cpp's phi3 graph reads them ([q | k | v] and [gate | up]).
_PHI3_LAYER = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.qkv_proj.weight": "attn_qkv.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


# Gemma 2/3: a norm before and after each sub-block; Gemma 3 normalizes q and k per head too.
_GEMMA_LAYER = {
    **{k: v for k, v in _LLAMA_LAYER.items() if "layernorm" not in k},
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "post_attention_norm.weight",
    "pre_feedforward_layernorm.weight": "ffn_norm.weight",
    "post_feedforward_layernorm.weight": "post_ffw_norm.weight",
}


# OLMo 2: norms after each sub-block only; q/k norms over the whole projection (all heads at once).
_OLMO2_LAYER = {
    **{k: v for k, v in _LLAMA_LAYER.items() if "layernorm" not in k},
    **_QK_NORMS,
    "post_attention_layernorm.weight": "post_attention_norm.weight",
    "post_feedforward_layernorm.weight": "post_ffw_norm.weight",
}


def _sliding_period(config) -> int:
    """llama.cpp marks layer i sliding when i % n < n - 1 for a period n read from the file; the n
    that reproduces the config's layer_types (0 layers sliding: n = 1)."""
    kinds = list(getattr(config, "layer_types", None) or [])
    sliding = [kind == "sliding_attention" for kind in kinds]
    for period in range(1, len(kinds) + 2):
        if sliding == [i % period < period - 1 for i in range(len(kinds))]:
            return period
    raise SecateurError(
        "--format gguf: llama.cpp describes Gemma's sliding-window layers by a period, and this model's "
        "are not periodic (depth pruning moved them); export the model before removing layers"
    )


def _gemma_keys(config) -> dict[str, float | int]:
    keys: dict[str, float | int] = {
        "attention.sliding_window": int(config.sliding_window or 0),
        "attention.sliding_window_pattern": _sliding_period(config),
    }
    for name in ("attn_logit_softcapping", "final_logit_softcapping"):
        if getattr(config, name, None):
            keys[name] = float(getattr(config, name))
    bases = getattr(config, "rope_parameters", None) or {}
    if "sliding_attention" in bases:  # Gemma 3: a local and a global rotary base
        keys["rope.freq_base_swa"] = float(bases["sliding_attention"]["rope_theta"])
    return keys


def _gemma_scale_check(config, layers: int) -> None:
    """llama.cpp scales Gemma's queries by 1/sqrt(head_dim), or 1/sqrt(hidden/heads) when the layer
    count is the 27B model's; the config says 1/sqrt(query_pre_attn_scalar). They must agree."""
    big = layers == {"gemma2": 46}.get(config.model_type, 62)
    used = config.hidden_size // config.num_attention_heads if big else config.head_dim
    if config.query_pre_attn_scalar != used:
        raise SecateurError(
            f"--format gguf: llama.cpp would scale this Gemma's attention by 1/sqrt({used}), its config by "
            f"1/sqrt({config.query_pre_attn_scalar}) (a depth-pruned 27B model meets this): not exportable"
        )


def _granite_scales(config) -> dict[str, float]:
    """IBM Granite's multipliers, under the names llama.cpp's granite graph reads."""
    return {
        "attention.scale": config.attention_multiplier,
        "embedding_scale": config.embedding_multiplier,
        "residual_scale": config.residual_multiplier,
        "logit_scale": config.logits_scaling,
    }


@dataclass(frozen=True)
class GgufLayout:
    arch: str  # the GGUF architecture of a uniform checkpoint
    normal_rope: bool  # adjacent-pair rotary: Q/K rows permuted from the Hugging Face layout
    layer_tensors: dict[str, str] = field(default_factory=lambda: dict(_LLAMA_LAYER))
    # The architecture's query width is the hidden size (qwen2, phi3): pruned query heads need
    # `fewer_heads_arch`, or cannot be written.
    query_width_fixed: bool = False
    fewer_heads_arch: str | None = None
    per_layer: bool = True  # heterogeneous widths as `deci` (needs no q/k norms, no multipliers)
    extra_keys: Callable[[object], dict[str, float | int]] | None = None  # family's own keys, by name
    norm_offset: float = 0.0  # added to every norm weight (Gemma's norms compute x * (1 + w))
    # "auto": the LM head is written when untied; "never": the architecture reads token_embd (gemma2);
    # "always": it requires output.weight, tied or not (olmo2).
    output: str = "auto"
    check: Callable[[object, int], None] | None = None  # (config, layers): refuse what it cannot run


_LAYOUTS = {
    "llama": GgufLayout(arch="llama", normal_rope=True),
    "mistral": GgufLayout(arch="llama", normal_rope=True),
    "qwen2": GgufLayout(arch="qwen2", normal_rope=False, query_width_fixed=True, fewer_heads_arch="llama"),
    "qwen3": GgufLayout(
        arch="qwen3", normal_rope=False, layer_tensors={**_LLAMA_LAYER, **_QK_NORMS}, per_layer=False
    ),
    "granite": GgufLayout(arch="granite", normal_rope=True, per_layer=False, extra_keys=_granite_scales),
    "gemma2": GgufLayout(
        arch="gemma2",
        normal_rope=False,
        layer_tensors=dict(_GEMMA_LAYER),
        query_width_fixed=False,
        per_layer=False,
        extra_keys=_gemma_keys,
        norm_offset=1.0,
        output="never",
        check=_gemma_scale_check,
    ),
    "gemma3_text": GgufLayout(
        arch="gemma3",
        normal_rope=False,
        layer_tensors={**_GEMMA_LAYER, **_QK_NORMS},
        per_layer=False,
        extra_keys=_gemma_keys,
        norm_offset=1.0,
        check=_gemma_scale_check,
    ),
    "olmo2": GgufLayout(
        arch="olmo2", normal_rope=False, layer_tensors=dict(_OLMO2_LAYER), per_layer=False, output="always"
    ),
    "phi3": GgufLayout(
        arch="phi3",
        normal_rope=False,
        layer_tensors=dict(_PHI3_LAYER),
        query_width_fixed=True,
        per_layer=False,
    ),
}

# What llama.cpp cannot run, or what is not written yet, and why (named in the refusal).
_WHY_NOT = {
    "opt": "llama.cpp has no OPT architecture",
}


def gguf_layout(model_type: str) -> GgufLayout:
    layout = _LAYOUTS.get(model_type)
    if layout is None:
        why = _WHY_NOT.get(model_type, "its GGUF layout is not written yet")
        raise SecateurError(
            f"--format gguf: {model_type} cannot be exported ({why}); "
            f"supported: {', '.join(sorted(_LAYOUTS))}"
        )
    return layout


def gguf_families() -> tuple[str, ...]:
    return tuple(sorted(_LAYOUTS))

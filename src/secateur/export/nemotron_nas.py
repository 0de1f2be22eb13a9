"""A structurally pruned model as a nemotron-nas (DeciLM) checkpoint, the per-layer format vLLM serves.

What the format can say per layer: how many KV heads (as `n_heads_in_group`, query heads per KV
head, of a query-head count that is GLOBAL), the MLP width, and whether the attention or the MLP is
gone (`no_op`: no weights, no norm). What secateur's plans do: remove whole GQA groups, query heads
included. So each layer is written exactly, with zeros where the format insists on more:
  - the query heads of the kept groups go first in their group's slot of `H / kv` heads; the other
    slots are zero query rows with zero o_proj columns (they attend, and add exactly nothing);
  - a KV count that does not divide the global head count is padded up to the next divisor with
    zero K/V heads (whose slots are all zero queries);
  - a layer 0 without attention keeps one zero KV head (vLLM's layer loop needs attention first).
What stays saved: the KV cache and the MLP; the query and output projections are full width again.
`secateur prune --method structured --serve vllm` plans for this format: whole attention blocks
and MLP channels only, so nothing is padded. Llama-style families only (silu MLP, no q/k norms).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from secateur.errors import SecateurError
from secateur.export.decilm_config import SOURCE
from secateur.export.save import atomic_output_dir
from secateur.export.structured import per_layer_widths
from secateur.models.adapter import ModelAdapter

FAMILIES = ("llama", "mistral", "qwen2")


@dataclass
class NasReport:
    path: str
    layers: int
    global_heads: int
    kv_heads: list[int]  # per layer, as written (0: no attention)
    intermediate: list[int]  # per layer (0: no MLP)
    padded_kv: dict[int, tuple[int, int]] = field(default_factory=dict)  # layer -> (kept, written)
    notes: list[str] = field(default_factory=list)
    bytes: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def divisor_at_least(count: int, total: int) -> int:
    """The smallest divisor of `total` that is >= `count`."""
    return next(d for d in range(max(count, 1), total + 1) if total % d == 0)


def _attention(layer, heads: int, kv: int, written_kv: int, ratio: int, head_dim: int) -> dict:
    """q/k/v/o laid out for `heads` global query heads over `written_kv` KV heads (of which the first
    `kv` are the layer's own, each with its `ratio` query heads); zeros elsewhere."""
    attention = layer.self_attn
    group = heads // written_kv  # query heads per KV head in the file
    q, o = attention.q_proj.weight, attention.o_proj.weight
    new_q = q.new_zeros(heads * head_dim, q.shape[1])
    new_o = o.new_zeros(o.shape[0], heads * head_dim)
    new_q_bias = None if attention.q_proj.bias is None else q.new_zeros(heads * head_dim)
    for j in range(kv):
        source = slice(j * ratio * head_dim, (j + 1) * ratio * head_dim)
        target = slice(j * group * head_dim, (j * group + ratio) * head_dim)
        new_q[target] = q[source]
        new_o[:, target] = o[:, source]
        if new_q_bias is not None:
            new_q_bias[target] = attention.q_proj.bias[source]
    tensors = {"q_proj.weight": new_q, "o_proj.weight": new_o}
    if new_q_bias is not None:
        tensors["q_proj.bias"] = new_q_bias
    for name in ("k_proj", "v_proj"):
        linear = getattr(attention, name)
        padding = (written_kv - kv) * head_dim
        tensors[f"{name}.weight"] = torch.cat([linear.weight, linear.weight.new_zeros(padding, q.shape[1])])
        if linear.bias is not None:
            tensors[f"{name}.bias"] = torch.cat([linear.bias, linear.bias.new_zeros(padding)])
    if attention.o_proj.bias is not None:
        tensors["o_proj.bias"] = attention.o_proj.bias
    return {f"self_attn.{name}": value for name, value in tensors.items()}


def _zero_attention(hidden: int, heads: int, head_dim: int, dtype, bias: bool) -> dict:
    """One KV head and all query heads, all zero (q/k/v biases too where the family has them)."""
    rows = {"q_proj": heads * head_dim, "k_proj": head_dim, "v_proj": head_dim}
    tensors = {f"self_attn.{name}.weight": torch.zeros(n, hidden, dtype=dtype) for name, n in rows.items()}
    if bias:
        tensors.update({f"self_attn.{name}.bias": torch.zeros(n, dtype=dtype) for name, n in rows.items()})
    tensors["self_attn.o_proj.weight"] = torch.zeros(hidden, heads * head_dim, dtype=dtype)
    tensors["input_layernorm.weight"] = torch.ones(hidden, dtype=dtype)
    return tensors


def _config(adapter, blocks: list[dict], heads: int, head_dim: int) -> dict:
    config = adapter.config
    source = config.to_dict()
    keep = ("hidden_size", "num_hidden_layers", "rms_norm_eps", "vocab_size", "tie_word_embeddings",
            "max_position_embeddings", "bos_token_id", "eos_token_id", "pad_token_id", "rope_parameters",
            "rope_theta", "rope_scaling", "dtype", "torch_dtype", "initializer_range")  # fmt: skip
    data = {key: source[key] for key in keep if source.get(key) is not None}
    parameters = source.get("rope_parameters") or {}
    if "rope_theta" not in data and "rope_theta" in parameters:
        data["rope_theta"] = parameters["rope_theta"]
    has_q_bias = adapter.spec.attention_bias
    data.update(
        architectures=["DeciLMForCausalLM"],
        model_type="nemotron-nas",
        auto_map={"AutoConfig": "configuration_decilm.DeciLMConfig"},
        num_attention_heads=heads,
        head_dim=head_dim,
        hidden_act="silu",
        attention_bias=False,  # o_proj: no bias in these families
        qkv_bias=has_q_bias,  # Qwen2: q/k/v biases (vLLM drops them silently without this key)
        mlp_bias=False,
        num_key_value_heads=None,  # per layer, in block_configs
        intermediate_size=None,
        block_configs=blocks,
    )
    return data


def write_nemotron_nas(model, tokenizer, out: str | Path, overwrite: bool = False) -> NasReport:
    """Write the folder vLLM loads as DeciLMForCausalLM (with trust_remote_code=True), atomically."""
    from safetensors.torch import save_file

    started = time.perf_counter()
    adapter = ModelAdapter(model)
    family = adapter.spec.model_type
    if family not in FAMILIES:
        raise SecateurError(
            f"--format nemotron-nas describes Llama-style layers ({', '.join(FAMILIES)}); {family} has "
            "other blocks: use --format gguf, or the plain checkpoint"
        )
    geometry = adapter.geometry()
    widths = per_layer_widths(adapter)
    ratio, head_dim, hidden = geometry.gqa_ratio, geometry.head_dim, adapter.config.hidden_size
    heads = max(adapter.config.num_attention_heads, *(w["num_attention_heads"] for w in widths.values()))
    report = NasReport(str(out), len(widths), heads, [], [])
    state: dict[str, torch.Tensor] = {}
    blocks = []
    for index, layer in enumerate(adapter.decoder_layers()):
        prefix = f"model.layers.{index}."
        kv, ff = widths[index]["num_key_value_heads"], widths[index]["intermediate_size"]
        dtype = next(layer.parameters()).dtype
        if kv:
            written = divisor_at_least(kv, heads)
            if written != kv:
                report.padded_kv[index] = (kv, written)
            tensors = {
                "input_layernorm.weight": layer.input_layernorm.weight,
                **_attention(layer, heads, kv, written, ratio, head_dim),
            }
        elif index == 0:  # vLLM's layer loop starts with an attention: one zero KV head
            written = 1
            tensors = _zero_attention(hidden, heads, head_dim, dtype, adapter.spec.attention_bias)
            report.notes.append("layer 0 has no attention: one zero KV head stands in (adds exactly 0)")
        else:
            written, tensors = 0, {}
        if ff:
            tensors["post_attention_layernorm.weight"] = layer.post_attention_layernorm.weight
            for name in ("gate_proj", "up_proj", "down_proj"):
                tensors[f"mlp.{name}.weight"] = getattr(layer.mlp, name).weight
        state.update({prefix + name: value for name, value in tensors.items()})
        blocks.append(
            {
                "attention": {"no_op": written == 0, "replace_with_linear": False,
                              "n_heads_in_group": heads // written if written else None},
                "ffn": {"no_op": ff == 0, "replace_with_linear": False, "intermediate_size": ff or None},
            }
        )  # fmt: skip
        report.kv_heads.append(written)
        report.intermediate.append(ff)
    embedding = model.get_input_embeddings().weight
    state["model.embed_tokens.weight"] = embedding
    state["model.norm.weight"] = adapter.final_modules()[0].weight
    head = adapter.lm_head().weight
    if head.data_ptr() != embedding.data_ptr():
        state["lm_head.weight"] = head
    if report.padded_kv:
        report.notes.append(
            f"{len(report.padded_kv)} layers' KV heads padded with zero heads up to a divisor of {heads} "
            "(the format's query-head count is global); --serve vllm plans without padding"
        )
    with atomic_output_dir(out, overwrite) as tmp:
        save_file({k: v.detach().contiguous() for k, v in state.items()}, str(tmp / "model.safetensors"),
                  metadata={"format": "pt"})  # fmt: skip
        config = _config(adapter, blocks, heads, head_dim)
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        (tmp / "configuration_decilm.py").write_text(SOURCE)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.save_pretrained(tmp)
    report.bytes = (Path(out) / "model.safetensors").stat().st_size
    report.seconds = time.perf_counter() - started
    return report

"""A forward pass computed from a nemotron-nas (DeciLM) folder the way vLLM's DeciLMForCausalLM
builds it from `block_configs` (global query heads, KV heads = heads / n_heads_in_group, MLP width
per block, no_op blocks absent), in float64: an oracle for the exporter sharing none of its code."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch


def decilm_shapes(folder) -> dict[str, tuple[int, ...]]:
    """Every tensor the format's blocks call for, with its shape (what a DeciLM loader builds)."""
    config = json.loads((Path(folder) / "config.json").read_text())
    hidden, heads, d = config["hidden_size"], config["num_attention_heads"], config["head_dim"]
    shapes = {"model.embed_tokens.weight": (config["vocab_size"], hidden), "model.norm.weight": (hidden,)}
    if not config["tie_word_embeddings"]:
        shapes["lm_head.weight"] = (config["vocab_size"], hidden)
    for i, block in enumerate(config["block_configs"]):
        p = f"model.layers.{i}."
        if not block["attention"]["no_op"]:
            kv = heads // block["attention"]["n_heads_in_group"]
            attention = {"q_proj": heads * d, "k_proj": kv * d, "v_proj": kv * d}
            shapes[p + "input_layernorm.weight"] = (hidden,)
            shapes[p + "self_attn.o_proj.weight"] = (hidden, heads * d)
            for name, rows in attention.items():
                shapes[f"{p}self_attn.{name}.weight"] = (rows, hidden)
                if config.get("qkv_bias"):
                    shapes[f"{p}self_attn.{name}.bias"] = (rows,)
        if not block["ffn"]["no_op"]:
            width = block["ffn"]["intermediate_size"]
            shapes[p + "post_attention_layernorm.weight"] = (hidden,)
            shapes[p + "mlp.gate_proj.weight"] = shapes[p + "mlp.up_proj.weight"] = (width, hidden)
            shapes[p + "mlp.down_proj.weight"] = (hidden, width)
    return shapes


def _rms(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def _rope(x, theta):  # Hugging Face's layout: the two halves of each head rotate together
    d = x.shape[-1]
    freqs = theta ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angles = torch.arange(x.shape[1], dtype=torch.float64)[:, None] * freqs[None]
    cos, sin = angles.cos()[None, :, None], angles.sin()[None, :, None]
    a, b = x[..., : d // 2], x[..., d // 2 :]
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)


def decilm_logits(folder, ids: torch.Tensor) -> torch.Tensor:
    from safetensors.torch import load_file

    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text())
    w = {k: v.double() for k, v in load_file(str(folder / "model.safetensors")).items()}
    heads, d, eps = config["num_attention_heads"], config["head_dim"], config["rms_norm_eps"]
    theta = config["rope_theta"]

    def linear(x, name):
        y = x @ w[name + ".weight"].T
        return y + w[name + ".bias"] if name + ".bias" in w else y

    x = w["model.embed_tokens.weight"][ids]
    batch, seq = ids.shape
    causal = torch.full((seq, seq), float("-inf"), dtype=torch.float64).triu(1)
    for i, block in enumerate(config["block_configs"]):
        p = f"model.layers.{i}."
        if not block["attention"]["no_op"]:
            kv = heads // block["attention"]["n_heads_in_group"]
            h = _rms(x, w[p + "input_layernorm.weight"], eps)
            q = _rope(linear(h, p + "self_attn.q_proj").reshape(batch, seq, heads, d), theta)
            k = _rope(linear(h, p + "self_attn.k_proj").reshape(batch, seq, kv, d), theta)
            v = linear(h, p + "self_attn.v_proj").reshape(batch, seq, kv, d)
            k, v = k.repeat_interleave(heads // kv, dim=2), v.repeat_interleave(heads // kv, dim=2)
            scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(d) + causal
            out = torch.einsum("bhqk,bkhd->bqhd", scores.softmax(-1), v).reshape(batch, seq, -1)
            x = x + linear(out, p + "self_attn.o_proj")
        if not block["ffn"]["no_op"]:
            h = _rms(x, w[p + "post_attention_layernorm.weight"], eps)
            gate = torch.nn.functional.silu(linear(h, p + "mlp.gate_proj"))
            x = x + linear(gate * linear(h, p + "mlp.up_proj"), p + "mlp.down_proj")
    x = _rms(x, w["model.norm.weight"], eps)
    return x @ w.get("lm_head.weight", w["model.embed_tokens.weight"]).T

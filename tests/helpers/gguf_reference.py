"""A forward pass computed from a GGUF file the way llama.cpp's graphs compute it (llama, qwen2,
qwen3, deci), in float64 torch: an oracle for the GGUF writer that shares none of its code.

It reads the file with gguf's reader only: names, per-layer head counts and feed-forward widths,
rope base, epsilon; "normal" rope (llama, deci) rotates adjacent pairs, "neox" (qwen2, qwen3) the
two halves of each head. deci's quirks are reproduced: a layer with no heads has no attention, and
a layer whose feed-forward width is 0 is skipped whole (its attention output is dropped). Phi-3's
fused [q | k | v] and [gate | up] are split by the head counts and width; Granite's multipliers
(embedding, attention, residual, logit scales) are applied where its graph applies them.
"""

from __future__ import annotations

import math

import torch

NORMAL_ROPE = {"llama", "deci", "granite"}  # llama.cpp rotates adjacent pairs for these


def read_gguf(path) -> tuple[dict, dict[str, torch.Tensor]]:
    import gguf

    reader = gguf.GGUFReader(str(path))
    fields = {name: field.contents() for name, field in reader.fields.items()}
    tensors = {}
    for tensor in reader.tensors:
        shape = [int(n) for n in reversed(tensor.shape)]  # ggml lists ne0 first; numpy order is reversed
        data = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        tensors[tensor.name] = torch.from_numpy(data.copy()).double().reshape(shape)
    return fields, tensors


def _per_layer(value, count: int) -> list[int]:
    return list(value) if isinstance(value, list) else [value] * count


def _rms(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def _rope(x: torch.Tensor, theta: float, normal: bool) -> torch.Tensor:
    """x: (batch, seq, heads, d). Rotate pairs (2i, 2i+1) ("normal") or (i, i + d/2) ("neox")."""
    d = x.shape[-1]
    freqs = theta ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angles = torch.arange(x.shape[1], dtype=torch.float64)[:, None] * freqs[None]  # (seq, d/2)
    cos, sin = angles.cos()[None, :, None], angles.sin()[None, :, None]
    if normal:
        a, b = x[..., 0::2], x[..., 1::2]
        out = torch.empty_like(x)
        out[..., 0::2], out[..., 1::2] = a * cos - b * sin, a * sin + b * cos
        return out
    a, b = x[..., : d // 2], x[..., d // 2 :]
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)


def _linear(x, tensors, name):
    y = x @ tensors[f"{name}.weight"].T
    bias = tensors.get(f"{name}.bias")
    return y if bias is None else y + bias


def gguf_logits(path, ids: torch.Tensor) -> torch.Tensor:
    """ids (batch, seq) -> logits (batch, seq, vocab), float64."""
    fields, t = read_gguf(path)
    arch = fields["general.architecture"]
    count = fields[f"{arch}.block_count"]
    heads = _per_layer(fields[f"{arch}.attention.head_count"], count)
    kv_heads = _per_layer(fields[f"{arch}.attention.head_count_kv"], count)
    ffn = _per_layer(fields[f"{arch}.feed_forward_length"], count)
    d = fields[f"{arch}.attention.key_length"]
    eps = fields[f"{arch}.attention.layer_norm_rms_epsilon"]
    theta = fields[f"{arch}.rope.freq_base"]
    normal = arch in NORMAL_ROPE
    scale = {
        key: fields.get(f"{arch}.{key}", 1.0) for key in ("embedding_scale", "residual_scale", "logit_scale")
    }
    attention_scale = fields.get(f"{arch}.attention.scale", 1 / math.sqrt(d))
    x = t["token_embd.weight"][ids] * scale["embedding_scale"]
    batch, seq = ids.shape
    causal = torch.full((seq, seq), float("-inf"), dtype=torch.float64).triu(1)
    for i in range(count):
        p = f"blk.{i}."
        inp = x
        if p + "attn_qkv.weight" in t:  # Phi-3: split the fused projections
            sizes = [heads[i] * d, kv_heads[i] * d, kv_heads[i] * d]
            for part, weight in zip(
                ("attn_q", "attn_k", "attn_v"), t[p + "attn_qkv.weight"].split(sizes), strict=True
            ):
                t[f"{p}{part}.weight"] = weight
            t[p + "ffn_gate.weight"], t[p + "ffn_up.weight"] = t[p + "ffn_up.weight"].split(ffn[i])
        if heads[i] > 0:
            h = _rms(x, t[p + "attn_norm.weight"], eps)
            q = _linear(h, t, p + "attn_q").reshape(batch, seq, heads[i], d)
            k = _linear(h, t, p + "attn_k").reshape(batch, seq, kv_heads[i], d)
            v = _linear(h, t, p + "attn_v").reshape(batch, seq, kv_heads[i], d)
            if p + "attn_q_norm.weight" in t:
                q, k = _rms(q, t[p + "attn_q_norm.weight"], eps), _rms(k, t[p + "attn_k_norm.weight"], eps)
            q, k = _rope(q, theta, normal), _rope(k, theta, normal)
            group = heads[i] // kv_heads[i]
            k, v = k.repeat_interleave(group, dim=2), v.repeat_interleave(group, dim=2)
            scores = torch.einsum("bqhd,bkhd->bhqk", q, k) * attention_scale + causal
            attended = torch.einsum("bhqk,bkhd->bqhd", scores.softmax(-1), v).reshape(batch, seq, -1)
            x = x + _linear(attended, t, p + "attn_output") * scale["residual_scale"]
        if ffn[i] == 0:
            if arch == "deci":
                x = inp  # llama.cpp's deci graph skips the rest of the layer, attention included
            continue
        h = _rms(x, t[p + "ffn_norm.weight"], eps)
        gate = torch.nn.functional.silu(_linear(h, t, p + "ffn_gate"))
        x = x + _linear(gate * _linear(h, t, p + "ffn_up"), t, p + "ffn_down") * scale["residual_scale"]
    x = _rms(x, t["output_norm.weight"], eps)
    head = t.get("output.weight", t["token_embd.weight"])
    return x @ head.T / scale["logit_scale"]

"""Saving and loading structurally pruned (shrunk) models, without pickles or remote code.

Uniform models get a standard config (fewer heads, KV heads, channels; head_dim written out) and load
with plain `AutoModelForCausalLM.from_pretrained`, so vLLM and friends can serve them. Heterogeneous
models keep the original global config plus `per_layer_config`, named as transformers' heterogeneous
configs name it: {layer: {num_attention_heads, num_key_value_heads, intermediate_size, skip}}.
`load_pruned` rebuilds such a model: the architecture from the global config, each layer shrunk to
its recorded widths, then the safetensors weights loaded strictly.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from secateur.errors import SecateurError
from secateur.models.adapter import ModelAdapter
from secateur.models.streaming import model_names
from secateur.structured.groups import ATTENTION, MLP
from secateur.structured.plan import LayerPlan, StructuredPlan

PER_LAYER = "per_layer_config"


def per_layer_widths(adapter: ModelAdapter) -> dict[int, dict]:
    """layer -> its widths and removed sub-blocks, read from the modules."""
    widths = {}
    for index in range(adapter.num_layers()):
        shape = adapter.layer_shape(index)
        skip = [
            kind for kind, size in ((ATTENTION, shape.num_kv_heads), (MLP, shape.intermediate)) if size == 0
        ]
        widths[index] = {
            "num_attention_heads": shape.num_heads,
            "num_key_value_heads": shape.num_kv_heads,
            "intermediate_size": shape.intermediate,
            "skip": skip,
        }
    return widths


def _decoder_part(data: dict) -> dict:
    """The decoder's part of a config.json: itself, or a multimodal model's nested text_config."""
    nested = data.get("text_config")
    return nested if isinstance(nested, dict) else data


def pruned_config(adapter: ModelAdapter) -> dict:
    """The config.json for the model as it is now (uniform: standard; else with per_layer_config,
    in the decoder's part: a multimodal model's text_config)."""
    data = adapter.model.config.to_dict()
    config = _decoder_part(data)
    config.pop(PER_LAYER, None)
    config["head_dim"] = adapter.geometry().head_dim
    widths = per_layer_widths(adapter)
    distinct = {json.dumps(w, sort_keys=True) for w in widths.values()}
    first = widths[0]
    heads_kept = first["num_attention_heads"] == adapter.geometry().num_heads
    if len(distinct) == 1 and not first["skip"] and (adapter.spec.heads_in_config or heads_kept):
        config.update(
            {
                adapter.config_name(k): first[k]
                for k in ("num_attention_heads", "num_key_value_heads", "intermediate_size")
            }
        )
        return data
    config[PER_LAYER] = {str(i): _layer_entry(w) for i, w in widths.items()}
    return data


_WIDTHS_OF = {ATTENTION: ("num_attention_heads", "num_key_value_heads"), MLP: ("intermediate_size",)}


def _layer_entry(widths: dict) -> dict:
    """One layer of per_layer_config, as transformers' heterogeneous configs spell it: a removed
    sub-block is named in `skip` and has no widths (a width of 0 would fail its validation)."""
    dropped = {key for kind in widths["skip"] for key in _WIDTHS_OF[kind]}
    entry = {k: v for k, v in widths.items() if k != "skip" and k not in dropped}
    return {**entry, "skip": widths["skip"]} if widths["skip"] else entry


def sync_uniform_config(adapter: ModelAdapter) -> bool:
    """If every layer has the same widths, write them into the live model's config; True if so."""
    data = _decoder_part(pruned_config(adapter))
    if PER_LAYER in data:
        return False
    keys = ("num_attention_heads", "num_key_value_heads", "intermediate_size", "head_dim")
    adapter.update_config(**{key: data[adapter.config_name(key)] for key in keys})
    return True


def write_pruned_config(adapter: ModelAdapter, folder: Path) -> None:
    (folder / "config.json").write_text(json.dumps(pruned_config(adapter), indent=2, sort_keys=True) + "\n")


def write_if_heterogeneous(model: torch.nn.Module, folder: Path) -> bool:
    """After save_pretrained: replace config.json by one with per_layer_config if the layers differ."""
    try:
        adapter = ModelAdapter(model)
    except SecateurError:
        return False
    data = pruned_config(adapter)
    if PER_LAYER not in _decoder_part(data):
        return False
    (folder / "config.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return True


def is_heterogeneous(folder: str | Path) -> bool:
    path = Path(folder) / "config.json"
    return path.is_file() and PER_LAYER in _decoder_part(json.loads(path.read_text()))


def _state_dict(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise SecateurError(f"{folder} has no .safetensors weights")
    state: dict[str, torch.Tensor] = {}
    for file in files:
        state.update(load_file(str(file)))
    return state


def _as_model_names(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Checkpoint names -> the model's (save_pretrained renames Gemma 3 multimodal's weights)."""
    renamed = model_names(model)
    return {renamed.get(key, key): tensor for key, tensor in state.items()}


def load_pruned(folder: str | Path, dtype: torch.dtype | None = None) -> torch.nn.Module:
    """Any secateur output folder -> the model (heterogeneous ones rebuilt layer by layer)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = Path(folder)
    if not is_heterogeneous(folder):
        return AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).eval()
    data = json.loads((folder / "config.json").read_text())
    layers = _decoder_part(data).pop(PER_LAYER)
    config = AutoConfig.for_model(data.pop("model_type"), **data)
    model = AutoModelForCausalLM.from_config(config)
    adapter = ModelAdapter(model)
    geometry = adapter.geometry()
    plan = StructuredPlan(adapter.config.model_type, geometry.gqa_ratio, geometry.head_dim)
    for index, widths in sorted(layers.items(), key=lambda item: int(item[0])):
        skip = widths.get("skip", [])  # removed: no widths (earlier outputs wrote 0)
        kv = 0 if ATTENTION in skip else widths["num_key_value_heads"]
        channels = 0 if MLP in skip else widths["intermediate_size"]
        plan.layers.append(LayerPlan(int(index), list(range(kv)), list(range(channels))))
    from secateur.structured.apply import apply_plan

    apply_plan(adapter, plan)
    state = _as_model_names(model, _state_dict(folder))
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
    if set(missing) - tied or unexpected:
        raise SecateurError(
            f"{folder}: weights do not match its per_layer_config (missing "
            f"{sorted(set(missing) - tied)[:3]}, unexpected {sorted(unexpected)[:3]}); "
            "the folder may be damaged"
        )
    if tied:
        model.tie_weights()
    target = dtype or next(iter(state.values())).dtype
    return model.to(target).eval()

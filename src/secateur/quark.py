"""Config objects as users of AMD Quark's pruning tool know them, running on secateur's methods.

    from secateur.quark import Config, ModelPruner, OSSCARConfig
    algo_config = OSSCARConfig.from_dict(json.load(open("osscar.json")))
    model = ModelPruner(Config(algo_config=algo_config)).pruning_model(model, calibration_data)

`OSSCARConfig` runs `secateur prune --method osscar`; `LayerImportancePruneConfig` runs depth
pruning (`--method depth`: the consecutive layers whose removal raises calibration perplexity
least, or `delete_layers_index`). Field names and meanings follow Quark's; unknown fields are
errors that name them. Calibration data may be token windows (n, seqlen), a tokenizer output
holding one long `input_ids` stream (cut into `seqlen` windows), or an iterable of either.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from secateur.errors import SecateurError


def _from_dict(cls, data: dict[str, Any]):
    if not isinstance(data, dict):
        raise SecateurError(f"{cls.__name__}.from_dict expects a mapping, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            raise SecateurError(
                f"unknown field {key!r} in {cls.__name__}; known fields: {', '.join(sorted(names))}"
            )
    return cls(**data)


@dataclass
class OSSCARConfig:
    name: str = "osscar"
    damp_percent: float = 0.01
    true_sequential: bool = True
    mlp_pruning_modules: list[str] = field(default_factory=lambda: ["down_proj"])
    mlp_scaling_layers: dict[str, list[str]] = field(
        default_factory=lambda: {"down_proj": ["up_proj", "gate_proj"]}
    )
    mlp_pruning_ratio: float = 0.1
    mlp_intermediate_size_name: str = "intermediate_size"
    model_decoder_layers: str = "model.layers"
    swaps: int = 8  # secateur: local-search swap moves per layer
    round_to: int = 1  # secateur: kept channels a multiple of this (64 or a power of two for fast kernels)

    def __post_init__(self) -> None:
        if not 0.0 < self.mlp_pruning_ratio < 1.0:
            raise SecateurError(
                f"OSSCARConfig.mlp_pruning_ratio must be in (0, 1), got {self.mlp_pruning_ratio}"
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OSSCARConfig:
        return _from_dict(cls, data)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class LayerImportancePruneConfig:
    name: str = "layer_importance_depth_pruning"
    delete_layer_num: int = 1
    delete_layers_index: list[int] | None = None
    save_gpu_memory: bool = False
    layer_num_field: str = "num_hidden_layers"
    model_decoder_layers: str = "model.layers"
    layer_norm_field: str = "model.norm"
    seqlen: int = 512  # secateur: window length when the calibration data is one long stream

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LayerImportancePruneConfig:
        return _from_dict(cls, data)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Config:
    algo_config: OSSCARConfig | LayerImportancePruneConfig

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        algo = dict(data.get("algo_config") or {})
        kind = OSSCARConfig if algo.get("name", "osscar") == "osscar" else LayerImportancePruneConfig
        return cls(algo_config=kind.from_dict(algo))

    def to_dict(self) -> dict[str, Any]:
        return {"algo_config": self.algo_config.to_dict()}


def calibration_tensor(data: Any, seqlen: int) -> torch.Tensor:
    """Token windows (n, seqlen) int64 from windows, a BatchEncoding/dict with input_ids, or batches."""
    if isinstance(data, dict) or hasattr(data, "input_ids"):
        data = data["input_ids"] if isinstance(data, dict) else data.input_ids
    if isinstance(data, torch.Tensor):
        ids = data.long()
        if ids.dim() == 2 and ids.shape[0] == 1 and ids.shape[1] > seqlen:  # one long stream
            count = ids.shape[1] // seqlen
            return ids[0, : count * seqlen].reshape(count, seqlen)
        return ids if ids.dim() == 2 else ids.unsqueeze(0)
    if isinstance(data, Iterable):
        parts = [calibration_tensor(item, seqlen) for item in data]
        if parts:
            return torch.cat(parts)
    raise SecateurError(
        "calibration data must be token ids: a tensor, a tokenizer output, or batches of them"
    )


class ModelPruner:
    def __init__(self, config: Config) -> None:
        self.config = config

    def pruning_model(self, model: torch.nn.Module, dataloader: Any) -> torch.nn.Module:
        """Prune `model` in place with the configured algorithm and return it."""
        from secateur.devices import resolve_device
        from secateur.export.structured import sync_uniform_config
        from secateur.models.adapter import ModelAdapter

        adapter = ModelAdapter(model)
        algo = self.config.algo_config
        if algo.model_decoder_layers != adapter.spec.layers_path:
            raise SecateurError(
                f"model_decoder_layers {algo.model_decoder_layers!r} does not match this "
                f"{adapter.config.model_type} model's {adapter.spec.layers_path!r}"
            )
        device = resolve_device(None)
        if isinstance(algo, OSSCARConfig):
            from secateur.structured.osscar_run import osscar_prune

            windows = calibration_tensor(dataloader, 512)
            settings = dict(ratio=algo.mlp_pruning_ratio, damp=algo.damp_percent, swaps=algo.swaps)
            osscar_prune(
                adapter, windows, **settings, round_to=algo.round_to, device=device, show_progress=False
            )
            sync_uniform_config(adapter)
            return model
        from secateur.structured.depth import parse_layer_list, remove_layers, window_scores

        if algo.delete_layers_index:
            remove = parse_layer_list(",".join(map(str, algo.delete_layers_index)), adapter.num_layers())
        else:
            windows = calibration_tensor(dataloader, algo.seqlen)
            scores = window_scores(
                adapter, windows, algo.delete_layer_num, "ppl", device=device, show_progress=False
            )
            best = min(scores, key=lambda start: (scores[start], start))
            remove = list(range(best, best + algo.delete_layer_num))
        remove_layers(adapter, remove)
        return model

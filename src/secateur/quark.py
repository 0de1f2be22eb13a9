"""Config objects as users of AMD Quark's pruning tool know them, running on secateur's methods.

    from secateur.quark import ModelPruner, OSSCARConfig, PConfig
    algo_config = OSSCARConfig.from_dict(json.load(open("osscar.json")))
    model = ModelPruner(PConfig(algo_config=algo_config)).pruning_model(model, calibration_data)

The same JSON runs in Quark 0.13 itself (recipes/quark-osscar.json does): module names are the
decoder layer's own (`mlp.down_proj`; the short `down_proj` is accepted too), `inside_layer_modules`
lists the hooked modules, `PConfig` is 0.13's name for the wrapper (`Config`, the older one, stays).
What differs by design (docs/benchmarks.md measures both): the kept width is a multiple of
`round_to` (64 by default; Quark always 128), the attention-sink position is left out of the
statistics, the search starts from a greedy elimination and tries swaps.

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

from secateur.config import CalibrationConfig, OsscarConfig, StructuredConfig
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


def _default(cls, name: str) -> Any:
    """secateur's own default for a field: each method's defaults are written once, in secateur.config."""
    return next(f.default for f in dataclasses.fields(cls) if f.name == name)


@dataclass
class OSSCARConfig:
    """Quark's OSSCAR settings. Defaults are secateur's (`secateur prune --method osscar`)."""

    name: str = "osscar"
    damp_percent: float = _default(OsscarConfig, "damp_percent")
    # Quark's true_sequential groups the modules of `inside_layer_modules` one after another inside
    # a layer (True) or all at once (False); with the down projection alone, the only module OSSCAR
    # prunes, both are the same, in Quark as here. Every layer's statistics come from the inputs the
    # already-pruned layers give it, as in Quark (secateur's --no-true-sequential is its own option).
    true_sequential: bool = True
    # The modules hooked for statistics, the module that loses input channels, and the ones that
    # lose the matching output rows, named inside a decoder layer: checked against the architecture.
    inside_layer_modules: list[str] = field(default_factory=lambda: ["mlp.down_proj"])
    mlp_pruning_modules: list[str] = field(default_factory=lambda: ["mlp.down_proj"])
    mlp_scaling_layers: dict[str, list[str]] = field(
        default_factory=lambda: {"mlp.down_proj": ["mlp.up_proj", "mlp.gate_proj"]}
    )
    mlp_pruning_ratio: float = _default(OsscarConfig, "mlp_pruning_ratio")
    mlp_intermediate_size_name: str = "intermediate_size"  # the config attribute rewritten to the kept width
    model_decoder_layers: str = "model.layers"
    swaps: int = _default(OsscarConfig, "swaps")  # secateur: local-search swap moves per layer
    round_to: int = _default(StructuredConfig, "round_to")  # secateur: kept channels a multiple of this
    seqlen: int | None = None  # secateur: window length to cut one long token stream into (see below)

    def __post_init__(self) -> None:
        if not 0.0 < self.mlp_pruning_ratio < 1.0:
            raise SecateurError(
                f"OSSCARConfig.mlp_pruning_ratio must be in (0, 1), got {self.mlp_pruning_ratio}"
            )
        if self.round_to < 1 or self.swaps < 0 or not self.damp_percent >= 0:
            raise SecateurError("OSSCARConfig needs round_to >= 1, swaps >= 0 and damp_percent >= 0")

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
    # True: calibration activations wait in CPU RAM between layers (only one layer and one batch
    # on the GPU); False: they stay on the compute device (faster). Layers always go one at a time.
    save_gpu_memory: bool = False
    layer_num_field: str = "num_hidden_layers"  # the config attribute rewritten to the kept count
    model_decoder_layers: str = "model.layers"
    layer_norm_field: str = "model.norm"  # the final norm the scoring applies before the LM head
    seqlen: int | None = None  # secateur: window length to cut one long token stream into (see below)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LayerImportancePruneConfig:
        return _from_dict(cls, data)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class PConfig:
    """Quark 0.13's pruning config wrapper (`Config` in earlier releases and their docs)."""

    algo_config: OSSCARConfig | LayerImportancePruneConfig

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        algo = dict(data.get("algo_config") or {})
        kind = OSSCARConfig if algo.get("name", "osscar") == "osscar" else LayerImportancePruneConfig
        return cls(algo_config=kind.from_dict(algo))

    def to_dict(self) -> dict[str, Any]:
        return {"algo_config": self.algo_config.to_dict()}


Config = PConfig  # the name Quark's documentation and releases before 0.13 use


def calibration_tensor(data: Any, seqlen: int, *, top: bool = True) -> torch.Tensor:
    """Token windows (n, L) int64 from windows, a BatchEncoding/dict with input_ids, or batches.

    Windows keep the length they were given; only one long stream (a (1, N) tokenizer output of a
    whole text, N > seqlen, given as the data itself rather than as one of its batches) is cut
    into `seqlen`-token windows, the tail dropped.
    """
    if isinstance(data, dict) or hasattr(data, "input_ids"):
        data = data["input_ids"] if isinstance(data, dict) else data.input_ids
    if isinstance(data, torch.Tensor):
        ids = data.long()
        if top and ids.dim() == 2 and ids.shape[0] == 1 and ids.shape[1] > seqlen:  # one long stream
            count = ids.shape[1] // seqlen
            return ids[0, : count * seqlen].reshape(count, seqlen)
        return ids if ids.dim() == 2 else ids.unsqueeze(0)
    if isinstance(data, Iterable):
        parts = [calibration_tensor(item, seqlen, top=False) for item in data]
        if parts and len({part.shape[1] for part in parts}) > 1:
            raise SecateurError(
                "calibration batches have different lengths: give windows of one length, or set seqlen"
            )
        if parts:
            return torch.cat(parts)
    raise SecateurError(
        "calibration data must be token ids: a tensor, a tokenizer output, or batches of them"
    )


def _stream_seqlen(algo, adapter) -> int:
    """The window length for one long stream: the config's, else secateur's calibration default
    (the papers' 2048), never beyond the model's context."""
    if algo.seqlen is not None:
        return algo.seqlen
    context = adapter.max_context()
    default = _default(CalibrationConfig, "seqlen")
    return min(default, context) if context else default


def _short(path: str) -> str:
    return path.rpartition(".")[2]


def _check_osscar_names(algo: OSSCARConfig, adapter) -> None:
    """Quark names the modules and the config attribute; they must be this architecture's. Names
    are inside a decoder layer (`mlp.down_proj`, as Quark 0.13 matches them) or short (`down_proj`)."""
    roles = adapter.spec.roles
    down = roles["down"]
    scaled = sorted(roles[r] for r in ("gate", "up") if r in roles)

    def full(name: str) -> str:
        return next((path for path in roles.values() if name in (path, _short(path))), name)

    if [full(n) for n in algo.mlp_pruning_modules] != [down]:
        raise SecateurError(
            f"mlp_pruning_modules {algo.mlp_pruning_modules} is not supported: secateur prunes the "
            f"input channels of this {adapter.config.model_type} model's {down!r}; use [{down!r}]"
        )
    if down not in [full(n) for n in algo.inside_layer_modules]:
        raise SecateurError(
            f"inside_layer_modules {algo.inside_layer_modules} must list {down!r}, the module whose "
            "inputs OSSCAR's statistics are taken from"
        )
    given = {
        full(key): sorted(full(v) for v in value) for key, value in dict(algo.mlp_scaling_layers).items()
    }
    if given != {down: scaled}:
        raise SecateurError(
            f"mlp_scaling_layers {algo.mlp_scaling_layers} is not supported: the rows removed with "
            f"{down!r}'s channels are those of {scaled}; use {{{down!r}: {scaled}}}"
        )
    width = getattr(adapter.config, algo.mlp_intermediate_size_name, None)
    if width != adapter.layer_shape(0).intermediate:
        raise SecateurError(
            f"mlp_intermediate_size_name {algo.mlp_intermediate_size_name!r} is not this model's MLP "
            f"width attribute (its config has intermediate_size = {adapter.config.intermediate_size})"
        )


def _check_depth_names(algo: LayerImportancePruneConfig, adapter) -> None:
    count = getattr(adapter.config, algo.layer_num_field, None)
    if count != adapter.num_layers():
        raise SecateurError(
            f"layer_num_field {algo.layer_num_field!r} is not this model's layer count attribute "
            f"(num_hidden_layers = {adapter.num_layers()})"
        )
    try:
        norm = adapter.model.get_submodule(algo.layer_norm_field)
    except AttributeError:
        norm = None
    if norm is not adapter.final_norm():
        raise SecateurError(
            f"layer_norm_field {algo.layer_norm_field!r} is not this model's final norm "
            f"({adapter.spec.final_norm_path!r})"
        )


class ModelPruner:
    def __init__(self, config: Config) -> None:
        self.config = config

    def pruning_model(self, model: torch.nn.Module, dataloader: Any) -> torch.nn.Module:
        """Prune `model` in place with the configured algorithm and return it."""
        from secateur.models.adapter import ModelAdapter

        adapter = ModelAdapter(model)
        algo = self.config.algo_config
        if algo.model_decoder_layers != adapter.spec.layers_path:
            raise SecateurError(
                f"model_decoder_layers {algo.model_decoder_layers!r} does not match this "
                f"{adapter.config.model_type} model's {adapter.spec.layers_path!r}"
            )
        if isinstance(algo, OSSCARConfig):
            _check_osscar_names(algo, adapter)
            _osscar(adapter, algo, dataloader)
        else:
            _check_depth_names(algo, adapter)
            _depth(adapter, algo, dataloader)
        return model


def _osscar(adapter, algo: OSSCARConfig, dataloader: Any) -> None:
    from secateur.devices import resolve_device
    from secateur.export.structured import sync_uniform_config
    from secateur.structured.osscar_run import osscar_prune

    windows = calibration_tensor(dataloader, _stream_seqlen(algo, adapter))
    osscar_prune(
        adapter,
        windows,
        ratio=algo.mlp_pruning_ratio,
        damp=algo.damp_percent,
        swaps=algo.swaps,
        round_to=algo.round_to,
        device=resolve_device(None),
        show_progress=False,
    )
    sync_uniform_config(adapter)
    adapter.update_config(**{algo.mlp_intermediate_size_name: adapter.layer_shape(0).intermediate})


def _depth(adapter, algo: LayerImportancePruneConfig, dataloader: Any) -> None:
    from secateur.devices import resolve_device
    from secateur.structured.depth import parse_layer_list, remove_layers, window_scores

    if algo.delete_layers_index:
        remove = parse_layer_list(",".join(map(str, algo.delete_layers_index)), adapter.num_layers())
    else:
        windows = calibration_tensor(dataloader, _stream_seqlen(algo, adapter))
        device = resolve_device(None)
        storage = torch.device("cpu") if algo.save_gpu_memory else device
        scores = window_scores(
            adapter,
            windows,
            algo.delete_layer_num,
            "ppl",
            device=device,
            storage_device=storage,
            show_progress=False,
        )
        best = min(scores, key=lambda start: (scores[start], start))
        remove = list(range(best, best + algo.delete_layer_num))
    remove_layers(adapter, remove)
    adapter.update_config(**{algo.layer_num_field: adapter.num_layers()})

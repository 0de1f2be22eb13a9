"""Model adapters: the only code that knows Hugging Face attribute and config names.

An architecture is a row in a table (`ArchitectureSpec`): where the decoder layers live, which
module path plays which linear role, where the final norm is. `ModelAdapter` answers the questions
the rest of secateur asks about a loaded model through that row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from secateur.devices import module_device
from secateur.errors import SecateurError
from secateur.models.experts import (
    PARTS,
    ExpertLayout,
    ExpertObserver,
    expert_linears,
    expert_role,
    parse_expert_role,
    routed_through,
)
from secateur.models.fused import FusedProjection
from secateur.models.geometry import AttentionGeometry, LayerShape
from secateur.models.layer_config import LayerConfig
from secateur.models.streaming import LayerStream, stream_of
from secateur.registry import REGISTRY

ROLES = ("q", "k", "v", "o", "gate", "up", "down")

_LLAMA_ROLES = {
    "q": "self_attn.q_proj",
    "k": "self_attn.k_proj",
    "v": "self_attn.v_proj",
    "o": "self_attn.o_proj",
    "gate": "mlp.gate_proj",
    "up": "mlp.up_proj",
    "down": "mlp.down_proj",
}


@dataclass(frozen=True)
class ArchitectureSpec:
    """Where things live in one family of Hugging Face causal LMs (paths relative to the model)."""

    model_type: str
    base_path: str = "model"  # the decoder stack without the LM head
    layers_path: str = "model.layers"
    final_norm_path: str = "model.norm"
    # Modules between the final norm and the LM head (OPT-350m projects hidden states down to its
    # embedding width with project_out). A path whose module the checkpoint lacks (None) is skipped,
    # as is an absent final norm (OPT-350m normalizes after each sub-block instead).
    head_input_paths: tuple[str, ...] = ()
    roles: dict[str, str] = field(default_factory=lambda: dict(_LLAMA_ROLES))
    attention_bias: bool = False  # Qwen2 has biases on q/k/v
    attention_path: str = "self_attn"  # the sub-blocks structured pruning may remove whole
    mlp_path: str | None = "mlp"  # None: the MLP's Linears sit on the layer itself (OPT's fc1/fc2)
    # False for families whose structured slicing is not written yet (fused projections, gate-less
    # MLPs): structured width pruning and OSSCAR refuse them in one line; masks and depth work.
    structured: bool = True
    # MLP channels alone (OSSCAR) can be sliced: the gate-less OPT MLP (fc1 row + bias, fc2 column)
    # although its attention cannot (OPT derives head_dim from hidden/heads). None: as `structured`.
    mlp_structured: bool | None = None
    # False where the config cannot say a layer has fewer heads (OPT derives head_dim from
    # hidden / heads): an output with heads removed keeps per_layer_config (load_pruned rebuilds it).
    heads_in_config: bool = True
    # Generic config names -> this family's (OPT calls the MLP width ffn_dim), for update_config.
    config_names: dict[str, str] = field(default_factory=dict)
    # Linears whose rows stack several generic roles (Phi-3's qkv_proj: q, k, v), see models.fused.
    fused: tuple[FusedProjection, ...] = ()
    # What the family's CausalLM forward does to lm_head's output (Granite divides by
    # logits_scaling): perplexity forms logits from hidden states itself, so it must do the same.
    logits_transform: Callable[[Any, torch.Tensor], torch.Tensor] | None = None
    # Mixture-of-experts families: where the routed experts live (see models.experts); their
    # per-expert projections join the Linears as roles "experts.E.gate|up|down".
    experts: ExpertLayout | None = None
    # Roles some layers lack (a Qwen-MoE layer has either a dense MLP or a shared expert).
    optional_roles: frozenset[str] = frozenset()
    # Described from a remote-code model's modules (models.discovery): mask methods only.
    remote_code: bool = False
    notes: str = ""

    @property
    def role_aliases(self) -> dict[str, str]:
        """Generic role (q, k, v, gate, up) -> the fused role holding it, so LoRA targets and
        reports speak one language."""
        return {part: fused.role for fused in self.fused for part in fused.parts}

    @property
    def slices_mlp(self) -> bool:
        """Whether MLP channels can be removed (OSSCAR)."""
        return self.structured if self.mlp_structured is None else self.mlp_structured


def supported_model_types() -> list[str]:
    return REGISTRY.names("architecture")


def methods_for(spec: ArchitectureSpec) -> list[str]:
    """The prune methods a family admits (what `secateur models` lists; the others refuse it)."""
    methods = list(REGISTRY.names("method"))  # every mask method (magnitude, wanda, ria, sparsegpt, alps...)
    if spec.remote_code:
        return methods
    if spec.structured:
        methods.append("structured")
    if spec.slices_mlp:
        methods.append("osscar")
    methods.append("depth")
    if spec.experts is not None:
        methods.append("experts")
    return methods


_ATTACHED = "_secateur_architecture"  # a spec found for this one model object (remote code)


def attach_spec(model: nn.Module, spec: ArchitectureSpec) -> None:
    """Give one loaded model its own row (not the global table: another load must opt in again)."""
    setattr(model, _ATTACHED, spec)


def spec_for(model_type: str | None) -> ArchitectureSpec:
    spec = REGISTRY.find("architecture", str(model_type))
    if spec is None:
        raise SecateurError(
            f"architecture {model_type!r} is not supported; supported: {', '.join(supported_model_types())} "
            "(if its modeling code ships with the checkpoint, --trust-remote-code prunes it with a "
            "mask method)"
        )
    return spec


def _get(root: nn.Module, dotted: str) -> nn.Module:
    module = root
    for part in dotted.split("."):
        module = getattr(module, part)
    return module


def _find(root: nn.Module, dotted: str) -> nn.Module | None:
    module = root
    for part in dotted.split("."):
        module = getattr(module, part, None)
        if module is None:
            return None
    return module


class ModelAdapter:
    """Answers architecture questions about one loaded model."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        attached = getattr(model, _ATTACHED, None)
        self.spec = attached or spec_for(getattr(model.config, "model_type", None))
        # The decoder's own config: a multimodal checkpoint (Gemma 3) nests it as text_config, and
        # that nested object is what its text layers read and what a save writes back.
        self.config = model.config.get_text_config()

    # Layers and modules -------------------------------------------------------------------------
    def decoder_layers(self) -> nn.ModuleList:
        return _get(self.model, self.spec.layers_path)

    def layer_name(self, index: int) -> str:
        return f"{self.spec.layers_path}.{index}"

    def linears(self, layer: nn.Module) -> dict[str, nn.Linear]:
        """role -> Linear, in the order the layer's forward calls them (none of a removed sub-block).

        For a mixture-of-experts layer, each routed expert's gate, up and down projections follow
        as "experts.E.gate" ... (Linear views of the fused expert parameters: see models.experts).
        """
        found = self._role_linears(layer)
        experts = self.experts_of(layer)
        if experts is not None:
            later = {role: found.pop(role) for role in self.spec.experts.followed_by if role in found}
            found.update(expert_linears(experts, self.spec.experts))
            found.update(later)
        return found

    def _role_linears(self, layer: nn.Module) -> dict[str, nn.Linear]:
        """The real Linear modules of the table's roles (no expert views)."""
        from secateur.models.skipped import SkippedBlock

        found = {}
        for role, path in self.spec.roles.items():
            if isinstance(_get(layer, path.split(".")[0]), SkippedBlock):
                continue
            module = _find(layer, path) if role in self.spec.optional_roles else _get(layer, path)
            if module is not None:
                found[role] = module
        return found

    @property
    def stream(self) -> LayerStream | None:
        """Set when the decoder layers stay on disk until their turn (--stream, models.streaming)."""
        return stream_of(self.model)

    @contextmanager
    def layer_on(self, index: int, device: torch.device, write: bool = False) -> Iterator[nn.Module]:
        """Decoder layer `index` on `device` while inside, back where it was after. A streamed
        layer is read from disk and freed after (written back first if `write`)."""
        if self.stream is not None:
            with self.stream.visiting(index, device, write) as layer:
                yield layer
            return
        layer = self.decoder_layers()[index]
        home = module_device(layer)
        layer.to(device)
        try:
            yield layer
        finally:
            layer.to(home)

    @contextmanager
    def layer_edit(self, index: int) -> Iterator[nn.Module]:
        """Decoder layer `index` where it is, to change (slice) in place; a streamed one is read from
        disk onto the CPU, written back after, and freed."""
        if self.stream is None:
            yield self.decoder_layers()[index]
            return
        with self.stream.visiting(index, torch.device("cpu"), write=True) as layer:
            yield layer

    @contextmanager
    def layer_weights(self, index: int) -> Iterator[nn.Module]:
        """Decoder layer `index` to read its weights where they are (a streamed one: from disk, on
        the CPU, freed after)."""
        if self.stream is None:
            yield self.decoder_layers()[index]
            return
        with self.stream.visiting(index, torch.device("cpu"), write=False) as layer:
            yield layer

    def experts_of(self, layer: nn.Module) -> nn.Module | None:
        """The layer's routed experts module; None for dense families, dense and removed MLPs."""
        return None if self.spec.experts is None else self.spec.experts.experts_of(layer)

    @property
    def has_experts(self) -> bool:
        return any(self.experts_of(layer) is not None for layer in self.decoder_layers())

    @contextmanager
    def visiting(self, layer: nn.Module, observer: ExpertObserver | None = None) -> Iterator[dict]:
        """The layer's Linears, with its experts (if any) computing through them while inside, so
        hooks on an expert's projections see exactly the tokens its router sends it."""
        linears = self.linears(layer)
        experts = self.experts_of(layer)
        if experts is None:
            yield linears
            return
        views = {role: linear for role, linear in linears.items() if parse_expert_role(role)}
        with routed_through(experts, views, observer):
            yield linears

    def weight_parameters(self, index: int) -> dict[str, nn.Parameter]:
        """parameter name -> the real parameter behind the layer's Linears (a fused expert tensor
        once, not its views): what training updates and masks must guard."""
        layer = self.decoder_layers()[index]
        names = self.linear_names(index)
        found = {f"{names[role]}.weight": linear.weight for role, linear in self._role_linears(layer).items()}
        experts = self.experts_of(layer)
        if experts is not None:
            prefix = f"{self.layer_name(index)}.{self.spec.experts.block}.{self.spec.experts.experts}"
            for attribute in (self.spec.experts.gate_up, self.spec.experts.down):
                found[f"{prefix}.{attribute}"] = getattr(experts, attribute)
        return found

    def sub_block(self, layer: nn.Module, kind: str) -> nn.Module | None:
        """The layer's attention or MLP block ("attention" / "mlp")."""
        path = self.spec.attention_path if kind == "attention" else self.spec.mlp_path
        return None if path is None else _get(layer, path)

    def resize_attention(self, attention: nn.Module, num_heads: int, num_kv_heads: int) -> None:
        """After an attention module's projections were sliced: the head counts it reads itself."""
        for name, value in (("num_heads", num_heads), ("num_key_value_heads", num_kv_heads)):
            if hasattr(attention, name):  # older transformers read these; 5.x infers most from shapes
                setattr(attention, name, value)
        config = getattr(attention, "config", None)
        if config is not None and hasattr(config, "num_attention_heads"):
            # Phi-3 reads the query width from its config in the forward: give it this layer's.
            attention.config = LayerConfig(
                config, num_attention_heads=num_heads, num_key_value_heads=num_kv_heads
            )

    def replace_sub_block(self, layer: nn.Module, kind: str, module: nn.Module) -> None:
        if kind != "attention" and self.spec.mlp_path is None:
            raise SecateurError(f"{self.spec.model_type}'s MLP is not one module: it cannot be removed whole")
        setattr(layer, self.spec.attention_path if kind == "attention" else self.spec.mlp_path, module)

    def linear_names(self, index: int) -> dict[str, str]:
        """role -> full module name, as in `model.named_modules()` (an expert's projection, which is
        a slice of a fused parameter, gets the name it would have unfused: "...mlp.experts.3.gate")."""
        prefix = self.layer_name(index)
        names = {role: f"{prefix}.{path}" for role, path in self.spec.roles.items()}
        experts = self.experts_of(self.decoder_layers()[index])
        if experts is not None:  # named from the expert count: no views are built for this
            layout = self.spec.experts
            for expert in range(layout.count(experts)):
                for part in PARTS:
                    names[expert_role(expert, part)] = f"{prefix}.{layout.path(expert, part)}"
        return names

    def base_model(self) -> nn.Module:
        return _get(self.model, self.spec.base_path)

    def final_norm(self) -> nn.Module | None:
        return _find(self.model, self.spec.final_norm_path)

    def final_modules(self) -> nn.Sequential:
        """What the base model applies to the last layer's output before the LM head, in order."""
        paths = (self.spec.final_norm_path, *self.spec.head_input_paths)
        return nn.Sequential(*[m for m in (_find(self.model, path) for path in paths) if m is not None])

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits from final hidden states (after the final norm), as the family's forward makes them."""
        logits = self.lm_head()(hidden)
        if self.spec.logits_transform is not None:
            logits = self.spec.logits_transform(self.config, logits)
        return logits

    def lm_head(self) -> nn.Module:
        return self.model.get_output_embeddings()

    def input_device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    # Geometry -----------------------------------------------------------------------------------
    def geometry(self) -> AttentionGeometry:
        c = self.config
        num_heads = c.num_attention_heads
        num_kv = getattr(c, "num_key_value_heads", None) or num_heads  # absent: plain MHA
        head_dim = getattr(c, "head_dim", None) or c.hidden_size // num_heads
        return AttentionGeometry(num_heads=num_heads, num_kv_heads=num_kv, head_dim=head_dim)

    def layer_shape(self, index: int) -> LayerShape:
        """The layer's current widths, read from its modules (a pruned model's layers differ).

        Families whose widths are never sliced (MoE, OLMo 2, remote code) report their config's.
        """
        geometry = self.geometry()
        ratio, head_dim = geometry.gqa_ratio, geometry.head_dim
        if not (self.spec.structured or self.spec.slices_mlp):
            c = self.config
            intermediate = getattr(c, "intermediate_size", None) or getattr(c, "ffn_dim", 0)
            return LayerShape(c.hidden_size, geometry.num_kv_heads, ratio, head_dim, intermediate)
        linears = self.linears(self.decoder_layers()[index])  # a removed sub-block has none
        owners = {role: self._owner(role) for role in ("k", "up", "gate")}

        def rows(role: str) -> int:
            """Output rows the generic role has now (its share of a fused Linear's rows)."""
            owner = owners[role]
            if owner not in linears:
                return 0
            if owner == role:
                return linears[role].out_features
            fused = self._fused(owner)
            sizes = fused.part_sizes(linears[owner].out_features, ratio, head_dim)
            return sizes[fused.parts.index(role)]

        def has_bias(role: str) -> bool:
            return owners[role] in linears and linears[owners[role]].bias is not None

        return LayerShape(
            hidden=self.config.hidden_size,
            num_kv_heads=rows("k") // head_dim,
            gqa_ratio=ratio,
            head_dim=head_dim,
            intermediate=rows("up"),
            attention_bias=has_bias("k"),
            mlp_bias=has_bias("up"),
            mlp_inputs=2 if owners["gate"] in self.spec.roles else 1,  # OPT's MLP has no gate
        )

    # Fused projections (models.fused) -------------------------------------------------------------
    def _fused(self, role: str) -> FusedProjection | None:
        return next((fused for fused in self.spec.fused if fused.role == role), None)

    def _owner(self, generic: str) -> str:
        """The table role whose Linear holds a generic role's rows (Phi-3: q -> qkv)."""
        return self.spec.role_aliases.get(generic, generic)

    def structured_roles(self) -> tuple[str, ...]:
        """The table roles whose Linears hold the generic roles (q..down) structured pruning slices."""
        return tuple(
            dict.fromkeys(self._owner(role) for role in ROLES if self._owner(role) in self.spec.roles)
        )

    def unfused(self, tensors: dict[str, torch.Tensor | None], shape: LayerShape) -> dict:
        """role -> tensor laid out like that Linear's rows (weights, importances, biases) -> generic
        role -> its rows (a fused Linear's tensor is split into its parts; None stays None)."""
        found: dict[str, torch.Tensor | None] = {}
        for role, tensor in tensors.items():
            fused = self._fused(role)
            if fused is None:
                found[role] = tensor
            elif tensor is None:
                found.update(dict.fromkeys(fused.parts))
            else:
                found.update(fused.split(tensor, shape.gqa_ratio, shape.head_dim))
        return found

    def output_rows(
        self, layer: nn.Module, keep: dict[str, torch.Tensor], shape: LayerShape
    ) -> list[tuple[nn.Linear, torch.Tensor]]:
        """generic role -> its output rows to keep -> (Linear, its rows to keep) for each Linear
        involved: a fused Linear once, with the rows of all its parts. Roles the layer lacks are
        skipped (OPT's MLP has no gate)."""
        linears = self.linears(layer)
        slices = []
        for owner in dict.fromkeys(self._owner(role) for role in keep):
            if owner not in linears:
                continue
            fused = self._fused(owner)
            if fused is None:
                slices.append((linears[owner], keep[owner]))
                continue
            rows = fused.rows(keep, linears[owner].out_features, shape.gqa_ratio, shape.head_dim)
            slices.append((linears[owner], rows))
        return slices

    def max_context(self) -> int | None:
        return getattr(self.config, "max_position_embeddings", None)

    def update_config(self, **values) -> None:
        """Write Hugging Face config fields: the one place secateur changes a model's config (so a
        family whose names differ is handled here, not in every caller)."""
        for key, value in values.items():
            setattr(self.config, self.config_name(key), value)

    def config_name(self, generic: str) -> str:
        """This family's config name for a generic one (intermediate_size -> OPT's ffn_dim)."""
        return self.spec.config_names.get(generic, generic)

    def remove_layer_entries(self, removed: list[int]) -> None:
        """After decoder layers are deleted: the layer count and per-layer lists (layer_types)."""
        gone = set(removed)
        old_count = self.config.num_hidden_layers
        values = {"num_hidden_layers": old_count - len(gone)}
        layer_types = getattr(self.config, "layer_types", None)
        if isinstance(layer_types, list) and len(layer_types) == old_count:
            values["layer_types"] = [t for i, t in enumerate(layer_types) if i not in gone]
        if self.spec.experts is not None and hasattr(self.config, "mlp_only_layers"):
            # Qwen-MoE say which layers are dense by index (and every decoder_sparse_step-th):
            # after a removal the indices move, so the dense layers are listed as they now are.
            layers = self.decoder_layers()
            values["mlp_only_layers"] = [
                i for i, layer in enumerate(layers) if self.experts_of(layer) is None
            ]
            values["decoder_sparse_step"] = 1
        if self.spec.experts is not None and hasattr(self.config, "first_k_dense_replace"):
            # DeepSeek-V3's dense layers are the first k: count those that remain.
            layers = self.decoder_layers()
            dense = [self.experts_of(layer) is None for layer in layers]
            values["first_k_dense_replace"] = dense.index(False) if False in dense else len(dense)
        self.update_config(**values)

    def layer_kinds(self) -> tuple[str, ...]:
        """Each decoder layer's kind (Gemma's sliding vs full attention), which decides the mask and
        rotary table it receives; one kind when the config does not distinguish them."""
        count = self.num_layers()
        kinds = getattr(self.config, "layer_types", None)
        if isinstance(kinds, (list, tuple)) and len(kinds) == count:
            return tuple(str(kind) for kind in kinds)
        return ("decoder",) * count

    def require_structured(self, method: str) -> None:
        """One line, before any work, for a family whose structured slicing is not written yet."""
        if not (self.spec.slices_mlp if method == "osscar" else self.spec.structured):
            raise SecateurError(
                f"--method {method} does not support {self.spec.model_type} yet ({self.spec.notes}); "
                "use a mask method (wanda, sparsegpt, magnitude) or --method depth"
            )

    def num_layers(self) -> int:
        return len(self.decoder_layers())

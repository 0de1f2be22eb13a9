"""Routed experts of mixture-of-experts blocks, as transformers 5 stores them.

Mixtral, Qwen2-MoE and Qwen3-MoE keep all experts of a layer in two fused 3-D parameters,
`gate_up_proj` (experts, 2·intermediate, hidden: each expert's gate rows then its up rows) and
`down_proj` (experts, hidden, intermediate), and a router (`gate`, weight (experts, hidden)) whose
top-k choice sends each token to a few experts. The rest of secateur prunes Linears; this strategy
makes each expert's gate, up and down projections look like three Linears whose weights are views
of the fused parameters (so pruning a view prunes the checkpoint's tensor), and, while a layer is
processed, runs the experts through those Linears so statistics hooks see exactly the tokens the
router sends to each expert.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

# (expert index, token positions, router weights of those tokens (T,), expert output before the
# router weight (T, hidden)) -> None: what expert ranking (REAP) observes.
ExpertObserver = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], None]


@dataclass(frozen=True)
class ExpertLayout:
    """Where one family keeps its routed experts (paths relative to a decoder layer)."""

    block: str = "mlp"  # the sparse MoE block (a plain MLP in a family's dense layers)
    experts: str = "experts"  # under block: the module holding the fused 3-D parameters
    router: str = "gate"  # under block: its `weight` is (num_experts, hidden)
    gate_up: str = "gate_up_proj"
    down: str = "down_proj"
    count_key: str = "num_experts"  # the config's name for experts per layer
    top_k_key: str = "num_experts_per_tok"
    # DeepSeek-V3 routes within groups of consecutive experts (config n_group): a token first picks
    # topk_group groups, then its experts inside them. None: one group.
    groups_key: str | None = None
    # Roles the block computes after its routed experts (DeepSeek-V3's shared experts; Qwen2-MoE
    # runs its shared expert first): linears() lists them after the expert views, so a pipeline
    # that stops after the last Linear still sees them.
    followed_by: tuple[str, ...] = ()
    top_k_groups_key: str = "topk_group"

    def experts_of(self, layer: nn.Module) -> nn.Module | None:
        """The layer's experts module, or None for a dense layer (Qwen-MoE's mlp_only_layers)."""
        block = getattr(layer, self.block, None)
        experts = getattr(block, self.experts, None)
        if experts is None or getattr(experts, self.gate_up, None) is None:
            return None
        return experts

    def count(self, experts: nn.Module) -> int:
        """Experts in a layer's experts module (the fused tensors' first dimension)."""
        return getattr(experts, self.gate_up).shape[0]

    def router_of(self, layer: nn.Module) -> nn.Module:
        return getattr(getattr(layer, self.block), self.router)

    def path(self, expert: int, part: str) -> str:
        """The role (and dotted name below the layer) of one expert's projection: 'mlp.experts.3.gate'."""
        return f"{self.block}.{self.experts}.{expert}.{part}"


PARTS = ("gate", "up", "down")


def expert_role(expert: int, part: str) -> str:
    return f"experts.{expert}.{part}"


def parse_expert_role(role: str) -> tuple[int, str] | None:
    """(expert, part) of a role made by `expert_role`, None for any other role."""
    pieces = role.split(".")
    if len(pieces) == 3 and pieces[0] == "experts" and pieces[1].isdigit():
        return int(pieces[1]), pieces[2]
    return None


def _view_linear(weight: torch.Tensor) -> nn.Linear:
    """A bias-free Linear whose weight shares storage with `weight` (a slice of a fused parameter)."""
    linear = nn.Linear(weight.shape[1], weight.shape[0], bias=False, device="meta")
    linear.weight = nn.Parameter(weight, requires_grad=False)
    return linear


def expert_linears(experts: nn.Module, layout: ExpertLayout) -> dict[str, nn.Linear]:
    """role -> Linear view, expert by expert, each in the order its forward uses them (gate, up, down)."""
    gate_up = getattr(experts, layout.gate_up).detach()
    down = getattr(experts, layout.down).detach()
    width = gate_up.shape[1] // 2
    found = {}
    for expert in range(layout.count(experts)):
        found[expert_role(expert, "gate")] = _view_linear(gate_up[expert, :width])
        found[expert_role(expert, "up")] = _view_linear(gate_up[expert, width:])
        found[expert_role(expert, "down")] = _view_linear(down[expert])
    return found


def _routed_forward(experts: nn.Module, linears: dict[str, nn.Linear], observer: ExpertObserver | None):
    """The eager experts forward of transformers 5 (same token order, same arithmetic), through the
    view Linears so forward hooks fire per expert with only the tokens routed to it."""
    count = len(linears) // len(PARTS)

    def forward(hidden_states: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor):
        out = torch.zeros_like(hidden_states)
        for expert in range(count):
            slot, token = torch.where((top_k_index == expert).T)  # the order the eager code uses
            if token.numel() == 0:
                continue
            x = hidden_states[token]
            gate = linears[expert_role(expert, "gate")](x)
            up = linears[expert_role(expert, "up")](x)
            y = linears[expert_role(expert, "down")](experts.act_fn(gate) * up)
            weights = top_k_weights[token, slot]
            if observer is not None:
                observer(expert, token, weights, y)
            out.index_add_(0, token, (y * weights[:, None]).to(out.dtype))
        return out

    return forward


@contextmanager
def routed_through(
    experts: nn.Module, linears: dict[str, nn.Linear], observer: ExpertObserver | None = None
) -> Iterator[None]:
    """While inside, the experts module computes through `linears` (and reports to `observer`)."""
    previous = experts.__dict__.get("forward")
    experts.forward = _routed_forward(experts, linears, observer)
    try:
        yield
    finally:
        if previous is None:
            del experts.forward
        else:
            experts.forward = previous


@torch.no_grad()
def keep_experts(layer: nn.Module, layout: ExpertLayout, keep: list[int]) -> None:
    """Slice a layer's experts (fused parameters) and its router's rows down to `keep` (sorted).

    The router's softmax then runs over the kept experts only, as it does in a model trained with
    that many; top-k stays as it was (the caller checks it still fits).
    """
    experts, router = layout.experts_of(layer), layout.router_of(layer)
    total = layout.count(experts)
    index = torch.tensor(keep, dtype=torch.long, device=router.weight.device)
    for name in (layout.gate_up, layout.down):
        param = getattr(experts, name)
        sliced = param.data.index_select(0, index.to(param.device)).clone()
        setattr(experts, name, nn.Parameter(sliced, requires_grad=param.requires_grad))
    # Every per-expert tensor of the router: its rows, a bias, DeepSeek-V3's score-correction buffer.
    for name, tensor in [*router.named_parameters(recurse=False), *router.named_buffers(recurse=False)]:
        if tensor.dim() >= 1 and tensor.shape[0] == total:
            sliced = tensor.data.index_select(0, index.to(tensor.device)).clone()
            if isinstance(tensor, nn.Parameter):
                setattr(router, name, nn.Parameter(sliced, requires_grad=tensor.requires_grad))
            else:
                setattr(router, name, sliced)
    for module in (experts, router):
        if hasattr(module, "num_experts"):
            module.num_experts = len(keep)

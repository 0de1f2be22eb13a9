"""Structured width pruning end to end: signals, global plan, shrink, report.

1. gradients (taylor) over the whole model, and/or one pass of the layer pipeline on the dense
   model collecting input norms (wanda) and block influence (the H-GSP priors);
2. group importances per layer, the prior multipliers, the global table, the plan (global or
   uniform) over the layers not frozen;
3. the plan applied: weights sliced, empty sub-blocks removed.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass, field

import torch

from secateur.calibration.capture import capture_layer_inputs
from secateur.calibration.pipeline import LayerContext, run_layers
from secateur.calibration.stats import InputCollector, InputStats
from secateur.devices import module_device
from secateur.errors import SecateurError
from secateur.models.adapter import ModelAdapter
from secateur.models.geometry import LayerShape, count_parameters
from secateur.structured.apply import apply_plan
from secateur.structured.collapse import collapse_layers
from secateur.structured.config import StructuredConfig
from secateur.structured.gradients import accumulate_gradients
from secateur.structured.groups import ATTENTION
from secateur.structured.importance import layer_group_importance
from secateur.structured.influence import InfluenceMeter
from secateur.structured.plan import StructuredPlan
from secateur.structured.planner import (
    GroupTable,
    build_table,
    check_target,
    plan_from_table,
    plan_global,
    plan_global_whole_attention,
    plan_uniform,
)
from secateur.structured.priors import Priors, hgsp_priors
from secateur.structured.reconstruct import apply_plan_reconstructing

# vLLM's nemotron-nas layer loop needs layer 0's attention: plans for it never remove that one.
VLLM_KEEPS_ATTENTION = frozenset({0})


@dataclass
class StructuredReport:
    plan: StructuredPlan
    table: GroupTable | None
    shapes_before: dict[int, LayerShape]
    params_before: int
    params_after: int
    prunable_before: int  # decoder Linear parameters the groups hold (all layers)
    priors: Priors | None
    influence: dict[int, dict[str, float]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    collapsed: list[int] = field(default_factory=list)  # layers emptied by --epsilon

    @property
    def removed(self) -> int:
        return self.params_before - self.params_after

    def summary(self) -> dict:
        return {
            "params_before": self.params_before,
            "params_after": self.params_after,
            "removed": self.removed,
            "ratio_of_total": self.removed / self.params_before,
            "ratio_of_prunable": self.removed / max(self.prunable_before, 1),
            "uniform": self.plan.is_uniform(),
            "tau": None if self.priors is None else self.priors.tau,
            "collapsed_layers": self.collapsed,
        }


def frozen_layers(config: StructuredConfig, num_layers: int) -> set[int]:
    first, last = config.freeze_first_n_layers, config.freeze_last_n_layers
    if first + last >= num_layers:
        raise SecateurError(
            f"--freeze-first-n-layers {first} and --freeze-last-n-layers {last} freeze all "
            f"{num_layers} layers of this model: nothing is left to prune; freeze fewer"
        )
    return set(range(first)) | set(range(num_layers - last, num_layers))


def _collect_activations(adapter, windows, planned, wanda, device, batch_size, show_progress):
    """One pipeline pass on the dense model: input norms per Linear (wanda) and block influence."""
    stats: dict[int, dict] = {}
    influence: dict[int, dict[str, float]] = {}
    inputs = capture_layer_inputs(
        adapter, windows, batch_size=batch_size, compute_device=device, storage_device=device
    )

    def visit(ctx: LayerContext) -> None:
        with ExitStack() as stack:
            meter = stack.enter_context(
                InfluenceMeter().attached(ctx.layer, adapter.sub_block(ctx.layer, ATTENTION))
            )
            if wanda and ctx.index in planned:
                stats[ctx.index] = stack.enter_context(
                    InputCollector(dict(ctx.linears), InputStats.for_module).attached()
                )
            ctx.propagate()
        # A distributed run: every process saw its share of the windows; the sums of all are used.
        meter.reduce()
        influence[ctx.index] = meter.influence()
        for shared in {id(s): s for s in stats.get(ctx.index, {}).values()}.values():
            shared.reduce()

    run_layers(
        adapter,
        visit,
        inputs=inputs,
        device=device,
        show_progress=show_progress,
        desc="signals",
        changes=False,
    )
    return stats, influence


def _apply(adapter, plan, config: StructuredConfig, windows, device, batch_size, show_progress) -> None:
    """Slice the plan in; with --reconstruct, refit what lost inputs on the calibration windows."""
    if not config.reconstruct:
        apply_plan(adapter, plan)
        return
    if windows is None:
        raise SecateurError("--reconstruct refits on calibration activations; pass calibration windows")
    apply_plan_reconstructing(
        adapter, plan, windows, device=device, batch_size=batch_size, show_progress=show_progress
    )


def structured_prune(
    adapter: ModelAdapter,
    config: StructuredConfig,
    windows: torch.Tensor | None,
    *,
    device: torch.device,
    batch_size: int = 4,
    show_progress: bool = True,
) -> StructuredReport:
    """Plan and apply structured pruning to `adapter.model` in place (see the module docstring)."""
    started = time.perf_counter()
    layers = adapter.num_layers()
    shapes = {i: adapter.layer_shape(i) for i in range(layers)}
    params_before = count_parameters(adapter.model)
    prunable_all = sum(s.prunable_params() for s in shapes.values())
    timings: dict[str, float] = {}
    if config.plan is not None:
        plan = StructuredPlan.load(config.plan)
        _apply(adapter, plan, config, windows, device, batch_size, show_progress)
        return StructuredReport(
            plan, None, shapes, params_before, count_parameters(adapter.model), prunable_all, None
        )

    planned = sorted(set(range(layers)) - frozen_layers(config, layers))
    target = int(config.pruning_ratio * params_before)
    check_target(target, sum(shapes[i].prunable_params() for i in planned), config.pruning_ratio)
    if (config.needs_gradients or config.needs_activations) and windows is None:
        raise SecateurError(f"--importance {config.importance} needs calibration windows")

    gradients = None
    if config.needs_gradients:
        # Backward passes need the whole model on one device: use the compute device when the
        # model lives elsewhere (CPU RAM, a GPU to use), and bring it back afterwards.
        home = module_device(adapter.model)
        adapter.model.to(device)
        try:
            gradients = accumulate_gradients(
                adapter,
                windows,
                batch_size=config.gradient_batch_size,
                second_order=config.importance == "taylor_2nd",
                checkpointing=config.gradient_checkpointing,
                show_progress=show_progress,
            )
        finally:
            adapter.model.to(home)
        timings["gradients_s"] = time.perf_counter() - started
    stats: dict[int, dict] = {}
    influence: dict[int, dict[str, float]] = {}
    if config.importance == "wanda" or config.prior_temperature > 0:
        mark = time.perf_counter()
        stats, influence = _collect_activations(
            adapter, windows, set(planned), config.importance == "wanda", device, batch_size, show_progress
        )
        timings["activations_s"] = time.perf_counter() - mark

    importances = {}
    for i in planned:
        with adapter.layer_weights(i):  # a streamed layer: its weights read from disk meanwhile
            importances[i] = layer_group_importance(
                config.importance, adapter, i, shapes[i], stats.get(i), gradients
            )
    del gradients, stats
    influence_planned = {i: influence.get(i, {}) for i in planned}
    priors = hgsp_priors(influence_planned, config.prior_temperature, config.tau)
    table = build_table(importances, shapes, priors.attention, priors.mlp)
    planned_shapes = {i: shapes[i] for i in planned}
    if config.uniform:
        fraction = target / sum(s.prunable_params() for s in planned_shapes.values())
        plan_uniform(table, planned_shapes, fraction, config.round_to)
    elif config.serve == "vllm":  # whole attention blocks only; layer 0's stays (vLLM needs it)
        plan_global_whole_attention(table, target, keep_attention=VLLM_KEEPS_ATTENTION)
    else:
        plan_global(table, target)
    geometry = adapter.geometry()
    plan = plan_from_table(
        table, planned_shapes, adapter.config.model_type, geometry.gqa_ratio, geometry.head_dim
    )
    keep_attention = VLLM_KEEPS_ATTENTION if config.serve == "vllm" else frozenset()
    collapsed = collapse_layers(plan, config.epsilon, keep_attention)
    mark = time.perf_counter()
    _apply(adapter, plan, config, windows, device, batch_size, show_progress)
    if config.reconstruct:
        timings["reconstruct_s"] = time.perf_counter() - mark
    timings["structured_s"] = time.perf_counter() - started
    return StructuredReport(
        plan,
        table,
        shapes,
        params_before,
        count_parameters(adapter.model),
        prunable_all,
        priors,
        influence,
        timings,
        collapsed,
    )

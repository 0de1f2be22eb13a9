"""Mask pruning through the layer pipeline: collect statistics, prune each Linear, move on.

For every targeted layer the method gathers its statistics on all seven Linears in one pass over
the dense layer (as the Wanda and SparseGPT reference code and llm-compressor do), prunes them, and
the pipeline recomputes the layer's outputs with the pruned weights for the next layer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from secateur.calibration.capture import LayerInputs, capture_layer_inputs
from secateur.calibration.pipeline import LayerContext, run_layers
from secateur.config import PruneConfig
from secateur.devices import resolve_device
from secateur.distributed import broadcast, rank, share_work, world_size
from secateur.errors import SecateurError
from secateur.evaluation.sparsity import SparsityReport, measure_sparsity, verify_sparsity
from secateur.models.adapter import ModelAdapter
from secateur.patterns.base import Pattern
from secateur.patterns.tiered import Tiered, tier_shares
from secateur.pruning.layers import resolve_skip_layers
from secateur.pruning.method import PruningMethod, build_method
from secateur.pruning.owl import measure_outlier_ratios
from secateur.pruning.statistics import layer_statistics
from secateur.pruning.tiered import TierPruner, TierState
from secateur.scoring.owl import OwlSettings, allocate


@dataclass
class PruneReport:
    """What a prune did: the recipe's key facts, measured sparsity, and where the time went."""

    method: str
    pattern: str
    target_sparsity: float
    skipped_layers: list[int]
    sparsity: SparsityReport
    layer_sparsity: dict[int, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    memory: dict[str, float] = field(default_factory=dict)
    tier_maps: dict[str, torch.Tensor] | None = None  # tiered pattern: int8 tier per tile, by module
    # Mixture of experts: layer -> experts that received fewer than --expert-min-tokens calibration
    # tokens and were pruned by magnitude instead (see pruning.statistics).
    expert_fallbacks: dict[int, list[int]] = field(default_factory=dict)

    def tier_summary(self) -> dict | None:
        """Share of tiles in each tier over all tiered modules (None for other patterns)."""
        if not self.tier_maps:
            return None
        return tier_shares(torch.cat([m.flatten() for m in self.tier_maps.values()]))

    def to_dict(self) -> dict:
        return {
            "tiers": self.tier_summary(),
            "method": self.method,
            "pattern": self.pattern,
            "target_sparsity": self.target_sparsity,
            "skipped_layers": self.skipped_layers,
            "layer_sparsity": {str(k): v for k, v in self.layer_sparsity.items()},
            "sparsity": self.sparsity.to_dict(),
            "timings": self.timings,
            "memory": self.memory,
            "expert_fallbacks": {str(k): v for k, v in self.expert_fallbacks.items()},
        }


@dataclass
class MaskPruner:
    """Layer visitor: statistics, then prune each targeted Linear of the layer to its sparsity."""

    method: PruningMethod
    pattern: Pattern
    layer_sparsity: dict[int, float]  # targeted layers only
    expert_min_tokens: int = 0
    pruned: dict[tuple[int, str], int] = field(default_factory=dict)  # (layer, role) -> weights removed
    fallbacks: dict[int, list[int]] = field(default_factory=dict)  # layer -> experts pruned by magnitude

    @torch.no_grad()
    def __call__(self, ctx: LayerContext) -> None:
        sparsity = self.layer_sparsity.get(ctx.index, 0.0)
        if sparsity == 0.0:
            return
        for role, linear in ctx.linears.items():
            self.pattern.check_shape(tuple(linear.weight.shape), f"{ctx.name} {role}_proj")
        stats, starved = layer_statistics(self.method, ctx, self.expert_min_tokens)
        if starved:
            self.fallbacks[ctx.index] = starved
        prepare = getattr(self.method, "prepare_layer", None)  # e.g. RIA's channel permutation
        if prepare is not None:
            prepare(ctx.linears, stats, self.pattern)
        # Under torchrun a solver's Linears are shared out: each process solves its own from the
        # summed statistics, then every weight and mask goes from its solver to all the others.
        linears = list(ctx.linears.items())
        shared = self.method.updates_weights and world_size() > 1
        owners = (
            share_work([_solve_cost(linear) for _, linear in linears]) if shared else [rank()] * len(linears)
        )
        # A method that treats attention and MLP Linears differently (dsnot) is told where each sits.
        reads_path = getattr(self.method, "reads_path", False)
        paths = {id(m): n for n, m in ctx.layer.named_modules()} if reads_path else None
        for (role, linear), owner in zip(linears, owners, strict=True):
            if owner == rank():
                where = {} if paths is None else {"path": paths.get(id(linear), role)}
                keep = self.method.prune(linear, stats.get(role), self.pattern, sparsity, **where)
            else:
                keep = torch.empty(linear.weight.shape, dtype=torch.bool, device=linear.weight.device)
            if shared:
                broadcast(linear.weight.data, owner)
                broadcast(keep.view(torch.uint8), owner)  # gloo has no bool
            self.pruned[(ctx.index, role)] = int((~keep).sum())


def _solve_cost(linear: torch.nn.Linear) -> float:
    """A SparseGPT solve's work, roughly: the column sweep over the rows, plus the inverse."""
    rows, cols = linear.weight.shape
    return float(rows * cols + cols * cols)


def _capture(adapter, windows, config, device) -> LayerInputs:
    storage = torch.device("cpu") if config.offload_activations else device
    return capture_layer_inputs(
        adapter, windows, batch_size=config.batch_size, compute_device=device, storage_device=storage
    )


def _owl_targets(adapter, config, windows, owl, sparsity, targeted, device, show_progress, shared) -> dict:
    """Per-layer sparsity from outlier ratios measured on the dense model (cached in `shared`)."""
    owl.check(sparsity)
    key = ("owl-ratios", owl.outlier_multiple, targeted)
    if key not in shared:
        inputs = _capture(adapter, windows, config, device)
        shared[key] = measure_outlier_ratios(
            adapter, inputs, targeted, owl.outlier_multiple, device, show_progress
        )
    layers = adapter.decoder_layers()
    sizes = {i: sum(m.weight.numel() for m in adapter.linears(layers[i]).values()) for i in targeted}
    return allocate(shared[key], sizes, sparsity, owl.spread)


def prune_with_masks(
    adapter: ModelAdapter,
    config: PruneConfig,
    windows: torch.Tensor | None,
    *,
    show_progress: bool = True,
    verify: bool = True,
    shared: dict | None = None,
    tier_state: TierState | None = None,
) -> PruneReport:
    """Prune `adapter.model` in place. windows: (nsamples, seqlen) int64, needed by data-aware methods.

    `shared`: a dict kept across several prunes of the same dense model on the same windows
    (`secateur compare`); what depends only on those (OWL's outlier ratios) is computed once.
    `tier_state`: for --pattern tiered, the tier maps to start from (a progressive step) and to update.
    """
    method = build_method(config.method, config)
    pattern = config.pattern_object()
    sparsity = pattern.resolve_sparsity(config.sparsity)
    skipped = resolve_skip_layers(config.skip_layers, adapter.num_layers())
    targeted = frozenset(range(adapter.num_layers())) - skipped
    owl = OwlSettings.parse(config.owl) if config.owl else None
    device = resolve_device(config.device)
    if (method.needs_activations or owl) and windows is None:
        raise SecateurError(
            f"method {config.method!r}{' with --owl' if owl else ''} needs calibration windows"
        )

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    layer_sparsity = dict.fromkeys(targeted, sparsity)
    if owl is not None:
        layer_sparsity = _owl_targets(
            adapter,
            config,
            windows,
            owl,
            sparsity,
            targeted,
            device,
            show_progress,
            {} if shared is None else shared,
        )
        timings["owl_s"] = time.perf_counter() - start
    inputs = None
    if method.needs_activations:
        captured = time.perf_counter()
        inputs = _capture(adapter, windows, config, device)
        timings["capture_s"] = time.perf_counter() - captured
    if isinstance(pattern, Tiered):
        tier_state = tier_state if tier_state is not None else TierState()
        names = {i: adapter.linear_names(i) for i in targeted}
        visitor = TierPruner(method, pattern, targeted, names, tier_state, config.expert_min_tokens)
    else:
        visitor = MaskPruner(method, pattern, layer_sparsity, config.expert_min_tokens)
    run_layers(
        adapter,
        visitor,
        inputs=inputs,
        device=device,
        show_progress=show_progress,
        desc="pruning",
        propagate_last=False,
        changes=True,
    )
    timings["prune_s"] = time.perf_counter() - start
    if isinstance(visitor, TierPruner):
        timings["retier_s"] = visitor.retier_seconds

    memory = {"activations_bytes": float(inputs.nbytes) if inputs is not None else 0.0}
    if device.type == "cuda":
        memory["cuda_peak_bytes"] = float(torch.cuda.max_memory_allocated(device))
    del inputs
    report = measure_sparsity(adapter, pattern, layer_sparsity, expected=visitor.pruned)
    if verify:
        verify_sparsity(report, pattern)
    return PruneReport(
        method=config.method,
        pattern=pattern.spec,
        target_sparsity=sparsity,
        skipped_layers=sorted(skipped),
        sparsity=report,
        layer_sparsity=layer_sparsity,
        timings=timings,
        memory=memory,
        tier_maps=tier_state.maps if isinstance(visitor, TierPruner) else None,
        expert_fallbacks=visitor.fallbacks,
    )

"""Mask pruning: score every weight, let the pattern choose which survive, zero the rest.

This is the visitor the layer pipeline runs for magnitude and Wanda. Wanda collects the input
statistics of all seven Linears of a layer in one pass over the dense layer (as the paper's code
does), prunes them all, then the pipeline recomputes the layer's outputs with the pruned weights.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from secateur.calibration.capture import capture_layer_inputs
from secateur.calibration.pipeline import LayerContext, run_layers
from secateur.calibration.stats import InputNormCollector
from secateur.config import PruneConfig
from secateur.devices import resolve_device
from secateur.errors import SecateurError
from secateur.evaluation.sparsity import SparsityReport, measure_sparsity, verify_sparsity
from secateur.models.adapter import ModelAdapter
from secateur.patterns.base import Pattern
from secateur.patterns.parse import parse_pattern
from secateur.pruning.layers import resolve_skip_layers
from secateur.registry import REGISTRY
from secateur.scoring.base import Scorer


@dataclass
class PruneReport:
    """What a prune did: the recipe's key facts, measured sparsity, and where the time went."""

    method: str
    pattern: str
    target_sparsity: float
    skipped_layers: list[int]
    sparsity: SparsityReport
    timings: dict[str, float] = field(default_factory=dict)
    memory: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "pattern": self.pattern,
            "target_sparsity": self.target_sparsity,
            "skipped_layers": self.skipped_layers,
            "sparsity": self.sparsity.to_dict(),
            "timings": self.timings,
            "memory": self.memory,
        }


@dataclass
class MaskPruner:
    """Layer visitor: score, mask and zero the targeted Linears of each non-skipped layer."""

    scorer: Scorer
    pattern: Pattern
    sparsity: float
    skipped: frozenset[int]

    @torch.no_grad()
    def __call__(self, ctx: LayerContext) -> None:
        if ctx.index in self.skipped or self.sparsity == 0.0:
            return
        for role, linear in ctx.linears.items():
            self.pattern.check_shape(tuple(linear.weight.shape), f"{ctx.name} {role}_proj")
        stats = {}
        if self.scorer.needs_activations:
            collector = InputNormCollector(ctx.linears)
            last = list(ctx.linears.values())[-1]
            with collector.attached() as stats:
                ctx.observe(stop_after=last)
        for role, linear in ctx.linears.items():
            scores = self.scorer.score(linear.weight, stats.get(role))
            keep = self.pattern.mask(scores, self.sparsity)
            linear.weight.masked_fill_(~keep, 0)


def prune_with_masks(
    adapter: ModelAdapter,
    config: PruneConfig,
    windows: torch.Tensor | None,
    *,
    show_progress: bool = True,
    verify: bool = True,
) -> PruneReport:
    """Prune `adapter.model` in place. windows: (nsamples, seqlen) int64, needed by wanda."""
    scorer: Scorer = REGISTRY.get("method", config.method)()
    pattern = parse_pattern(config.pattern)
    sparsity = pattern.resolve_sparsity(config.sparsity)
    skipped = resolve_skip_layers(config.skip_layers, adapter.num_layers())
    device = resolve_device(config.device)
    if scorer.needs_activations and windows is None:
        raise SecateurError(f"method {config.method!r} needs calibration windows")

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    inputs = None
    if scorer.needs_activations:
        storage = torch.device("cpu") if config.offload_activations else device
        inputs = capture_layer_inputs(
            adapter, windows, batch_size=config.batch_size, compute_device=device, storage_device=storage
        )
        timings["capture_s"] = time.perf_counter() - start
    visitor = MaskPruner(scorer, pattern, sparsity, skipped)
    run_layers(
        adapter,
        visitor,
        inputs=inputs,
        device=device,
        show_progress=show_progress,
        desc="pruning",
        propagate_last=False,
    )
    timings["prune_s"] = time.perf_counter() - start

    memory = {"activations_bytes": float(inputs.nbytes) if inputs is not None else 0.0}
    if device.type == "cuda":
        memory["cuda_peak_bytes"] = float(torch.cuda.max_memory_allocated(device))
    del inputs
    report = measure_sparsity(adapter, pattern, sparsity, skipped)
    if verify:
        verify_sparsity(report, pattern)
    return PruneReport(
        method=config.method,
        pattern=pattern.spec,
        target_sparsity=sparsity,
        skipped_layers=sorted(skipped),
        sparsity=report,
        timings=timings,
        memory=memory,
    )

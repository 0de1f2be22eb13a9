"""`secateur prune --method experts`: remove whole routed experts of a mixture-of-experts model.

Every MoE layer keeps the same number of experts (so the config's expert count describes every
layer and the output loads with plain `from_pretrained`), chosen per layer by REAP saliency or
routing frequency (see structured.experts). The router's rows are sliced with the experts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import torch

from secateur.calibration.capture import capture_layer_inputs
from secateur.calibration.pipeline import LayerContext, run_layers
from secateur.errors import SecateurError
from secateur.evaluation.summary import format_table, percent
from secateur.methods.base import PruneStep, StepResult
from secateur.methods.outcome import ShrinkReport, outcome_rows
from secateur.models.experts import keep_experts
from secateur.models.geometry import count_parameters
from secateur.registry import register
from secateur.structured.experts import ExpertTally, experts_to_keep, kept_count


def _targets(adapter, config) -> tuple[int, int]:
    """(experts per layer now, experts kept), checked before any work."""
    if not adapter.has_experts:  # also a dense family (no layout)
        raise SecateurError(
            f"--method experts needs a mixture-of-experts model; {adapter.spec.model_type} has no "
            "routed experts (use a mask method, --method structured or --method depth)"
        )
    layout = adapter.spec.experts
    total = getattr(adapter.config, layout.count_key)
    keep = kept_count(total, config.experts_pruning_ratio, config.num_experts)
    top_k = getattr(adapter.config, layout.top_k_key)
    if keep >= total:
        raise SecateurError(
            f"that keeps all {total} experts of every layer: ask for fewer "
            f"(--num-experts below {total}, or a larger --experts-pruning-ratio)"
        )
    if keep < top_k:
        raise SecateurError(
            f"keeping {keep} experts leaves fewer than the {top_k} each token is routed to "
            f"({layout.top_k_key}); keep at least {top_k}"
        )
    groups = _routing_groups(adapter)
    if groups > 1:
        chosen = getattr(adapter.config, layout.top_k_groups_key)
        # Its router scores a group by its two best experts and picks top_k among chosen groups.
        if keep % groups or keep // groups < 2 or top_k > chosen * (keep // groups):
            raise SecateurError(
                f"this model routes within {groups} groups of experts ({layout.groups_key}), "
                f"{chosen} per token: keep a multiple of {groups} experts, at least 2 per group and "
                f"at least {-(-top_k // chosen)} per group for its {top_k} experts per token"
            )
    return total, keep


def _routing_groups(adapter) -> int:
    key = adapter.spec.experts.groups_key
    return int(getattr(adapter.config, key, None) or 1) if key else 1


def prune_experts(
    loaded, recipe, windows, device: torch.device, show_progress: bool, note: Callable[[str], None]
):
    adapter, config = loaded.adapter, recipe.experts
    layout = adapter.spec.experts
    total, keep = _targets(adapter, config)
    started = time.perf_counter()
    before = count_parameters(loaded.model)
    inputs = capture_layer_inputs(
        adapter, windows, batch_size=recipe.prune.batch_size, compute_device=device, storage_device=device
    )
    layers: list[dict] = []

    def visit(ctx: LayerContext) -> None:
        if adapter.experts_of(ctx.layer) is None:
            return  # a dense layer (Qwen-MoE's mlp_only_layers)
        tally = ExpertTally(total)
        with adapter.visiting(ctx.layer, observer=tally.observe):
            ctx.observe()
        scores = tally.scores(config.expert_score)
        kept = experts_to_keep(scores, keep, _routing_groups(adapter))
        keep_experts(ctx.layer, layout, kept)
        with adapter.visiting(ctx.layer):  # the sliced experts compute the next layer's inputs
            ctx.propagate()
        layers.append(
            {
                "layer": ctx.index,
                "kept": kept,
                "removed": [e for e in range(total) if e not in kept],
                "tokens": tally.tokens.tolist(),
                "scores": scores.tolist(),
            }
        )

    run_layers(
        adapter,
        visit,
        inputs=inputs,
        device=device,
        show_progress=show_progress,
        desc="experts",
        changes=True,
    )
    adapter.update_config(**{layout.count_key: keep})
    data = {
        "method": "experts",
        "score": config.expert_score,
        "experts_before": total,
        "experts_after": keep,
        "params_before": before,
        "params_after": count_parameters(loaded.model),
        "seconds": time.perf_counter() - started,
        "layers": layers,
    }
    note(f"experts: {total} -> {keep} per layer in {len(layers)} MoE layers ({config.expert_score})")

    def write(folder: Path) -> None:
        (folder / "experts_analysis.json").write_text(json.dumps(data, indent=1) + "\n")

    return StepResult(ShrinkReport(data), write)


def check(recipe) -> None:
    config = recipe.experts
    if (config.experts_pruning_ratio is None) == (config.num_experts is None):
        raise SecateurError(
            "--method experts needs exactly one of --experts-pruning-ratio R or --num-experts N (kept)"
        )


def summary(run) -> str:
    """Per layer: which experts went, their calibration tokens and scores; the parameter change."""
    data = run.report.data
    rows = []
    for layer in data["layers"]:
        removed = layer["removed"]
        kept_scores = [layer["scores"][e] for e in layer["kept"]]
        rows.append(
            [
                layer["layer"],
                ",".join(map(str, removed)),
                ",".join(str(layer["tokens"][e]) for e in removed),
                f"{max(layer['scores'][e] for e in removed):.4g}",
                f"{min(kept_scores):.4g}",
            ]
        )
    headers = ["layer", "experts removed", "their tokens", "best removed score", "worst kept score"]
    table = [
        ["experts per MoE layer", f"{data['experts_before']} -> {data['experts_after']}"],
        [
            "parameters",
            f"{data['params_before']:,} -> {data['params_after']:,} "
            f"({percent(1 - data['params_after'] / data['params_before'])} removed)",
        ],
        ["prune time", f"{data['seconds']:.1f}s"],
    ]
    table += outcome_rows(run)
    title = f"secateur prune: {run.recipe.model} | experts | {data['score']}"
    return "\n".join([title, "", format_table(headers, rows), "", format_table(["summary", "value"], table)])


EXPERTS = register("step", "experts")(
    PruneStep(
        name="experts",
        reads=frozenset({"experts.*"}),
        needs_activations=lambda recipe: True,
        run=prune_experts,
        summary=summary,
        sized_by="--experts-pruning-ratio or --num-experts",
        check=check,
        cannot_stream=lambda recipe: "--method experts needs the whole model in RAM for now",
    )
)

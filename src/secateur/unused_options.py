"""Which options of a recipe a run reads; every other one must keep its default.

A flag the chosen method does not read would otherwise be accepted and silently ignored
(`--sparsity 0.5 --method depth`), and the user believes it took effect. So a recipe names, per
method, the sections and fields that method reads, and any other field whose value differs from
its default is refused with one line before any model is loaded. A flag given at its default value
cannot be told apart from an absent one, and is harmless.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from secateur.errors import SecateurError

WIDTH_METHODS = ("structured", "depth", "osscar")
# What each method is sized with, for the hint of the refusal.
_SIZE_FLAG = {
    "structured": "--pruning-ratio",
    "depth": "--num-layers or --layers",
    "osscar": "--mlp-pruning-ratio",
}
# PruneConfig fields every method reads.
_COMMON = {"method", "device", "batch_size"}
_MASK_ONLY = {"sparsity", "pattern", "skip_layers", "offload_activations", "owl", "tiers", "topk", "tier_nm"}
_SPARSEGPT_ONLY = {"blocksize", "percdamp"}


def primary_flag(f: dataclasses.Field) -> str:
    """The CLI spelling of a config field (its metadata `flag`, else --field-name)."""
    return f.metadata.get("flag") or f"--{f.name.replace('_', '-')}"


def changed_fields(config: Any) -> list[dataclasses.Field]:
    """Fields of a config dataclass whose value differs from the default (nested sections skipped)."""
    return [
        f
        for f in dataclasses.fields(config)
        if f.default is not dataclasses.MISSING and getattr(config, f.name) != f.default
    ]


def _refuse(fields: list[dataclasses.Field], method: str, why: str = "") -> None:
    if not fields:
        return
    flags = ", ".join(primary_flag(f) for f in fields)
    verb = "is" if len(fields) == 1 else "are"
    hint = f" ({method} is sized by {_SIZE_FLAG[method]})" if method in _SIZE_FLAG and not why else ""
    pronoun = "it" if len(fields) == 1 else "them"
    reason = why or f"--method {method} does not read {pronoun}"
    raise SecateurError(f"{flags} {verb} not used here: {reason}{hint}; drop {flags}")


def check_prune_fields(prune: Any) -> None:
    """Inside PruneConfig: options of one mask method or pattern given to another."""
    method = prune.method
    changed = {f.name: f for f in changed_fields(prune)}
    if method in WIDTH_METHODS:
        _refuse([changed[n] for n in changed if n not in _COMMON], method)
        return
    if method != "sparsegpt":
        solver = [changed[n] for n in sorted(_SPARSEGPT_ONLY) if n in changed]
        _refuse(solver, method, "only sparsegpt has a solver to set")
    from secateur.patterns.tiered import Tiered

    if not isinstance(prune.pattern_object(), Tiered):
        tiered_only = [changed[n] for n in ("topk", "tier_nm") if n in changed]
        _refuse(tiered_only, method, f"--pattern {prune.pattern} has no tiers")


def check_recipe_sections(recipe: Any) -> None:
    """Across sections: e.g. depth options with a mask method, OSSCAR options with structured."""
    method = recipe.prune.method
    sections = {"structured": recipe.structured, "depth": recipe.depth, "osscar": recipe.osscar}
    for name, section in sections.items():
        changed = changed_fields(section)
        if method == "osscar" and name == "structured":
            changed = [f for f in changed if f.name != "round_to"]  # OSSCAR rounds its kept width too
        if name != method:
            _refuse(changed, method)
    if method == "structured":
        _check_structured(recipe.structured)
    if method == "depth" and recipe.depth.layers is not None:
        scoring = [f for f in changed_fields(recipe.depth) if f.name == "score"]
        _refuse(scoring, method, "--layers removes the layers given, nothing is scored")
    _check_no_eval(recipe.evaluation, method)


def _check_no_eval(evaluation: Any, method: str) -> None:
    if not evaluation.enabled:
        extra = [f for f in changed_fields(evaluation) if f.name != "enabled"]
        _refuse(extra, method, "--no-eval measures nothing")


def check_training_fields(recipe: Any, command: str) -> None:
    """finetune/recover: with --no-eval there is no validation loss either."""
    _check_no_eval(recipe.evaluation, command)
    if not recipe.evaluation.enabled:
        unused = [f for f in changed_fields(recipe.finetune) if f.name in ("val_set_size", "eval_steps")]
        _refuse(unused, command, "--no-eval measures no validation loss")


def _check_structured(config: Any) -> None:
    changed = {f.name: f for f in changed_fields(config)}
    if config.plan is not None:
        planning = [f for n, f in changed.items() if n != "plan"]
        _refuse(planning, "structured", "--plan applies a saved plan, nothing is planned")
        return
    unused = []
    if not config.uniform and "round_to" in changed:
        unused.append(changed["round_to"])  # the global plan removes single channels
    if not config.importance.startswith("taylor"):
        unused += [changed[n] for n in ("gradient_batch_size", "gradient_checkpointing") if n in changed]
    if config.temperature == 0:
        unused += [changed[n] for n in ("tau", "epsilon") if n in changed]
    if unused:
        why = (
            "each applies only with --uniform (round-to), taylor importances (gradient-*), "
            "or --temperature > 0 (tau, epsilon)"
        )
        _refuse(unused, "structured", why)

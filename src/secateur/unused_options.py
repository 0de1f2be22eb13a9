"""Which options of a recipe a run reads; every other one must keep its default.

A flag the chosen method does not read would otherwise be accepted and silently ignored
(`--sparsity 0.5 --method depth`), and the user believes it took effect. Each method's step (see
`secateur.methods.base.PruneStep`) says which recipe fields it reads; any other field whose value
differs from its default is refused with one line before any model is loaded. A flag given at its
default value cannot be told apart from an absent one, and is harmless.

This module is a leaf: it finds the steps through the registry by name, so the config that calls it
does not import the methods.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from secateur.errors import SecateurError
from secateur.registry import REGISTRY

# The sections of a PruneRecipe beside `prune` that belong to one method each; the others
# (calibration, evaluation) serve every run.
METHOD_SECTIONS = ("structured", "depth", "osscar", "experts")


def step_for(method: str):
    """The PruneStep of `--method`: a registered step, or the mask step for a registered mask method."""
    step = REGISTRY.find("step", method)
    if step is not None:
        return step
    if REGISTRY.find("method", method) is not None:
        return REGISTRY.get("step", "masks")
    known = sorted({*REGISTRY.names("method"), *(n for n in REGISTRY.names("step") if n != "masks")})
    raise SecateurError(f"unknown method {method!r} (--method); choose one of: {', '.join(known)}")


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


def refuse(fields: list[dataclasses.Field], method: str, why: str = "") -> None:
    """One line naming every field given in vain, why, and what to do; nothing when `fields` is empty."""
    if not fields:
        return
    flags = ", ".join(primary_flag(f) for f in fields)
    verb = "is" if len(fields) == 1 else "are"
    pronoun = "it" if len(fields) == 1 else "them"
    reason = why or f"--method {method} does not read {pronoun}"
    step = REGISTRY.find("step", method)
    hint = (
        f" ({method} is sized by {step.sized_by})" if step is not None and step.sized_by and not why else ""
    )
    raise SecateurError(f"{flags} {verb} not used here: {reason}{hint}; drop {flags}")


def _unread(config: Any, section: str, step) -> list[dataclasses.Field]:
    return [f for f in changed_fields(config) if not step.reads_field(section, f.name)]


def check_prune_fields(prune: Any) -> None:
    """Inside PruneConfig: options the method does not read, and its own rules between them."""
    step = step_for(prune.method)
    refuse(_unread(prune, "prune", step), prune.method)
    step.check_prune(prune)


def check_recipe_sections(recipe: Any) -> None:
    """Across the sections of a PruneRecipe: e.g. depth options with a mask method."""
    method = recipe.prune.method
    step = step_for(method)
    for section in METHOD_SECTIONS:
        refuse(_unread(getattr(recipe, section), section, step), method)
    step.check(recipe)
    _check_no_eval(recipe.evaluation, method)


def _check_no_eval(evaluation: Any, method: str) -> None:
    if not evaluation.enabled:
        extra = [f for f in changed_fields(evaluation) if f.name != "enabled"]
        refuse(extra, method, "--no-eval measures nothing")


def check_training_fields(recipe: Any, command: str) -> None:
    """finetune/recover: with --no-eval there is no validation loss either."""
    _check_no_eval(recipe.evaluation, command)
    if not recipe.evaluation.enabled:
        unused = [f for f in changed_fields(recipe.finetune) if f.name in ("val_set_size", "eval_steps")]
        refuse(unused, command, "--no-eval measures no validation loss")

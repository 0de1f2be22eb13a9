"""Recipe strings for `secateur compare`: METHOD:PATTERN[:SPARSITY][:key=value...] for mask methods,
and for the methods that change shapes METHOD[:VALUE...][:key=value...] with the method's own settings:

    wanda:unstructured:0.5    wanda:block16:0.5    sparsegpt:2:4    wanda:unstructured:0.7:owl=5,0.08
    structured:taylor:0.2:temperature=0:reconstruct=true    depth:3:score=bi    osscar:0.25:round_to=128

A YAML/JSON file instead holds a list of mappings with PruneConfig fields (plus an optional
`name`). Every recipe is checked before any work starts.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from secateur.config import (
    STRUCTURED_IMPORTANCES,
    DepthConfig,
    OsscarConfig,
    PruneConfig,
    StructuredConfig,
    from_dict,
)
from secateur.errors import SecateurError
from secateur.patterns.parse import parse_pattern
from secateur.registry import REGISTRY

_PRUNE_FIELDS = {f.name for f in dataclasses.fields(PruneConfig)}


@dataclass(frozen=True)
class Recipe:
    name: str
    config: PruneConfig
    # A shape-changing method's settings by recipe section ("structured", "depth", "osscar"):
    # OSSCAR's kept width rounds to structured.round_to, so an osscar recipe may carry both.
    sections: tuple[tuple[str, object], ...] = ()

    @property
    def changes_shapes(self) -> bool:
        return bool(self.sections)


# The shape-changing methods compare runs: the recipe section each reads, and what a bare
# positional value means (a float ratio, an int count, or the structured importance by name).
SECTIONS = {
    "structured": (StructuredConfig, "pruning_ratio"),
    "depth": (DepthConfig, "num_layers"),
    "osscar": (OsscarConfig, "mlp_pruning_ratio"),
}


def _section_recipe(method: str, tokens: list[str], text: str, defaults: dict | None) -> Recipe:
    cls, positional = SECTIONS[method]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    borrowed = {"round_to"} if method == "osscar" else set()  # read from the structured section
    values: dict = {}
    extra: dict = {}
    for token in tokens:
        if "=" in token:
            key, _, value = token.partition("=")
            key = key.strip().replace("-", "_")
            if key in borrowed:
                extra[key] = _typed(StructuredConfig, key, value.strip(), text)
                continue
            if key not in fields:
                known = ", ".join(sorted(set(fields) | borrowed))
                raise SecateurError(f"recipe {text!r}: {method} has no setting {key!r}; known: {known}")
            values[key] = _typed(cls, key, value.strip(), text)
        elif method == "structured" and token in STRUCTURED_IMPORTANCES:
            values["importance"] = token
        elif token:
            values[positional] = _typed(cls, positional, token, text)
    sections = [(method, from_dict(cls, values))]
    if extra:
        sections.append(("structured", from_dict(StructuredConfig, extra)))
    # Of the settings shared by every recipe, these two apply to any method.
    shared = {k: v for k, v in (defaults or {}).items() if k in ("device", "batch_size")}
    return Recipe(text, PruneConfig(method=method, **shared), tuple(sections))


def _optional_number(cls, key: str):
    """int or float for a field annotated `int | None` / `float | None` (num_layers, tau, temperature)."""
    annotation = str(cls.__dataclass_fields__[key].type).replace(" ", "")
    return {"int|None": int, "float|None": float}.get(annotation)


def _typed(cls, key: str, value: str, text: str):
    """A recipe string's value as the field's type (bool, int, float; None for 'none')."""
    default = cls.__dataclass_fields__[key].default
    if value.lower() == "none":
        return None
    if isinstance(default, bool):
        if value.lower() not in ("true", "false", "1", "0"):
            raise SecateurError(f"recipe {text!r}: {key} takes true or false, got {value!r}")
        return value.lower() in ("true", "1")
    kind = type(default) if isinstance(default, (int, float)) else _optional_number(cls, key)
    if kind is None:
        return value
    try:
        return kind(value) if kind is not float else float(value)
    except ValueError:
        raise SecateurError(f"recipe {text!r}: {key}={value!r} is not a {kind.__name__}") from None


def _split_pattern(tokens: list[str], text: str) -> tuple[str, list[str]]:
    """The pattern may span two tokens (2:4, block:16): take the longest that parses."""
    for width in (2, 1):
        candidate = ":".join(tokens[:width])
        if len(tokens) < width:
            continue
        try:
            parse_pattern(candidate)
        except SecateurError:
            continue
        return candidate, tokens[width:]
    raise SecateurError(
        f"recipe {text!r}: no pattern after the method; write e.g. wanda:unstructured:0.5 or sparsegpt:2:4"
    )


def parse_recipe(text: str, defaults: dict | None = None) -> Recipe:
    """'wanda:block16:0.5' -> Recipe; `defaults` fill PruneConfig fields the string leaves out."""
    tokens = [t.strip() for t in str(text).split(":")]
    if tokens and tokens[0].lower() in SECTIONS:
        return _section_recipe(tokens[0].lower(), tokens[1:], str(text), defaults)
    if len(tokens) < 2 or not tokens[0]:
        raise SecateurError(f"recipe {text!r} does not parse: use METHOD:PATTERN[:SPARSITY], e.g. wanda:2:4")
    method = tokens[0].lower()
    if method == "experts":
        raise SecateurError(f"recipe {text!r}: compare runs mask, structured, depth and osscar recipes")
    if REGISTRY.find("method", method) is None:
        raise SecateurError(
            f"recipe {text!r}: unknown method {method!r}; "
            f"choose one of: {', '.join(REGISTRY.names('method'))}"
        )
    pattern, rest = _split_pattern(tokens[1:], text)
    values = {**(defaults or {}), "method": method, "pattern": pattern}
    for token in rest:
        if "=" in token:
            key, _, value = token.partition("=")
            key = key.strip().replace("-", "_")
            if key not in _PRUNE_FIELDS:
                raise SecateurError(
                    f"recipe {text!r}: unknown setting {key!r}; known: {', '.join(sorted(_PRUNE_FIELDS))}"
                )
            values[key] = value.strip()
            continue
        try:
            values["sparsity"] = float(token)
        except ValueError:
            raise SecateurError(f"recipe {text!r}: {token!r} is neither a sparsity nor key=value") from None
    # Text from the string becomes the field's type (booleans included: 'false' is False).
    values = {k: _typed(PruneConfig, k, v, str(text)) if isinstance(v, str) else v for k, v in values.items()}
    return Recipe(str(text), from_dict(PruneConfig, values))


def load_recipe_file(path: Path, defaults: dict | None = None) -> list[Recipe]:
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    if isinstance(data, dict):
        data = data.get("recipes", data)
    if not isinstance(data, list) or not data:
        raise SecateurError(f"{path} must hold a list of recipes (strings or mappings of prune settings)")
    recipes = []
    for item in data:
        if isinstance(item, str):
            recipes.append(parse_recipe(item, defaults))
            continue
        if not isinstance(item, dict):
            raise SecateurError(f"{path}: each recipe is a string or a mapping, got {item!r}")
        item = dict(item)
        name = str(item.pop("name", "")) or None
        config = from_dict(PruneConfig, {**(defaults or {}), **item})
        sparsity = "" if config.sparsity is None else f":{config.sparsity:g}"
        recipes.append(Recipe(name or f"{config.method}:{config.pattern}{sparsity}", config))
    return recipes


def expand_sparsities(recipes: list[Recipe], sparsities: list[float]) -> list[Recipe]:
    """Recipes that left the sparsity open run once per value; N:M ones keep their fixed one."""
    if not sparsities:
        return recipes
    out = []
    for recipe in recipes:
        if recipe.config.sparsity is not None or _is_nm(recipe.config):
            out.append(recipe)
            continue
        for s in sparsities:
            config = dataclasses.replace(recipe.config, sparsity=s)
            out.append(Recipe(f"{recipe.name}:{s:g}", config))
    return out


def _is_nm(config: PruneConfig) -> bool:
    from secateur.patterns.nm import NM

    return isinstance(config.pattern_object(), NM)

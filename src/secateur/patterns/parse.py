"""Turn a pattern string from the CLI or a recipe into a Pattern."""

from __future__ import annotations

import re

from secateur.errors import SecateurError
from secateur.patterns.base import Pattern
from secateur.registry import REGISTRY

_NM = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")
_GLUED = re.compile(r"^\s*([a-z]+)(\d+)\s*$", re.IGNORECASE)  # block16 = block:16


def parse_pattern(text: str) -> Pattern:
    """'unstructured' | 'N:M' (e.g. '2:4') | 'name:arg' for patterns that take an argument."""
    if isinstance(text, Pattern):
        return text
    match = _NM.match(str(text))
    if match:
        return REGISTRY.get("pattern", "n:m")(int(match[1]), int(match[2]))
    glued = _GLUED.match(str(text))
    name, colon, arg = (f"{glued[1]}:{glued[2]}" if glued else str(text).strip()).partition(":")
    factory = REGISTRY.find("pattern", name.lower())
    if factory is None or name.lower() == "n:m":
        raise SecateurError(
            f"malformed pattern {text!r}: use 'unstructured', N:M with whole numbers (2:4, 4:8), or block:B"
        )
    return factory.from_arg(arg if colon else None)  # bare `block` is the default size, `block:` an error

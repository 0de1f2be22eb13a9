"""Which decoder layers a run touches."""

from __future__ import annotations

from secateur.errors import SecateurError


def resolve_skip_layers(skip: tuple[int, ...], num_layers: int) -> frozenset[int]:
    """Normalise indices (negatives count from the end); out-of-range indices are errors."""
    resolved = set()
    for index in skip:
        real = index + num_layers if index < 0 else index
        if not 0 <= real < num_layers:
            raise SecateurError(
                f"--skip-layers {index} is out of range for a model with {num_layers} layers "
                f"(use 0..{num_layers - 1} or -1..-{num_layers})"
            )
        resolved.add(real)
    return frozenset(resolved)

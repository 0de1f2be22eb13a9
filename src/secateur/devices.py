"""Choosing the compute device and moving nested structures of tensors to it."""

from __future__ import annotations

from typing import Any

import torch

from secateur.errors import SecateurError


def resolve_device(spec: str | torch.device | None) -> torch.device:
    """None -> cuda when present, else cpu. An unavailable device is a one-line error."""
    if spec is None or spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, TypeError):
        raise SecateurError(f"--device {spec!r} is not a device; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SecateurError(f"--device {spec} asked for, but CUDA is not available here: use --device cpu")
    return device


def to_device(value: Any, device: torch.device) -> Any:
    """Move tensors found in (nested) tuples, lists and dicts; leave everything else as it is."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, tuple):
        return tuple(to_device(v, device) for v in value)
    if isinstance(value, list):
        return [to_device(v, device) for v in value]
    if isinstance(value, dict):
        return {k: to_device(v, device) for k, v in value.items()}
    return value


def module_device(module: torch.nn.Module) -> torch.device:
    for parameter in module.parameters():
        return parameter.device
    return torch.device("cpu")


def free_memory() -> int | None:
    """Bytes of RAM available to a new allocation now (Linux's MemAvailable); None if unknown."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None

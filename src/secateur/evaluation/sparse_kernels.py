"""2:4 semi-structured sparse kernels (PyTorch's `to_sparse_semi_structured`, CUTLASS/cuSPARSELt).

Only a Linear whose weight is exactly 2:4 along its input dimension (at most two nonzeros in every
aligned group of four) is converted; anything else would be silently changed by the compression.
The kernels need CUDA with compute capability 8.0+ and fp16/bf16 weights; `unavailable_reason` says
which of these is missing so the bench can report it instead of failing.
"""

from __future__ import annotations

import torch
from torch import nn


def is_two_four(weight: torch.Tensor) -> bool:
    if isinstance(weight, torch.sparse.SparseSemiStructuredTensor):
        return True  # already compressed: 2:4 by construction (and it cannot be reshaped to check)
    if weight.dim() != 2 or weight.shape[1] % 4:
        return False
    groups = weight.reshape(weight.shape[0], -1, 4)
    return bool(((groups != 0).sum(-1) <= 2).all())


def two_four_linears(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    return [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear)
        and module.weight.shape[0] >= 32
        and is_two_four(module.weight)
        and name.rsplit(".", 1)[-1] != "lm_head"
    ]


def unavailable_reason(device: torch.device, dtype: torch.dtype) -> str | None:
    if device.type != "cuda":
        return f"2:4 kernels need CUDA; this run is on {device.type}"
    major, minor = torch.cuda.get_device_capability(device)
    if major < 8:
        return f"2:4 kernels need compute capability 8.0+, this GPU has {major}.{minor}"
    if dtype not in (torch.float16, torch.bfloat16):
        return f"2:4 kernels need fp16 or bf16 weights, the model is {str(dtype).replace('torch.', '')}"
    return None


@torch.no_grad()
def to_semi_structured(model: nn.Module) -> int:
    """Swap every exactly-2:4 Linear weight for its compressed form; returns how many were swapped."""
    from torch.sparse import to_sparse_semi_structured

    swapped = 0
    for _, linear in two_four_linears(model):
        linear.weight = nn.Parameter(to_sparse_semi_structured(linear.weight), requires_grad=False)
        swapped += 1
    return swapped

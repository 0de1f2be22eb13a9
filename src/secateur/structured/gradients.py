"""Gradients of the causal-LM loss for Taylor importance (Molchanov et al., 2019; LLM-Pruner, 2023).

The whole model runs forward and backward over the calibration windows, `batch_size` windows at a
time; only the decoder Linears' weights and biases require gradients (so the embedding and LM head
hold none). Per batch, the mean gradient is accumulated, and for second order also the squared
gradient (the Fisher diagonal, an approximation of the Hessian's diagonal). Both are returned as
means over batches, in fp32.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from secateur.distributed import all_sum, all_sum_number, world_size
from secateur.errors import SecateurError
from secateur.models.adapter import ModelAdapter
from secateur.progress import progress


@dataclass
class GradientStats:
    mean: torch.Tensor  # E_batches[∂L/∂W], fp32, the parameter's shape
    mean_sq: torch.Tensor | None  # E_batches[(∂L/∂W)²] (second order only)


def _targets(adapter: ModelAdapter) -> dict[str, torch.nn.Parameter]:
    found = {}
    for index, layer in enumerate(adapter.decoder_layers()):
        names = adapter.linear_names(index)
        for role, linear in adapter.linears(layer).items():
            found[f"{names[role]}.weight"] = linear.weight
            if linear.bias is not None:
                found[f"{names[role]}.bias"] = linear.bias
    return found


def _checkpointing(model, on: bool) -> None:
    """transformers 5 renamed gradient checkpointing to activation checkpointing; use what exists."""
    if hasattr(model, "activation_checkpointing_enable"):
        if on:
            model.activation_checkpointing_enable({"use_reentrant": False})
        else:
            model.activation_checkpointing_disable()
    elif on:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_disable()


def check_batches(local_windows: int, batch_size: int) -> None:
    """Under torchrun, each process must get whole single-process batches: the mean over batches of
    a batch's mean gradient (and its square) depends on which windows share a batch."""
    processes = world_size()
    if processes == 1:
        return
    total, unit = all_sum_number(local_windows), processes * batch_size
    if total % unit:
        raise SecateurError(
            f"--nsamples {total} with {processes} processes and --gradient-batch-size {batch_size}: "
            f"Taylor gradients need a multiple of {unit} windows "
            f"(e.g. --nsamples {unit * max(1, total // unit)})"
        )


def accumulate_gradients(
    adapter: ModelAdapter,
    windows: torch.Tensor,
    *,
    batch_size: int,
    second_order: bool,
    checkpointing: bool,
    show_progress: bool = True,
) -> dict[str, GradientStats]:
    """windows: (n, seqlen) int64. Returns parameter name -> GradientStats. The model is left as found."""
    check_batches(windows.shape[0], batch_size)
    model = adapter.model
    targets = _targets(adapter)
    wanted = {id(p) for p in targets.values()}
    previous = {name: p.requires_grad for name, p in model.named_parameters()}
    was_training = model.training
    sums = {name: torch.zeros_like(p, dtype=torch.float32) for name, p in targets.items()}
    squares = (
        {name: torch.zeros_like(p, dtype=torch.float32) for name, p in targets.items()}
        if second_order
        else {}
    )
    device = adapter.input_device()
    batches = 0
    try:
        for p in model.parameters():
            p.requires_grad_(id(p) in wanted)
        if checkpointing:
            _checkpointing(model, True)
            model.train()  # transformers checkpoints only in training mode; LLaMA has no dropout
        for start in progress(range(0, windows.shape[0], batch_size), "gradients", show_progress):
            ids = windows[start : start + batch_size].to(device)
            loss = model(input_ids=ids, labels=ids, use_cache=False).loss
            loss.backward()
            for name, p in targets.items():
                grad = p.grad.float()
                sums[name] += grad
                if second_order:
                    squares[name] += grad * grad
                p.grad = None
            batches += 1
    finally:
        if checkpointing:
            _checkpointing(model, False)
        model.train(was_training)
        for name, p in model.named_parameters():
            p.requires_grad_(previous[name])
            p.grad = None
    # A distributed run: every process's batches are batches of the single-process run
    # (check_batches), so their sums over the processes are the single-process sums.
    for total in [*sums.values(), *squares.values()]:
        all_sum(total)
    batches = all_sum_number(batches)
    return {
        name: GradientStats(sums[name] / batches, squares[name] / batches if second_order else None)
        for name in targets
    }

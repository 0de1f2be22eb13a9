"""The layer pipeline: one decoder layer at a time on the compute device.

The model stays where it was loaded. For each layer: move it to the compute device, let a visitor
observe and change it (collect statistics, prune), push the calibration activations through the
changed layer so its outputs become the next layer's inputs, and move it back. Memory beyond the
model: one layer, the activation buffer (nsamples x seqlen x hidden) and one batch's temporaries.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from secateur.calibration.capture import LayerInputs
from secateur.faults import pause_point
from secateur.models.adapter import ModelAdapter
from secateur.progress import progress


class _StopLayer(Exception):
    """Raised by a pre-hook to end a statistics pass once the last observed module has its input."""


def _first(output: Any) -> torch.Tensor:
    # transformers 5 decoder layers return a tensor, 4.x a tuple whose first item is the tensor.
    return output[0] if isinstance(output, (tuple, list)) else output


@dataclass
class LayerContext:
    """What a visitor sees of the layer being processed."""

    index: int
    name: str
    layer: nn.Module
    linears: dict[str, nn.Linear]
    inputs: LayerInputs | None
    device: torch.device
    propagated: bool = False  # a visitor that already pushed the inputs through sets this

    @torch.no_grad()
    def observe(self, stop_after: nn.Module | None = None) -> None:
        """Run every calibration batch through the layer for hooks to see; outputs are discarded.

        `stop_after`: once this module has received its input the batch ends, so work after it
        (the down projection, for input statistics) is skipped.
        """
        if self.inputs is None:
            raise RuntimeError("this pipeline runs without calibration data")
        handle = None
        if stop_after is not None:

            def stop(module: nn.Module, args: tuple) -> None:
                raise _StopLayer

            handle = stop_after.register_forward_pre_hook(stop)
        try:
            for batch in self.inputs.batches():
                args, kwargs = self.inputs.arguments(batch, self.index)
                with contextlib.suppress(_StopLayer):
                    self.layer(self.inputs.hidden[batch].to(self.device), *args, **kwargs)
        finally:
            if handle is not None:
                handle.remove()

    @torch.no_grad()
    def propagate(self) -> None:
        """Replace the stored inputs by this layer's outputs (with its current weights)."""
        assert self.inputs is not None
        hidden = self.inputs.hidden
        for batch in self.inputs.batches():
            args, kwargs = self.inputs.arguments(batch, self.index)
            out = _first(self.layer(hidden[batch].to(self.device), *args, **kwargs))
            hidden[batch] = out.to(hidden.device)
        self.propagated = True


Visitor = Callable[[LayerContext], None]


def run_layers(
    adapter: ModelAdapter,
    visit: Visitor,
    *,
    inputs: LayerInputs | None,
    device: torch.device,
    show_progress: bool = True,
    desc: str = "layers",
    propagate_last: bool = True,
    changes: bool,
) -> None:
    """Visit every decoder layer in order; with `inputs`, also propagate activations through it.

    `propagate_last=False` skips computing the last layer's outputs when nothing will read them.
    `changes`: whether the visitor changes weights. Every caller says so (no default): a streamed
    model's changed layers are written back and mark where a killed run resumes, while a pass that
    only reads (statistics, evaluation) must do neither.
    """
    layers = adapter.decoder_layers()
    stream = adapter.stream if changes else None
    start = stream.resume_from() if stream is not None else 0  # a killed streamed run resumes
    if start and inputs is not None and start < len(layers):
        inputs.hidden.copy_(stream.activations(inputs.hidden.device))
    for index in progress(range(start, len(layers)), desc, show_progress):
        with adapter.layer_on(index, device, write=changes) as layer, adapter.visiting(layer) as linears:
            context = LayerContext(
                index=index,
                name=adapter.layer_name(index),
                layer=layer,
                linears=linears,
                inputs=inputs,
                device=device,
            )
            visit(context)
            pause_point(f"{desc}-layer-{index}")  # fault tests kill the process here
            last = index == len(layers) - 1
            if inputs is not None and not context.propagated and (propagate_last or not last):
                context.propagate()
        if stream is not None:  # written: a resume starts after it
            stream.layer_done(index, inputs.hidden if inputs is not None and not last else None)

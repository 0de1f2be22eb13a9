"""Capture what the decoder layers receive, for every calibration window.

Rather than re-creating rotary embeddings and masks (whose signatures change between transformers
versions), the model's own forward runs until layer 0 is called, and a pre-hook records every
positional and keyword argument, then stops the forward. Only the embeddings run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from secateur.devices import to_device
from secateur.models.adapter import ModelAdapter


@dataclass
class LayerInputs:
    """Activations entering the current decoder layer, for every calibration window.

    hidden: (nsamples, seqlen, hidden_size) in the model's dtype, on `hidden.device` (the compute
    device, or CPU when activations are offloaded). The pipeline overwrites it in place with each
    layer's outputs, so only one such buffer ever exists.

    Windows are unpadded and of equal length, so the other arguments a layer receives (rotary
    cos/sin, causal mask, position ids) depend only on the batch size and on the layer's kind:
    families that mix sliding-window and global layers (Gemma 2/3) give each kind its own mask and
    rotary base. They are kept once per (kind, batch size), on the compute device.
    """

    hidden: torch.Tensor
    batch_size: int
    kinds: tuple[str, ...] = ()  # each decoder layer's kind (config.layer_types), by index
    extra_args: dict[tuple[str, int], tuple[Any, ...]] = field(default_factory=dict)
    kwargs: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)

    def batches(self) -> list[slice]:
        n = self.hidden.shape[0]
        return [slice(s, min(s + self.batch_size, n)) for s in range(0, n, self.batch_size)]

    def arguments(self, batch: slice, layer: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
        key = (self.kinds[layer], batch.stop - batch.start)
        return self.extra_args[key], self.kwargs[key]

    @property
    def nbytes(self) -> int:
        return self.hidden.numel() * self.hidden.element_size()


class _Captured(Exception):
    """Raised once every kind of layer has been seen: the rest of the forward is not needed."""


@torch.no_grad()
def capture_layer_inputs(
    adapter: ModelAdapter,
    windows: torch.Tensor,
    *,
    batch_size: int,
    compute_device: torch.device,
    storage_device: torch.device,
) -> LayerInputs:
    """windows: (nsamples, seqlen) int64 token ids.

    Every decoder layer's forward is replaced, for the capture, by a recorder that keeps the
    arguments the first layer of each kind receives and passes the hidden states through
    unchanged: the model's own forward builds every mask and rotary table, and no layer computes.
    """
    model = adapter.model
    layers = adapter.decoder_layers()
    kinds = adapter.layer_kinds()
    seen: dict[str, tuple[tuple, dict]] = {}

    def recorder(index: int):
        def record(*args, **kwargs):
            seen.setdefault(kinds[index], (args, dict(kwargs)))
            if len(seen) == len(set(kinds)):
                raise _Captured
            return args[0] if args else kwargs["hidden_states"]  # transformers 5: layers return a tensor

        return record

    inputs: LayerInputs | None = None
    # An instance-level forward (accelerate's offload hooks install one) is put back afterwards.
    previous = [layer.__dict__.get("forward") for layer in layers]
    for index, layer in enumerate(layers):
        layer.forward = recorder(index)
    try:
        for start in range(0, windows.shape[0], batch_size):
            ids = windows[start : start + batch_size].to(adapter.input_device())
            seen.clear()
            try:
                model(input_ids=ids, use_cache=False)
            except _Captured:
                pass
            else:  # pragma: no cover - would mean some kind of layer is never called
                raise RuntimeError("the model's forward did not reach every kind of decoder layer")
            args, kwargs = seen[kinds[0]]
            hidden = args[0] if args else kwargs["hidden_states"]
            if inputs is None:
                buffer = torch.empty(
                    (windows.shape[0], *hidden.shape[1:]), dtype=hidden.dtype, device=storage_device
                )
                inputs = LayerInputs(buffer, batch_size, kinds)
            inputs.hidden[start : start + ids.shape[0]] = hidden.to(storage_device)
            size = ids.shape[0]
            for kind, (args, kwargs) in seen.items():
                if (kind, size) not in inputs.kwargs:
                    kwargs = {k: v for k, v in kwargs.items() if k != "hidden_states"}
                    inputs.extra_args[(kind, size)] = to_device(tuple(args[1:]), compute_device)
                    inputs.kwargs[(kind, size)] = to_device(kwargs, compute_device)
    finally:
        for layer, forward in zip(layers, previous, strict=True):
            if forward is None:
                del layer.forward  # the class's forward again
            else:
                layer.forward = forward
    assert inputs is not None
    return inputs

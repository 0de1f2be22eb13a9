"""Capture what decoder layer 0 receives, for every calibration window.

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
    cos/sin, causal mask, position ids) depend only on the batch size: they are kept once per
    batch size, on the compute device.
    """

    hidden: torch.Tensor
    batch_size: int
    extra_args: dict[int, tuple[Any, ...]] = field(default_factory=dict)
    kwargs: dict[int, dict[str, Any]] = field(default_factory=dict)

    def batches(self) -> list[slice]:
        n = self.hidden.shape[0]
        return [slice(s, min(s + self.batch_size, n)) for s in range(0, n, self.batch_size)]

    def arguments(self, batch: slice) -> tuple[tuple[Any, ...], dict[str, Any]]:
        size = batch.stop - batch.start
        return self.extra_args[size], self.kwargs[size]

    @property
    def nbytes(self) -> int:
        return self.hidden.numel() * self.hidden.element_size()


class _Captured(Exception):
    def __init__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        super().__init__("layer 0 reached")
        self.args_ = args
        self.kwargs_ = kwargs


@torch.no_grad()
def capture_layer_inputs(
    adapter: ModelAdapter,
    windows: torch.Tensor,
    *,
    batch_size: int,
    compute_device: torch.device,
    storage_device: torch.device,
) -> LayerInputs:
    """windows: (nsamples, seqlen) int64 token ids."""
    model = adapter.model
    first_layer = adapter.decoder_layers()[0]

    def stop_at_layer0(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        raise _Captured(args, kwargs)

    inputs: LayerInputs | None = None
    handle = first_layer.register_forward_pre_hook(stop_at_layer0, with_kwargs=True)
    try:
        for start in range(0, windows.shape[0], batch_size):
            ids = windows[start : start + batch_size].to(adapter.input_device())
            try:
                model(input_ids=ids, use_cache=False)
            except _Captured as captured:
                args, kwargs = captured.args_, dict(captured.kwargs_)
            else:  # pragma: no cover - would mean layer 0 is never called
                raise RuntimeError("the model's forward never reached decoder layer 0")
            hidden = args[0] if args else kwargs.pop("hidden_states")
            if inputs is None:
                buffer = torch.empty(
                    (windows.shape[0], *hidden.shape[1:]), dtype=hidden.dtype, device=storage_device
                )
                inputs = LayerInputs(buffer, batch_size)
            inputs.hidden[start : start + ids.shape[0]] = hidden.to(storage_device)
            size = ids.shape[0]
            if size not in inputs.kwargs:
                inputs.extra_args[size] = to_device(tuple(args[1:]), compute_device)
                inputs.kwargs[size] = to_device(kwargs, compute_device)
    finally:
        handle.remove()
    assert inputs is not None
    return inputs

"""Depth pruning: remove N consecutive decoder layers (Men et al., 2024 "ShortGPT"; Gromov et al., 2024).

Scores for the window of layers [i, i+N):
  bi   1 - E_tokens[cos(h_i, h_{i+N})], the block influence of the whole window (cheap: one pass,
       keeping the last N+1 boundary states);
  ppl  the calibration perplexity of the model with the window removed. The boundary state h_i is
       carried forward once, and each candidate runs only the layers after its window, so all
       L-N+1 candidates cost about L²/2 layer passes instead of L-N+1 full forwards.
The removed model is a standard checkpoint: layers deleted from the ModuleList, config and per-layer
indices (the KV cache slot of each attention, `layer_types`) renumbered.
"""

from __future__ import annotations

import math
import re
from collections import deque

import torch
import torch.nn.functional as F

from secateur.calibration.capture import LayerInputs, capture_layer_inputs
from secateur.devices import module_device
from secateur.distributed import all_sum_number
from secateur.errors import SecateurError
from secateur.models.adapter import ModelAdapter
from secateur.progress import progress
from secateur.scoring.nll import nll_sum


def parse_layer_list(text: str, num_layers: int) -> list[int]:
    """'11-13' or '3,5,7' (negatives count from the end) -> sorted distinct indices, checked."""
    chosen: set[int] = set()
    for part in str(text).split(","):
        span = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", part)
        if span:
            chosen.update(range(int(span[1]), int(span[2]) + 1))
        elif re.fullmatch(r"\s*-?\d+\s*", part):
            chosen.add(int(part))
        else:
            raise SecateurError(f"--layers takes indices like 11-13 or 3,5,7, got {text!r}")
    chosen = {i + num_layers if i < 0 else i for i in chosen}
    bad = sorted(i for i in chosen if not 0 <= i < num_layers)
    if bad or not chosen:
        raise SecateurError(f"--layers {text}: the model has layers 0-{num_layers - 1}, got {bad or 'none'}")
    if len(chosen) >= num_layers:
        raise SecateurError(f"--layers {text} would remove all {num_layers} layers; keep at least one")
    return sorted(chosen)


def check_window(num_remove: int, num_layers: int) -> None:
    if not 1 <= num_remove < num_layers:
        raise SecateurError(
            f"--num-layers {num_remove}: the model has {num_layers} decoder layers; remove between 1 and "
            f"{num_layers - 1}"
        )


@torch.no_grad()
def _through(
    adapter: ModelAdapter, index: int, inputs: LayerInputs, hidden: torch.Tensor, device: torch.device
) -> torch.Tensor:
    """Push `hidden` (n, s, h) through layer `index`, batch by batch, with its captured arguments."""
    out = torch.empty_like(hidden)
    with adapter.layer_on(index, device) as layer:  # a streamed layer: read from disk meanwhile
        for batch in inputs.batches():
            args, kwargs = inputs.arguments(batch, index)
            result = layer(hidden[batch].to(device), *args, **kwargs)
            out[batch] = (result[0] if isinstance(result, (tuple, list)) else result).to(out.device)
    return out


@torch.no_grad()
def _mean_nll(adapter: ModelAdapter, inputs: LayerInputs, hidden: torch.Tensor, windows, device) -> float:
    norm, head = adapter.final_modules(), adapter.lm_head()
    homes = module_device(norm), module_device(head)
    norm.to(device), head.to(device)
    try:
        batches = inputs.batches()
        total = sum(nll_sum(norm(hidden[b].to(device)), windows[b], adapter.logits) for b in batches)
    finally:
        norm.to(homes[0]), head.to(homes[1])
    # A distributed run: each process holds its share of the windows; the mean is over all of them.
    count = all_sum_number(windows.shape[0])
    return all_sum_number(float(total)) / (count * (windows.shape[1] - 1))


@torch.no_grad()
def window_scores(
    adapter: ModelAdapter,
    windows: torch.Tensor,
    num_remove: int,
    score: str,
    *,
    device: torch.device,
    storage_device: torch.device | None = None,
    batch_size: int = 4,
    show_progress: bool = True,
) -> dict[int, float]:
    """First layer of each candidate window -> its score (lower = safer to remove; ppl or bi).

    `storage_device`: where the activations wait between layers (default: the compute device).
    """
    count = adapter.num_layers()
    check_window(num_remove, count)
    storage = storage_device or device
    inputs = capture_layer_inputs(
        adapter, windows, batch_size=batch_size, compute_device=device, storage_device=storage
    )
    state = inputs.hidden.clone()
    scores: dict[int, float] = {}
    if score == "bi":
        tokens = all_sum_number(state.shape[0] * state.shape[1])  # of every process (distributed)
        ring: deque[torch.Tensor] = deque([state], maxlen=num_remove + 1)
        for index in progress(range(count), "block influence", show_progress):
            ring.append(_through(adapter, index, inputs, ring[-1], device))
            if len(ring) == num_remove + 1:
                start = index + 1 - num_remove
                cos = F.cosine_similarity(ring[0].float(), ring[-1].float(), dim=-1)
                scores[start] = 1.0 - all_sum_number(float(cos.sum(dtype=torch.float64))) / tokens
        return scores
    for start in progress(range(count - num_remove + 1), "depth candidates", show_progress):
        hidden = state
        for index in range(start + num_remove, count):
            hidden = _through(adapter, index, inputs, hidden, device)
        scores[start] = math.exp(_mean_nll(adapter, inputs, hidden, windows, device))
        if start < count - num_remove:
            state = _through(adapter, start, inputs, state, device)
    return scores


def remove_layers(adapter: ModelAdapter, remove: list[int]) -> None:
    """Delete decoder layers in place and renumber what refers to layer positions."""
    layers = adapter.decoder_layers()
    kept = [layer for i, layer in enumerate(layers) if i not in set(remove)]
    for new_index, layer in enumerate(kept):
        for module in layer.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = new_index
    layers_parent_path, _, attr = adapter.spec.layers_path.rpartition(".")
    parent = adapter.model.get_submodule(layers_parent_path) if layers_parent_path else adapter.model
    setattr(parent, attr, torch.nn.ModuleList(kept))
    if adapter.stream is not None:  # a streamed model's layers on disk follow the renumbering
        adapter.stream.removed(remove)
    adapter.remove_layer_entries(remove)

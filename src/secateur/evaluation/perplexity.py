"""Perplexity over non-overlapping windows: exp(mean NLL of every predicted token).

Protocol (Wanda/SparseGPT): the test split joined into one text, tokenized once, cut into
non-overlapping windows of `seqlen` tokens (the tail is dropped); each window predicts its tokens
2..seqlen from the ones before. Logits are formed a fixed-size block of positions at a time, and
the NLLs summed in float64, so the result does not depend on the batch size (see `nll_sum`).

When the model is not on the compute device (a big model in CPU RAM, a GPU to use), the windows
go through the layer pipeline instead: one layer on the device at a time.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import torch

from secateur.calibration.capture import capture_layer_inputs
from secateur.calibration.pipeline import run_layers
from secateur.devices import module_device
from secateur.distributed import all_sum_number, shard
from secateur.models.adapter import ModelAdapter
from secateur.progress import progress
from secateur.scoring.nll import nll_sum


@dataclass(frozen=True)
class PerplexityResult:
    perplexity: float
    mean_nll: float
    tokens: int  # predicted tokens
    windows: int
    seqlen: int
    dataset: str
    seconds: float
    split: str = "test"  # always the test split: checkpoints are chosen on held-out training text

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def perplexity(
    adapter: ModelAdapter,
    windows: torch.Tensor,
    *,
    batch_size: int = 4,
    device: torch.device | None = None,
    dataset: str = "",
    show_progress: bool = True,
) -> PerplexityResult:
    """windows: (n, seqlen) int64 from `eval_windows`."""
    start = time.perf_counter()
    home = module_device(adapter.model)
    device = device or home
    share = shard(windows)  # a distributed run: each process its share, the sum of all
    if device == home and adapter.stream is None:  # a streamed model's layers are on disk
        total = _direct(adapter, share, batch_size, device, show_progress)
    else:
        total = _layerwise(adapter, share, batch_size, device, show_progress)
    total = all_sum_number(float(total))
    n, seqlen = windows.shape
    tokens = n * (seqlen - 1)
    mean_nll = total / tokens
    return PerplexityResult(
        perplexity=math.exp(mean_nll),
        mean_nll=mean_nll,
        tokens=tokens,
        windows=n,
        seqlen=seqlen,
        dataset=dataset,
        seconds=time.perf_counter() - start,
    )


@torch.no_grad()
def _direct(adapter, windows, batch_size, device, show_progress) -> float:
    base = adapter.base_model()
    total = 0.0
    for start in progress(range(0, windows.shape[0], batch_size), "perplexity", show_progress):
        ids = windows[start : start + batch_size].to(device)
        hidden = base(input_ids=ids, use_cache=False).last_hidden_state
        total += nll_sum(hidden, ids, adapter.logits)
    return total


@torch.no_grad()
def _layerwise(adapter, windows, batch_size, device, show_progress) -> float:
    inputs = capture_layer_inputs(
        adapter, windows, batch_size=batch_size, compute_device=device, storage_device=device
    )
    run_layers(
        adapter,
        lambda ctx: None,
        inputs=inputs,
        device=device,
        show_progress=show_progress,
        desc="eval",
        changes=False,
    )
    norm, head = adapter.final_modules(), adapter.lm_head()
    norm_home, head_home = module_device(norm), module_device(head)
    norm.to(device), head.to(device)
    try:
        total = 0.0
        for batch in inputs.batches():
            hidden = norm(inputs.hidden[batch].to(device))
            total += nll_sum(hidden, windows[batch], adapter.logits)
    finally:
        norm.to(norm_home), head.to(head_home)
    return total

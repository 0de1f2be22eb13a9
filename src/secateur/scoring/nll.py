"""Σ NLL of a batch of windows under the LM head: what perplexity and depth pruning's ppl score sum."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

_BLOCK_ROWS = 128  # positions whose logits are formed at once (64 MB of fp32 at a 128K vocabulary)


@torch.no_grad()
def nll_sum(hidden: torch.Tensor, ids: torch.Tensor, logits: Callable[[torch.Tensor], torch.Tensor]) -> float:
    """hidden: (b, s, h) after the final norm; ids: (b, s); `logits`: hidden rows -> logits (the LM
    head, e.g. `ModelAdapter.logits`). Σ NLL of tokens 1..s-1.

    Why fixed-size blocks: BLAS rounds a row of a product differently depending on how many rows
    the product has (1e-6 per logit on CPU), so the result would depend on the batch size and on
    how the positions were cut. Every head product here has exactly `_BLOCK_ROWS` rows (the last
    block padded with zeros), and within a product of fixed shape a row's result does not depend
    on where it sits. The per-token NLLs are then the same values whatever the batching, and their
    sum is float64, so the total agrees to float64 noise. It also bounds the logits formed at
    once: a 128K vocabulary never needs a (batch, seqlen, vocab) tensor.
    """
    width = hidden.shape[-1]
    rows = hidden[:, :-1].reshape(-1, width)
    targets = ids[:, 1:].reshape(-1).to(hidden.device)
    total = torch.zeros((), dtype=torch.float64, device=hidden.device)
    for start in range(0, rows.shape[0], _BLOCK_ROWS):
        block = rows[start : start + _BLOCK_ROWS]
        used = block.shape[0]
        if used < _BLOCK_ROWS:
            block = F.pad(block, (0, 0, 0, _BLOCK_ROWS - used))
        nll = F.cross_entropy(logits(block)[:used].float(), targets[start : start + used], reduction="none")
        total += nll.double().sum()
    return float(total)

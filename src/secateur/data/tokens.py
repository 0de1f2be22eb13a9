"""From documents to token tensors: calibration windows and evaluation streams."""

from __future__ import annotations

import random

import torch

from secateur.data.text import TextSource
from secateur.errors import SecateurError

# A huge train split (C4's shard has 356K documents) is not tokenized whole: documents are taken in
# a seeded random order until about this many times the needed tokens (at ~4 characters a token).
_OVERSAMPLE = 8
_CHARS_PER_TOKEN = 4


def tokenize(tokenizer, text: str) -> torch.Tensor:
    """One long text -> 1-D int64 ids. `verbose=False` silences the 'longer than model max' warning."""
    ids = tokenizer(text, add_special_tokens=True, verbose=False)["input_ids"]
    return torch.tensor(ids, dtype=torch.long)


def eval_stream(tokenizer, source: TextSource) -> torch.Tensor:
    """The test split joined by the source's joiner, tokenized once (the WikiText-2 protocol)."""
    docs = source.documents("test")
    if not docs:
        raise SecateurError(f"dataset {source.name!r} has an empty test split; use another --eval-dataset")
    return tokenize(tokenizer, source.joiner.join(docs))


def calibration_stream(tokenizer, source: TextSource, needed_tokens: int, seed: int) -> torch.Tensor:
    docs = source.documents("train")
    if not docs:
        raise SecateurError(f"dataset {source.name!r} is empty; give it some text")
    budget = _OVERSAMPLE * needed_tokens * _CHARS_PER_TOKEN
    if sum(len(d) for d in docs) > budget:
        order = list(range(len(docs)))
        random.Random(seed).shuffle(order)
        chosen, size = [], 0
        for i in order:
            chosen.append(docs[i])
            size += len(docs[i])
            if size >= budget:
                break
        docs = chosen
    return tokenize(tokenizer, source.joiner.join(docs))


def sample_windows(
    stream: torch.Tensor, nsamples: int, seqlen: int, seed: int, name: str = ""
) -> torch.Tensor:
    """`nsamples` windows of `seqlen` tokens at seeded random offsets -> (nsamples, seqlen) int64."""
    if stream.numel() < seqlen:
        raise SecateurError(
            f"--seqlen {seqlen} exceeds the calibration text {name} ({stream.numel()} tokens): "
            f"lower --seqlen or use a larger corpus"
        )
    generator = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, stream.numel() - seqlen + 1, (nsamples,), generator=generator)
    return torch.stack([stream[s : s + seqlen] for s in starts.tolist()])


def eval_windows(
    stream: torch.Tensor, seqlen: int, max_windows: int | None = None, name: str = ""
) -> torch.Tensor:
    """Non-overlapping windows from the start of the stream -> (windows, seqlen); the tail is dropped."""
    count = stream.numel() // seqlen
    if count == 0:
        raise SecateurError(
            f"the evaluation text {name} has {stream.numel()} tokens, fewer than --seqlen {seqlen}: "
            f"lower --eval-seqlen or use a larger text"
        )
    if max_windows is not None:
        count = min(count, max_windows)
    return stream[: count * seqlen].reshape(count, seqlen)

"""The `secateur prune` command line the CLI tests share: a tiny model, the test corpus, tiny sizes."""

from __future__ import annotations


def prune_args(model, corpus, *extra: str, nsamples: int = 4, seqlen: int = 32) -> list[str]:
    """`prune --model M --dataset C --nsamples N --seqlen S`, then `extra` (output, method, ...)."""
    base = ["prune", "--model", str(model), "--dataset", str(corpus)]
    return [*base, "--nsamples", str(nsamples), "--seqlen", str(seqlen), *extra]

"""The tail every `secateur prune` summary shares: perplexity before/after and where the model went."""

from __future__ import annotations

from secateur.evaluation.summary import change


def outcome_rows(run) -> list[list[str]]:
    rows = []
    if run.dense is not None:
        rows.append([f"perplexity dense ({run.dense.dataset})", f"{run.dense.perplexity:.3f}"])
    if run.pruned is not None:
        rows.append([f"perplexity pruned ({run.pruned.dataset})", f"{run.pruned.perplexity:.3f}"])
    if run.dense is not None and run.pruned is not None:
        rows.append(["perplexity change", change(run.dense.perplexity, run.pruned.perplexity)])
    if run.out is not None:
        rows.append(["saved to", str(run.out)])
    return rows

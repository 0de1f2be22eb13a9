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


class ShrinkReport:
    """The report of a step that removes parameters and records its analysis as a dict (OSSCAR,
    experts): params_before/after, seconds, per-layer rows under "layers" (left out of the manifest,
    written beside the checkpoint instead)."""

    def __init__(self, data: dict) -> None:
        self.data = data
        self.params_before, self.params_after = data["params_before"], data["params_after"]
        self.timings = {"prune_s": data["seconds"]}

    def to_dict(self) -> dict:
        return {k: v for k, v in self.data.items() if k != "layers"} | {
            "ratio_of_total": 1 - self.params_after / self.params_before
        }

"""Summary rows `secateur finetune` and `secateur recover` share: which split each number is from."""

from __future__ import annotations


def loss_rows(tuned) -> list[list[str]]:
    """Train loss, and the validation loss on the part held out of the train split (if any)."""
    first = tuned.first_loss if tuned.first_loss is not None else float("nan")
    last = tuned.last_loss if tuned.last_loss is not None else float("nan")
    rows = [["train loss first -> last", f"{first:.4f} -> {last:.4f}"]]
    if tuned.validation_windows == 0:
        rows.append(["validation", "none (--no-eval or --val-set-size 0): the last step is kept"])
    elif tuned.best_eval_loss is not None:
        rows.append(
            [
                f"best validation loss ({tuned.validation_windows} held out of train)",
                f"{tuned.best_eval_loss:.4f}",
            ]
        )
    elif tuned.eval_losses:
        rows.append(
            [
                f"validation loss ({tuned.validation_windows} held out of train)",
                f"{tuned.eval_losses[-1][1]:.4f}",
            ]
        )
    return rows


def perplexity_rows(before, after) -> list[list[str]]:
    rows = []
    for label, result in (("before", before), ("after", after)):
        if result is not None:
            rows.append([f"perplexity {label} ({result.dataset} test split)", f"{result.perplexity:.3f}"])
    return rows

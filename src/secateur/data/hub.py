"""Hugging Face hub datasets, with the names and splits the pruning papers use.

These need the network (or the `datasets` cache). Without it, loading fails with one line that
suggests a local file instead. Dataset ids are the ones that load under datasets >= 4 (no scripts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from secateur.data.text import Split
from secateur.errors import SecateurError
from secateur.registry import register


@dataclass(frozen=True)
class HubText:
    """One hub dataset: per split, the `load_dataset` arguments and the text field."""

    name: str
    path: str
    text_field: str
    splits: dict[str, dict[str, Any]]
    config: str | None = None
    joiner: str = "\n\n"
    max_documents: dict[str, int] = field(default_factory=dict)

    def documents(self, split: Split) -> list[str]:
        try:
            from datasets import load_dataset

            data = load_dataset(self.path, self.config, **self.splits[split])
        except Exception as exc:  # network, auth, or a renamed dataset: all end the same way for a user
            reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            raise SecateurError(
                f"could not load {self.name!r} ({self.path}) from the Hugging Face hub: {reason}. "
                f"Offline? Pass a local .txt/.jsonl file or folder, e.g. --dataset corpus.txt"
            ) from None
        limit = self.max_documents.get(split)
        if limit is not None:
            data = data.select(range(min(limit, len(data))))
        return [t for t in data[self.text_field] if t and t.strip()]


WIKITEXT2 = register("hub-dataset", "wikitext2", "wikitext")(
    HubText(
        "wikitext2",
        "Salesforce/wikitext",
        "text",
        {"train": {"split": "train"}, "test": {"split": "test"}},
        config="wikitext-2-raw-v1",
    )
)


# One shard of each split, as Wanda and SparseGPT do; evaluation on the first 1100 validation
# documents joined by spaces, which is what their published C4 perplexities measure.
C4 = register("hub-dataset", "c4")(
    HubText(
        "c4",
        "allenai/c4",
        "text",
        {
            "train": {"data_files": {"train": "en/c4-train.00000-of-01024.json.gz"}, "split": "train"},
            "test": {
                "data_files": {"validation": "en/c4-validation.00000-of-00008.json.gz"},
                "split": "validation",
            },
        },
        joiner=" ",
        max_documents={"test": 1100},
    )
)


# The original script dataset no longer loads under datasets >= 4; its parquet conversion does.
# Sentences are joined by spaces, as in the SparseGPT/Wanda evaluation code.
_PARQUET = {"revision": "refs/convert/parquet"}
PTB = register("hub-dataset", "ptb")(
    HubText(
        "ptb",
        "ptb-text-only/ptb_text_only",
        "sentence",
        {"train": {"split": "train", **_PARQUET}, "test": {"split": "test", **_PARQUET}},
        config="penn_treebank",
        joiner=" ",
    )
)

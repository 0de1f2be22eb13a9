"""What a text source is: documents per split, and the string that joins them (see `data.sources`)."""

from __future__ import annotations

from typing import Literal, Protocol

Split = Literal["train", "test"]


class TextSource(Protocol):
    name: str
    joiner: str

    def documents(self, split: Split) -> list[str]: ...


def split_documents(docs: list[str], split: Split, train_fraction: float = 0.75) -> list[str]:
    """First `train_fraction` of the documents for calibration, the rest for evaluation."""
    cut = round(len(docs) * train_fraction)
    return docs[:cut] if split == "train" else docs[cut:]

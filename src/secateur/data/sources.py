"""Text sources: anything secateur can calibrate or evaluate on.

A source yields documents for a "train" split (calibration) and a "test" split (perplexity),
plus the string that joins documents into one stream. Names resolve in this order: an existing
local path, an embedded corpus, a hub dataset.
"""

from __future__ import annotations

from pathlib import Path

from secateur.data.local import LocalText
from secateur.data.text import Split, TextSource, split_documents
from secateur.errors import SecateurError
from secateur.registry import REGISTRY

__all__ = ["Split", "TextSource", "resolve_source", "split_documents"]


def resolve_source(name: str) -> TextSource:
    """A local file/folder, an embedded corpus, or a hub dataset, by name."""
    path = Path(name).expanduser()
    if path.exists():
        return LocalText(path)
    source = REGISTRY.find("corpus", name.lower()) or REGISTRY.find("hub-dataset", name.lower())
    if source is not None:
        return source
    if any(sep in name for sep in ("/", "\\")) or Path(name).suffix in (".txt", ".jsonl", ".json"):
        raise SecateurError(f"dataset file {name} does not exist; check the path")
    known = ", ".join(REGISTRY.names("corpus") + REGISTRY.names("hub-dataset"))
    raise SecateurError(
        f"unknown dataset {name!r}: use one of {known}, or a local .txt/.jsonl file or folder"
    )

"""Local text: a .txt file, a .jsonl file (field "text"), or a folder of them.

Documents are blank-line separated paragraphs of .txt files and the records of .jsonl files. A
folder whose files are named train*/test* (or valid*) uses them as the splits; otherwise, as for
a single file, the first three quarters of the documents calibrate and the last quarter evaluates.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from secateur.data.text import Split, split_documents
from secateur.errors import SecateurError

SUFFIXES = (".txt", ".jsonl")


def read_documents(path: Path) -> list[str]:
    """Documents of one file, in order, empty ones dropped."""
    if path.suffix == ".jsonl":
        return _read_jsonl(path)
    if path.suffix == ".txt":
        text = path.read_text(encoding="utf-8", errors="replace")
        docs = [p.strip() for p in re.split(r"\n\s*\n", text)]
        return [d for d in docs if d]
    raise SecateurError(f"{path}: unsupported file type {path.suffix!r}; use .txt or .jsonl (field 'text')")


def _read_jsonl(path: Path) -> list[str]:
    docs = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise SecateurError(f"{path}:{number} is not valid JSON; fix or remove that line") from None
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise SecateurError(f"{path}:{number} has no string field 'text'; every record needs one")
            if record["text"].strip():
                docs.append(record["text"])
    return docs


class LocalText:
    joiner = "\n\n"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = str(path)
        if path.is_file() and path.suffix not in SUFFIXES:
            raise SecateurError(
                f"{path}: unsupported file type {path.suffix!r}; use .txt or .jsonl (field 'text')"
            )

    def _files(self) -> list[Path]:
        if self.path.is_file():
            return [self.path]
        files = sorted(p for p in self.path.rglob("*") if p.is_file() and p.suffix in SUFFIXES)
        if not files:
            raise SecateurError(f"folder {self.path} holds no .txt or .jsonl files")
        return files

    def documents(self, split: Split) -> list[str]:
        files = self._files()
        named = {
            "train": [f for f in files if f.name.startswith("train")],
            "test": [f for f in files if f.name.startswith(("test", "valid"))],
        }
        if self.path.is_dir() and named["train"] and named["test"]:
            docs = [d for f in named[split] for d in read_documents(f)]
        else:
            docs = split_documents([d for f in files for d in read_documents(f)], split)
        if not docs:
            raise SecateurError(f"{self.path} has no text for the {split} split; give it more text")
        return docs

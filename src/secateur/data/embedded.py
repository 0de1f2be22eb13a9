"""Embedded corpora: real English text installed from package registries and cached once.

- lee: 300 news articles (Lee et al., 2005) from the gensim wheel on PyPI, one per line. The default.
- austen: Jane Austen's six novels from Debian's r-cran-janeaustenr (paragraphs).
- mobydick: Melville's Moby Dick from Debian's r-cran-tokenizers (paragraphs).

Each is cached as `<cache>/corpora/<name>.jsonl`, one document per line. The first three quarters
of the documents calibrate, the last quarter evaluates, so the two never overlap.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from secateur.data.rdata import read_lazyload_db
from secateur.data.text import Split, split_documents
from secateur.errors import SecateurError
from secateur.fetch import apt_download, atomic_path, extract_deb, extract_member, pip_download
from secateur.paths import cache_home
from secateur.registry import register


@dataclass(frozen=True)
class EmbeddedCorpus:
    name: str
    description: str
    origin: str
    fetch_documents: Callable[[Path], list[str]]  # given a scratch folder, returns the documents
    joiner: str = "\n\n"

    @property
    def cache_path(self) -> Path:
        return cache_home() / "corpora" / f"{self.name}.jsonl"

    def ensure(self) -> Path:
        """Fetch and convert once; later calls only check the cache."""
        path = self.cache_path
        if path.is_file():
            return path
        print(f"secateur: fetching corpus {self.name!r} from {self.origin} (once) ...", file=sys.stderr)
        with tempfile.TemporaryDirectory() as scratch:
            docs = self.fetch_documents(Path(scratch))
        if not docs:
            raise SecateurError(f"corpus {self.name!r} came out empty; delete {path.parent} and retry")
        with atomic_path(path) as tmp:
            tmp.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs), encoding="utf-8")
        return path

    def all_documents(self) -> list[str]:
        with self.ensure().open(encoding="utf-8") as handle:
            return [json.loads(line)["text"] for line in handle]

    def documents(self, split: Split) -> list[str]:
        return split_documents(self.all_documents(), split)


def paragraphs(lines: list[str]) -> list[str]:
    """Join hard-wrapped lines into paragraphs; blank lines separate paragraphs."""
    text = "\n".join(line.rstrip() for line in lines if line is not None)
    return [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]


def _lee(scratch: Path) -> list[str]:
    (wheel,) = pip_download(["gensim==4.4.0"], scratch)
    target = extract_member(wheel, "gensim/test/test_data/lee_background.cor", scratch / "lee.cor")
    lines = target.read_text(encoding="utf-8", errors="replace").splitlines()
    return [line.strip() for line in lines if line.strip()]


def _r_package_text(package: str, objects: tuple[str, ...], scratch: Path) -> list[str]:
    deb = apt_download(package, scratch)
    root = extract_deb(deb, scratch / "root")
    (data_dir,) = root.glob("usr/lib/R/site-library/*/data") or [None]
    if data_dir is None:
        raise SecateurError(f"{deb.name} has no R data folder")
    db = read_lazyload_db(data_dir)
    docs = []
    for name in objects:
        lines = [ln for chunk in db[name] if chunk for ln in chunk.replace("\r\n", "\n").split("\n")]
        docs.extend(paragraphs([ln.lstrip("\ufeff") for ln in lines]))
    return docs


AUSTEN_BOOKS = (
    "sensesensibility",
    "prideprejudice",
    "mansfieldpark",
    "emma",
    "northangerabbey",
    "persuasion",
)

LEE = register("corpus", "lee", "embedded")(
    EmbeddedCorpus(
        "lee",
        "300 modern English news articles (~76K SmolLM2 tokens); the default",
        "PyPI gensim==4.4.0 (test data, LGPL-2.1)",
        _lee,
    )
)
AUSTEN = register("corpus", "austen")(
    EmbeddedCorpus(
        "austen",
        "Jane Austen's six novels in publication order (~930K tokens), by paragraph",
        "Debian r-cran-janeaustenr (public-domain texts)",
        lambda scratch: _r_package_text("r-cran-janeaustenr", AUSTEN_BOOKS, scratch),
    )
)
MOBYDICK = register("corpus", "mobydick")(
    EmbeddedCorpus(
        "mobydick",
        "Herman Melville's Moby Dick (~1.2M characters), by paragraph",
        "Debian r-cran-tokenizers (public-domain text)",
        lambda scratch: _r_package_text("r-cran-tokenizers", ("mobydick",), scratch),
    )
)

"""Where secateur keeps what it fetches and converts once (embedded models, corpora)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_home() -> Path:
    """`$SECATEUR_HOME`, else `~/.cache/secateur`; read on every call, never cached in a global."""
    configured = os.environ.get("SECATEUR_HOME")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "secateur"

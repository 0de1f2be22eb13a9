"""Temporary siblings of outputs, named by the process that owns them, and their clean-up.

Every output is written into a hidden sibling first (`.NAME.partial-PID`, `.secateur-train-PID-…`)
and renamed into place when complete. A process killed with SIGKILL cannot remove its sibling, so
the next run removes the ones whose process is gone (never those of a live process: two runs may
share a parent folder). Such a sibling never carries the output's name, so it cannot be mistaken
for a result.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def stale(parent: Path, prefix: str) -> list[Path]:
    """`parent/<prefix><PID>...` entries whose process no longer runs."""
    if not parent.is_dir():
        return []
    pattern = re.compile(re.escape(prefix) + r"(\d+)(?:-[0-9a-f]+)?$")
    found = []
    for entry in parent.iterdir():
        match = pattern.match(entry.name)
        if match and not pid_alive(int(match.group(1))):
            found.append(entry)
    return found


def remove_stale(parent: Path, prefix: str) -> list[Path]:
    """Remove the stale entries (see `stale`); returns them."""
    removed = stale(parent, prefix)
    for entry in removed:
        shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
    return removed


def restore_swapped_out(final: Path) -> Path | None:
    """An --overwrite killed between moving the old result aside and renaming the new one in leaves
    `.NAME.old-PID` and no NAME: put the old result back (it is complete); returns it if so."""
    for old in stale(final.parent, f".{final.name}.old-"):
        if not final.exists():
            os.replace(old, final)
            return final
        shutil.rmtree(old, ignore_errors=True)
    return None


def sibling(final: Path, kind: str) -> Path:
    """`.NAME.<kind>-PID` beside `final`, after removing such siblings of dead processes."""
    prefix = f".{final.name}.{kind}-"
    remove_stale(final.parent, prefix)
    return final.parent / f"{prefix}{os.getpid()}"


def scratch_dir(parent: Path, prefix: str = ".secateur-train-") -> Path:
    """A new empty folder `parent/<prefix>PID-<random>` (stale ones of dead processes removed)."""
    parent.mkdir(parents=True, exist_ok=True)
    remove_stale(parent, prefix)
    path = parent / f"{prefix}{os.getpid()}-{secrets.token_hex(4)}"
    path.mkdir()
    return path


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def atomic_path(final: Path, *, keep_existing: bool = False, kind: str = "partial") -> Iterator[Path]:
    """Yield a temporary sibling of `final` (file or folder) to write; when the block succeeds it is
    renamed onto `final`, otherwise removed. `keep_existing`: if `final` appeared meanwhile (another
    process finished the same item), theirs is kept and ours discarded."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = sibling(final, kind)
    if tmp.exists():
        _remove(tmp)
    try:
        yield tmp
        if not (keep_existing and final.exists()):
            os.replace(tmp, final)
    finally:
        if tmp.exists():
            _remove(tmp)


def write_text_atomic(path: Path, text: str) -> Path:
    """`path` holds `text` whole, or is untouched."""
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(text)
    return Path(path)

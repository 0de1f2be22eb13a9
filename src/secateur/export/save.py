"""Writing a pruned checkpoint: atomically, never over an existing folder without --overwrite.

The checkpoint is written into a hidden temporary sibling of the output folder and renamed into
place only when complete, so a crash or Ctrl-C never leaves a half-written model under the name a
script will look for. With --overwrite the old folder is swapped out only after the new one is done.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from safetensors import SafetensorError

from secateur.errors import SecateurError
from secateur.faults import pause_point
from secateur.scratch import restore_swapped_out, sibling

MANIFEST = "secateur.json"


def check_output_dir(out: str | Path, overwrite: bool) -> Path:
    """Fail early (before any work) if `out` cannot be written or would be clobbered."""
    path = Path(out).expanduser()
    restore_swapped_out(path)
    if path.exists() and not overwrite:
        raise SecateurError(
            f"--out {path} already exists: pass --overwrite to replace it, or choose another folder"
        )
    if path.exists() and not path.is_dir():
        raise SecateurError(f"--out {path} is a file, not a folder: choose another path")
    ancestor = path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise SecateurError(f"cannot write --out {path}: {ancestor} is not writable; choose another folder")
    return path


@contextmanager
def atomic_output_dir(out: str | Path, overwrite: bool) -> Iterator[Path]:
    """Yield an empty temporary folder; on success it becomes `out` (replacing it if allowed)."""
    final = check_output_dir(out, overwrite)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = sibling(final, "partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        pause_point("save")  # fault tests kill the process here: everything written, nothing renamed
        if final.exists():
            if not overwrite:  # appeared while we worked
                raise SecateurError(f"--out {final} appeared while pruning; pass --overwrite to replace it")
            trash = sibling(final, "old")
            os.replace(final, trash)
            os.replace(tmp, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except (OSError, SafetensorError) as exc:  # a full disk, a quota, a folder made read-only meanwhile
        reason = getattr(exc, "strerror", None) or str(exc).strip().splitlines()[0]
        raise SecateurError(
            f"could not write --out {final}: {reason}; nothing was left there: "
            "free some space or choose another folder"
        ) from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def save_checkpoint(
    model,
    tokenizer,
    out: str | Path,
    manifest: dict,
    overwrite: bool = False,
    extra: Callable[[Path], None] | None = None,
) -> Path:
    """safetensors + config + tokenizer + secateur.json, loadable with plain from_pretrained.

    `extra(folder)` writes further files (tier maps, plots, a rewritten config) before the rename.
    """
    from secateur.models.streaming import stream_of

    with atomic_output_dir(out, overwrite) as tmp:
        stream = stream_of(model)
        if stream is not None:  # --stream: the layers are on disk already
            from secateur.export.streamed import write_streamed

            write_streamed(model, stream, tmp)
        else:
            model.save_pretrained(tmp)
        from secateur.export.structured import write_if_heterogeneous

        write_if_heterogeneous(model, tmp)  # structurally pruned layers of different widths
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        if extra is not None:
            extra(tmp)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    return Path(out).expanduser()

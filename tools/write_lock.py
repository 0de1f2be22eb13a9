"""Print the lock (constraints.txt) of a venv: every installed distribution at its exact version.

torch is left out on purpose: the Makefile installs it from $(TORCH) (the CPU wheel by default, a
CUDA build when a user asks), and a pin here would fight that choice. secateur itself is left out
(it is the editable install).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

LEFT_OUT = {"torch", "secateur"}


def main(venv: str) -> int:
    python = Path(venv) / "bin" / "python"
    frozen = subprocess.run(
        [str(python), "-m", "pip", "freeze", "--exclude-editable", "--all"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    version = subprocess.run(
        [str(python), "-c", "import platform; print(platform.python_version())"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    print("# The tested environment of secateur: `make setup` installs with `-c constraints.txt`.")
    print(f"# Written by `make lock` (tools/write_lock.py) on Python {version}; torch comes from $(TORCH).")
    for line in sorted(frozen, key=str.lower):
        name = line.split("==")[0].strip().lower().replace("_", "-")
        if name in LEFT_OUT or name in ("pip", "setuptools", "wheel") or not line or line.startswith("#"):
            continue
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))

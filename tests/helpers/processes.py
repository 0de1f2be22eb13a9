"""The CLI as a real child process, and a SIGKILL of it at a named point (secateur.faults)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time


def command(args) -> list[str]:
    return [sys.executable, "-m", "secateur", *map(str, args)]


def killed_at(args, point: str, timeout: float = 180) -> None:
    """Run the CLI until it reaches `point`, then SIGKILL it: a crash right there."""
    env = {**os.environ, "SECATEUR_PAUSE_AT": point}
    child = subprocess.Popen(command(args), stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + timeout
    for line in child.stderr:
        if line.strip() == f"secateur-paused-at {point}":
            break
        assert time.time() < deadline, f"never reached {point}"
    else:
        raise AssertionError(f"the process ended before {point} (exit {child.wait()})")
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL


def run_cli(args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command(args), capture_output=True, text=True, timeout=300, **kwargs)

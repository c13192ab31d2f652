"""A real subprocess killed with SIGKILL at a chosen point of its output: the crash-safety tests' one way to crash."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Callable


def run_until_killed(script: str, args: list[str], stop: Callable[[list[str]], bool], *,
                     env: dict | None = None, what: str = "the process") -> list[str]:
    """Run ``python -c script args``; after each line it prints, ``stop(lines so far)`` decides whether to kill it
    now. Returns the lines read; fails if the process ended before it could be killed."""
    proc = subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, text=True,
                            env=env if env is not None else os.environ.copy())
    lines: list[str] = []
    for line in proc.stdout:
        lines.append(line)
        if stop(lines):
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait(timeout=60)
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL, f"{what} finished before it could be killed"
    return lines

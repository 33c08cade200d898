"""Run a recording script in a child process and SIGKILL it once it printed FLUSHED: the crash a
session must survive."""

from __future__ import annotations

import signal
import subprocess
import sys


def kill_after_flush(script: str, *args) -> None:
    """`python -c script *args`; waits for its "FLUSHED" line, then SIGKILL (no cleanup runs)."""
    proc = subprocess.Popen([sys.executable, "-c", script, *map(str, args)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "FLUSHED"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

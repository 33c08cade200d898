"""The 100 Hz command thread: absolute deadlines on the monotonic clock, no executor in between.

Each tick is due at `start + k * period`. A tick that runs late does not shift the grid; when
the thread fell a whole period or more behind (a long stall), the deadlines already passed
are skipped and counted, and one tick runs at once: never a burst of catch-up ticks. The
pacing is wall-clock monotonic even under `use_sim_time`; what a tick commands follows the
plan clock it is given.

Optionally the thread asks for SCHED_FIFO at `priority` (1-99); without the right to (no
CAP_SYS_NICE, `ulimit -r` too low) it runs on normally and says so in `scheduling`
(docs/robot-jetson.md, "Real-time priority").
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Callable

# A tick that keeps raising is logged at its first failure and then every this many.
_LOG_EVERY = 500
SWITCH_INTERVAL_S = 0.001  # the interpreter's thread switch interval while a command loop runs


class CommandLoop:
    def __init__(self, period_s: float, tick: Callable[[], None], priority: int = 0,
                 log: Callable[[str, str], None] | None = None, clock=time.monotonic, name: str = "command",
                 wait: Callable[[float], bool] | None = None):
        if not period_s > 0:
            raise ValueError(f"period must be positive, got {period_s}")
        self.period_s = float(period_s)
        self.priority = int(priority)
        self._tick = tick
        self._log = log or (lambda level, message: None)
        self._clock = clock
        self._stop = threading.Event()
        self._wait = wait or self._stop.wait  # (seconds) -> True once stopped; tests pass a simulated one
        self._thread = threading.Thread(target=self.run, name=name, daemon=True)
        self.scheduling = "not started"
        self.ticks = 0
        self.deadlines_missed = 0
        self.tick_errors = 0

    def start(self) -> "CommandLoop":
        # A thread woken at its deadline waits for the interpreter lock up to one switch interval
        # (5 ms by default) while another thread runs Python code. With two busy Python threads in
        # the process, 1 ms halved the missed deadlines and the period p99 on a loaded 2-core machine.
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 2.0) -> None:
        """End after the tick in flight (if any); returns once the thread is gone or `timeout_s` passed."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=timeout_s)

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._stop.is_set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        """The loop, on the calling thread, until `stop()` (`start()` runs it on its own thread)."""
        self.scheduling = self._apply_priority()
        deadline = self._clock()
        while True:
            delay = deadline - self._clock()
            if self._wait(delay) if delay > 0 else self._stop.is_set():
                return
            self._run_tick()
            deadline += self.period_s
            behind = self._clock() - deadline
            if behind >= self.period_s:  # whole periods missed: skip them, then one tick at once
                skipped = int(behind // self.period_s)
                deadline += skipped * self.period_s
                self.deadlines_missed += skipped

    def _run_tick(self) -> None:
        self.ticks += 1
        try:
            self._tick()
        except Exception as exc:  # noqa: BLE001 - the loop must outlive any one tick
            self.tick_errors += 1
            if self.tick_errors % _LOG_EVERY == 1:
                self._log("error", f"command tick failed ({self.tick_errors} so far): {type(exc).__name__}: {exc}")

    def _apply_priority(self) -> str:
        if self.priority <= 0:
            return "normal"
        wanted = f"SCHED_FIFO {self.priority}"
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(self.priority))  # 0: this thread (Linux)
        except (AttributeError, OSError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            self._log("warning_now", f"command thread: {wanted} refused ({reason}); running at normal priority. "
                                     "Grant it with `ulimit -r` / CAP_SYS_NICE (docs/robot-jetson.md)")
            return f"normal ({wanted} refused: {reason})"
        self._log("info", f"command thread runs at {wanted}")
        return wanted

"""The optional deadman: the robot moves only while heartbeats arrive (docs/safety.md).

A heartbeat is any message on the configured topic; the node calls `beat()` for each one.
Time is wall-clock monotonic, not the ROS clock: the deadman asks whether the process that
sends heartbeats (a teleop node, a watchdog) is alive now, which sim time cannot answer.
ROS-free and lock-free: `beat()` is one assignment.
"""

from __future__ import annotations

import time


class Deadman:
    """Heartbeat freshness for one topic; disabled when the topic is empty."""

    def __init__(self, topic: str, timeout_s: float, clock=time.monotonic):
        if timeout_s <= 0:
            raise ValueError(f"deadman timeout must be positive, got {timeout_s}")
        self.topic = topic
        self.timeout_s = float(timeout_s)
        self._clock = clock
        self._last: float | None = None
        self.beats = 0

    @property
    def enabled(self) -> bool:
        return bool(self.topic)

    def beat(self) -> None:
        self._last = self._clock()
        self.beats += 1

    def age_s(self) -> float | None:
        """Seconds since the last heartbeat (None: never one)."""
        last = self._last
        return None if last is None else max(0.0, self._clock() - last)

    def fresh(self) -> bool:
        """True when disabled, or when the last heartbeat is at most the timeout old."""
        if not self.enabled:
            return True
        age = self.age_s()
        return age is not None and age <= self.timeout_s

    def state(self) -> str:
        """'off', 'fresh', 'silent' (heartbeats stopped) or 'never' (none yet)."""
        if not self.enabled:
            return "off"
        if self._last is None:
            return "never"
        return "fresh" if self.fresh() else "silent"

    def describe(self) -> str:
        """Why the deadman says stop, in words (for service answers, status and logs)."""
        age = self.age_s()
        if age is None:
            return f"no heartbeat on {self.topic} yet (deadman)"
        return (f"last heartbeat on {self.topic} {age * 1000:.0f} ms ago, timeout "
                f"{self.timeout_s * 1000:.0f} ms (deadman)")

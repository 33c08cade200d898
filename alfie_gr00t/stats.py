"""Rolling latency statistics for status topics, profiling summaries and the benchmark."""

from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np


def percentiles(values, points=(50, 95, 99)) -> dict[str, float]:
    if len(values) == 0:
        return {f"p{p}": 0.0 for p in points}
    result = np.percentile(np.fromiter(values, dtype=np.float64, count=len(values)), points)
    return {f"p{p}": round(float(v), 3) for p, v in zip(points, result)}


class RollingStats:
    """Last-N samples (ms) plus lifetime count and mean, and a rate over the last `rate_window_s`."""

    def __init__(self, window: int = 1000, rate_window_s: float = 5.0, clock=time.monotonic):
        self._samples = deque(maxlen=window)
        self._stamps = deque(maxlen=window)
        self._rate_window_s = rate_window_s
        self._clock = clock
        self._lock = threading.Lock()
        self.count = 0
        self.total = 0.0
        self.last = 0.0

    def add(self, value_ms: float) -> None:
        with self._lock:
            self._samples.append(value_ms)
            self._stamps.append(self._clock())
            self.count += 1
            self.total += value_ms
            self.last = value_ms

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    def rate(self) -> float:
        """Samples per second over the recent window."""
        with self._lock:
            now = self._clock()
            recent = [t for t in self._stamps if now - t <= self._rate_window_s]
        if len(recent) < 2:
            return 0.0
        span = max(now - recent[0], 1e-6)
        return len(recent) / span

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            values = list(self._samples)
        return {"count": self.count, "mean": round(self.mean, 3), "last": round(self.last, 3), **percentiles(values)}


class StageStats:
    """Per-stage rolling timings, e.g. {"decode": ..., "inference": ...}."""

    def __init__(self, window: int = 500):
        self._window = window
        self._stages: dict[str, RollingStats] = {}

    def add(self, stages_ms: dict[str, float]) -> None:
        for name, value in stages_ms.items():
            stats = self._stages.get(name)
            if stats is None:
                stats = self._stages.setdefault(name, RollingStats(self._window))
            stats.add(value)

    def summary(self) -> dict[str, dict[str, float]]:
        """{stage: {p50, p95, mean}} for status JSON and the shutdown profile."""
        result = {}
        for name, stats in list(self._stages.items()):
            snap = stats.snapshot()
            result[name] = {"p50": snap["p50"], "p95": snap["p95"], "mean": snap["mean"]}
        return result

    def format_table(self) -> str:
        rows = [f"{'stage':<14}{'mean ms':>10}{'p50 ms':>10}{'p95 ms':>10}"]
        for name, s in self.summary().items():
            rows.append(f"{name:<14}{s['mean']:>10.3f}{s['p50']:>10.3f}{s['p95']:>10.3f}")
        return "\n".join(rows)


class StageTimer:
    """Collects consecutive stage durations: `t.mark("decode")` records time since the previous mark."""

    def __init__(self):
        self.stages: dict[str, float] = {}
        self._start = self._last = time.perf_counter()

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        self.stages[name] = self.stages.get(name, 0.0) + (now - self._last) * 1000.0
        self._last = now

    def total_ms(self) -> float:
        return (time.perf_counter() - self._start) * 1000.0

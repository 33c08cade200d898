"""When to ask for the next chunk, and how long to wait for it, from the measured latency.

GR00T N1.6 takes 35-150 ms per chunk on desktop GPUs and 170-550 ms on Jetson Orin. A
16-step chunk at 15 Hz lasts 1.07 s. With one request in flight, inference overlaps
execution: the next request leaves when the time left in the queue is no more than the
expected latency plus a margin, so the reply lands before the queue runs dry.

- expected latency: the larger of the last exchange and the 95th percentile of the recent
  ones (an observation's capture to its chunk being queued);
- request due: time left <= max(expected + margin, min_refill_steps / step rate), or, with
  a fixed `refill_threshold_steps` > 0, steps left < that threshold;
- timeout per request: twice the slowest recent exchange plus the margin, never under
  `MIN_TIMEOUT_MS`, capped by `inference_timeout_ms`; the first request after activation
  (no measurement yet, a cold server) gets the cap;
- the budget: with one request in flight, a chunk must arrive before the previous one runs
  out, so the queue never runs dry only while latency < chunk duration / 2 (533 ms at the
  defaults); above that seams hold briefly, and at latency >= chunk duration - margin every
  chunk arrives with (almost) nothing left to play: the policy is too slow for its horizon.

ROS-free and clock-free: the caller passes measurements in seconds.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

MIN_TIMEOUT_MS = 250.0
_WINDOW = 20


@dataclass(frozen=True)
class RefillConfig:
    action_step_hz: float = 15.0
    action_horizon: int = 16
    refill_threshold_steps: float = 0.0  # 0 = latency-aware (default); > 0 = fixed steps-left threshold
    min_refill_steps: float = 8.0  # re-plan at least this often (steps left), even at low latency
    latency_margin_ms: float = 60.0
    inference_timeout_ms: float = 2000.0  # cap of the adaptive per-request timeout

    def __post_init__(self):
        horizon = self.action_horizon
        if not (math.isfinite(self.action_step_hz) and self.action_step_hz > 0):
            raise ValueError(f"action_step_hz must be positive, got {self.action_step_hz}")
        if not 0 <= self.refill_threshold_steps <= horizon:
            raise ValueError(f"refill_threshold_steps must be 0 (latency-aware) or in (0, action_horizon={horizon}], "
                             f"got {self.refill_threshold_steps}")
        if not 0 <= self.min_refill_steps <= horizon:
            raise ValueError(f"min_refill_steps must be in [0, action_horizon={horizon}], got {self.min_refill_steps}")
        if not (math.isfinite(self.latency_margin_ms) and 0 <= self.latency_margin_ms * 1e-3 < self.chunk_duration_s):
            raise ValueError(f"latency_margin_ms must be in [0, chunk duration {self.chunk_duration_s * 1e3:.0f} ms), "
                             f"got {self.latency_margin_ms}")
        if not self.inference_timeout_ms >= MIN_TIMEOUT_MS:
            raise ValueError(f"inference_timeout_ms must be at least {MIN_TIMEOUT_MS:.0f} "
                             f"(GR00T takes 35-550 ms per chunk), got {self.inference_timeout_ms}")

    @property
    def chunk_duration_s(self) -> float:
        return self.action_horizon / self.action_step_hz


class RefillPolicy:
    """Latency measurements in, refill and timeout decisions out."""

    def __init__(self, config: RefillConfig):
        self.config = config
        self._hz = config.action_step_hz
        self._margin_s = config.latency_margin_ms / 1000.0
        self._latency = deque(maxlen=_WINDOW)  # capture -> queued, s
        self._exchange = deque(maxlen=_WINDOW)  # request -> reply, s
        self._expected_s = 0.0  # derived from _latency on each record(): read every 2 ms by the worker
        self._measured_since_activation = False

    def activated(self) -> None:
        """A new activation: its first request gets the timeout cap (the server may be cold)."""
        self._measured_since_activation = False

    def record(self, latency_s: float, exchange_s: float) -> None:
        """One successful exchange: capture-to-queued latency and the request's own duration."""
        self._latency.append(float(latency_s))
        self._exchange.append(float(exchange_s))
        self._expected_s = max(self._latency[-1], float(np.percentile(self._latency, 95)))
        self._measured_since_activation = True

    def expected_latency_s(self) -> float:
        """What the next chunk is expected to take (0 before any measurement)."""
        return self._expected_s

    def lead_s(self) -> float:
        """Request when no more than this much time is left in the queue (latency-aware mode)."""
        return max(self.expected_latency_s() + self._margin_s, self.config.min_refill_steps / self._hz)

    def request_due(self, remaining_steps: float) -> bool:
        fixed = self.config.refill_threshold_steps
        if fixed > 0:
            return remaining_steps < fixed
        return remaining_steps / self._hz <= self.lead_s()

    def timeout_ms(self) -> float:
        cap = float(self.config.inference_timeout_ms)
        if not self._measured_since_activation or not self._exchange:
            return cap
        return min(cap, max(MIN_TIMEOUT_MS, 2000.0 * max(self._exchange) + self.config.latency_margin_ms))

    def delay_steps(self) -> int:
        """Steps expected to elapse between capture and the reply being queued."""
        return int(math.ceil(self.expected_latency_s() * self._hz))

    def budget(self) -> str:
        """'ok', 'seams_hold' (latency >= half a chunk: the queue runs dry at some seams) or
        'too_slow' (latency >= chunk duration - margin: chunks arrive with nothing left to play)."""
        expected = self.expected_latency_s()
        duration = self.config.chunk_duration_s
        if expected + self._margin_s >= duration:
            return "too_slow"
        if expected >= duration / 2:
            return "seams_hold"
        return "ok"

"""When to ask for the next chunk, and how long to wait for it, from the measured latency.

GR00T N1.6 takes 35-150 ms per chunk on desktop GPUs, 170-550 ms on Jetson Orin and 2.5-3 s
on a CPU. A 16-step chunk at 15 Hz lasts 1.07 s. With one request in flight, inference
overlaps execution: the next request leaves when the time left in the queue is no more than
the expected latency plus a margin, so the reply lands before the queue runs dry. The
scheduler aligns each reply by the plan time the robot executed since its capture (docs/design.md#the-plan-clock),
so a reply that comes while the robot holds is never "late".

- expected latency: the larger of the last exchange and the 95th percentile of the recent
  ones (an observation's capture to its chunk being queued);
- request due: time left <= max(expected + margin, min_refill_steps / step rate), or, with
  a fixed `refill_threshold_steps` > 0, steps left < that threshold;
- replanning (real-time chunking): when the server advertises that it inpaints the prefix a
  request carries (its ping reply says so), a request is also due every `replan_every_steps`
  steps the robot executed since the last one (one request in flight still), so the robot acts
  on fresher observations; the scheduler splices those chunks without a crossfade. Off against
  a server without it, with `replan_every_steps: 0`, and for a policy slower than its chunk;
- a policy slower than its chunk (expected + margin >= chunk duration: `too_slow`) runs
  synchronously: overlapping would only make the robot execute, while the policy computes,
  the steps of the chunk that is being computed from an observation taken before them. So the
  request leaves when the queue is about to run dry (no more than the margin left), the robot
  holds while the next chunk is computed, and that chunk starts at step 0;
- the budget: the queue never runs dry while latency < chunk duration / 2 (533 ms at the
  defaults); above that seams hold briefly (`seams_hold`), and at latency + margin >= chunk
  duration the cycle is execute, hold, execute (`too_slow`); the client stays ACTIVE.

Timeouts (one design, three cases):

- latency known (any successful exchange of this client, or a figure the server reported):
  twice the slowest recent exchange (or the server's figure) plus the margin, never under
  `MIN_TIMEOUT_MS`, capped by `inference_timeout_ms`;
- first contact of an activation: the worker first pings the server (Isaac-GR00T's `ping`
  endpoint, which our server answers on the same socket) with a short timeout
  (`PROBE_TIMEOUT_MS`, at most the cap). Any answer proves the server alive; a latency figure
  in it (`inference_p95_ms`, `last_inference_ms` or `average_inference_ms`) becomes the known
  latency (`server_reported`). A ping that is not answered is a failure like any other;
- nothing known (the server answered the ping without a figure and nothing was measured
  yet): the first observation waits up to `inference_timeout_ms`, the longest any request
  ever waits (default 10 s, so a 3 s CPU policy gets its first answer); its duration then
  sets the adaptive timeout. Until an activation's first chunk, every failed attempt is
  followed by a ping again (`request_failed`), and the observations after it wait the cap:
  the server answers pings but not within what was measured before (it may have been
  restarted on a slower device), so the history no longer bounds the wait.

Bounds to ERROR (max_consecutive_failures = N): a server that answers nothing: N unanswered
pings of `min(PROBE_TIMEOUT_MS, inference_timeout_ms)` each (about 5 s at the defaults, plus
the request pacing); a server that answers pings but never a chunk: one
`inference_timeout_ms` wait plus N - 1 pings (with latency known from an earlier activation, the
first wait is the adaptive one and a later one the cap); once the activation got a chunk, N
adaptive timeouts.

ROS-free and clock-free: the caller passes measurements in seconds.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

MIN_TIMEOUT_MS = 250.0
PROBE_TIMEOUT_MS = 1000.0
_WINDOW = 20


@dataclass(frozen=True)
class RefillConfig:
    action_step_hz: float = 15.0
    action_horizon: int = 16
    refill_threshold_steps: float = 0.0  # 0 = latency-aware (default); > 0 = fixed steps-left threshold
    min_refill_steps: float = 8.0  # re-plan at least this often (steps left), even at low latency
    latency_margin_ms: float = 60.0
    inference_timeout_ms: float = 10000.0  # the longest a request waits: the cap, and the wait when nothing is known
    replan_every_steps: float = 4.0  # against a server that inpaints: a request every this many executed steps (0 = off)

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
        if not 0 <= self.replan_every_steps <= horizon:
            raise ValueError(f"replan_every_steps must be 0 (off) or in (0, action_horizon={horizon}], "
                             f"got {self.replan_every_steps}")
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
        self._probe_pending = True
        self._answered_in_activation = False
        self._reported_s: float | None = None  # a latency the server reported in its ping reply
        self._failed_in_activation = False  # before the activation's first chunk: the history no longer bounds
        self._server_rtc = False  # the server's ping reply advertised real-time chunking (it inpaints the prefix)

    def activated(self) -> None:
        """A new activation: its first contact pings the server before the first observation."""
        self._probe_pending = True
        self._answered_in_activation = False
        self._failed_in_activation = False

    def request_failed(self) -> None:
        """A failed exchange: until this activation got a chunk, the next attempt pings again (short),
        so a server that stopped answering is found in PROBE_TIMEOUT_MS, not the cap."""
        if not self._answered_in_activation:
            self._probe_pending = True
            self._failed_in_activation = True  # next observation: the cap (see the module docstring)

    def probe_due(self) -> bool:
        """True while this activation has not yet heard from the server (no ping answered, no chunk)."""
        return self._probe_pending

    def probe_timeout_ms(self) -> float:
        return min(PROBE_TIMEOUT_MS, float(self.config.inference_timeout_ms))

    def probe_answered(self, reported_latency_s: float | None = None, rtc: bool = False) -> None:
        """The server answered the ping; `reported_latency_s`: the latency it reported, if any; `rtc`:
        whether it advertised real-time chunking (every ping answer sets it again)."""
        self._probe_pending = False
        self._server_rtc = bool(rtc)
        if reported_latency_s is not None and math.isfinite(reported_latency_s) and reported_latency_s > 0:
            self._reported_s = float(reported_latency_s)

    def record(self, latency_s: float, exchange_s: float) -> None:
        """One successful exchange: capture-to-queued latency and the request's own duration."""
        self._latency.append(float(latency_s))
        self._exchange.append(float(exchange_s))
        self._expected_s = max(self._latency[-1], float(np.percentile(self._latency, 95)))
        self._probe_pending = False
        self._answered_in_activation = True
        self._failed_in_activation = False

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
        if self.synchronous():  # slower than the chunk: ask as the queue runs dry, hold while it computes
            return remaining_steps / self._hz <= self._margin_s
        return remaining_steps / self._hz <= self.lead_s()

    @property
    def server_rtc(self) -> bool:
        """The last ping answer advertised real-time chunking."""
        return self._server_rtc

    def replanning(self) -> bool:
        """Replan every `replan_every_steps` and splice: the server inpaints, the parameter is on, and
        the policy is not slower than its chunk (then it runs synchronously, as without RTC)."""
        return self._server_rtc and self.config.replan_every_steps > 0 and self.budget() != "too_slow"

    def replan_due(self, executed_steps: float) -> bool:
        """While replanning: the robot executed `replan_every_steps` since the last request left."""
        return self.replanning() and executed_steps >= self.config.replan_every_steps - 1e-9

    def synchronous(self) -> bool:
        """The latency-aware refill runs execute-hold-execute (the policy is too slow to overlap)."""
        return self.config.refill_threshold_steps <= 0 and self.budget() == "too_slow"

    def known_latency_s(self) -> float | None:
        """The slowest recent exchange, else the server's reported latency, else None (nothing known)."""
        if self._exchange:
            return max(self._exchange)
        return self._reported_s

    def timeout_ms(self) -> float:
        cap = float(self.config.inference_timeout_ms)
        known = self.known_latency_s()
        if known is None or self._failed_in_activation:
            return cap
        return min(cap, max(MIN_TIMEOUT_MS, 2000.0 * known + self.config.latency_margin_ms))

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

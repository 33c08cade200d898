"""Real-time chunking on the client: what the server advertises, and whether a reply kept its frozen steps.

A server that inpaints (docs/wire.md) answers a request carrying `action_prefix` (the steps of the
current schedule that will still play, on the new observation's step grid) and `prefix_delay_steps`
d with a chunk whose first d steps are that prefix. The client then replans often and splices each
new chunk without a crossfade (latency.py, scheduler.py). It trusts no claim: a reply's frozen steps
are compared with what was sent, in robot units, and a reply that moved them by more than the
tolerance is crossfaded as any chunk from a server without real-time chunking, and counted.

ROS-free and stateless apart from `RtcCounters`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

RTC_KEY = "rtc"  # in the ping reply and in each chunk reply (our protocol and Isaac-GR00T's info map)


def advertised(reply) -> bool:
    """True when a ping reply says the server inpaints the prefix: `rtc` is true, or a map whose
    `inpaints` is true (or, without that key, `enabled`). Anything else (no key, a malformed value) is no."""
    if not isinstance(reply, dict):
        return False
    value = reply.get(RTC_KEY)
    if isinstance(value, dict):
        value = value.get("inpaints", value.get("enabled"))
    return value is True


@dataclass(frozen=True)
class ReplyReport:
    """What a chunk reply says real-time chunking did: `frozen_steps` 0 when it was not applied (with
    the server's `reason`), None when the reply does not say."""

    frozen_steps: int | None
    reason: str = ""


def reported(info) -> ReplyReport:
    """Read a chunk reply's `rtc` map (`{"applied": bool, "frozen_steps": n, "reason": ...}`); anything
    malformed reads as silent."""
    if not isinstance(info, dict) or not isinstance(info.get(RTC_KEY), dict):
        return ReplyReport(None)
    rtc = info[RTC_KEY]
    reason = str(rtc.get("reason", ""))[:200]
    if rtc.get("applied") is False:
        return ReplyReport(0, reason)
    frozen = rtc.get("frozen_steps")
    if isinstance(frozen, (int, np.integer)) and not isinstance(frozen, bool) and frozen >= 0:
        return ReplyReport(int(frozen), reason)
    return ReplyReport(None, reason)


@dataclass(frozen=True)
class SentPrefix:
    """What a request carried, in robot units: the schedule on the observation's step grid, and d."""

    planned: np.ndarray  # (k, dim)
    frozen_steps: int


def frozen_deviation(actions: np.ndarray, sent: SentPrefix, frozen_steps: int) -> float:
    """The largest |reply - prefix| over the first `frozen_steps` steps and every dimension (inf when
    the prefix is shorter than that)."""
    if frozen_steps > len(sent.planned) or frozen_steps > len(actions):
        return math.inf
    if frozen_steps <= 0:
        return 0.0
    return float(np.max(np.abs(np.asarray(actions[:frozen_steps], dtype=np.float64) - sent.planned[:frozen_steps])))


class RtcCounters:
    """What the status reports about replanning (`rtc` in the client's status)."""

    def __init__(self):
        self.replans = 0  # requests that carried a prefix to freeze (replanning against a server that inpaints)
        self.fallback_crossfades = 0  # replies whose frozen steps did not match (or were not applied)
        self.last_fallback = ""
        self.frozen_max_deviation = 0.0  # the largest |reply - prefix| on frozen steps seen, robot units

    def fallback(self, reason: str) -> None:
        self.fallback_crossfades += 1
        self.last_fallback = reason[:300]

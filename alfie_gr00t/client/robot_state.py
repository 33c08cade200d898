"""What the robot last reported: each dim's value and when it was measured (ROS-free).

A driver may name joints differently, report NaN, stall, or never report some joints at
all. So the state is kept per dim, with its own capture time, and every reader asks the
questions that matter before using it: which configured joints were never measured,
which hold a non-finite value, which are older than allowed. Nothing is ever assumed
to be at 0.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

import numpy as np

from alfie_gr00t import layout

# A header stamp is trusted when it lies within this window around the receiving clock
# (seconds into the future / into the past); otherwise the receive time is used instead.
STAMP_MAX_FUTURE_S = 0.05
STAMP_MAX_PAST_S = 1.0


def capture_time(stamp: float | None, now: float) -> float:
    """The header stamp when it is sane on the receiving clock, else the receive time `now`.

    Sane: set (non-zero), finite, at most 50 ms in the future and at most 1 s in the past.
    A driver without a synchronised clock (or publishing zero stamps) falls back to now."""
    if stamp is None or not math.isfinite(stamp) or stamp <= 0.0:
        return now
    if -STAMP_MAX_FUTURE_S <= now - stamp <= STAMP_MAX_PAST_S:
        return stamp
    return now


def fresh_mask(stamps, now: float, max_age_s: float):
    """At most `max_age_s` old, and not from the future: a stamp ahead of the clock by more than a
    header stamp may be means the clock jumped back since (sim time reset, bag loop)."""
    age = now - stamps
    return (age <= max_age_s) & (age >= -STAMP_MAX_FUTURE_S)


@dataclass(frozen=True)
class StateReading:
    """One consistent copy of the measured state (values NaN and stamps -inf where never measured)."""

    names: tuple[str, ...]
    values: np.ndarray
    stamps: np.ndarray
    required: np.ndarray  # bool per dim: must be measured before the robot may move

    def missing(self) -> list[str]:
        """Required dims never measured."""
        return [self.names[i] for i in np.flatnonzero(self.required & np.isneginf(self.stamps))]

    def invalid(self) -> list[str]:
        """Required dims measured with a non-finite value (NaN/inf)."""
        measured = ~np.isneginf(self.stamps)
        return [self.names[i] for i in np.flatnonzero(self.required & measured & ~np.isfinite(self.values))]

    def stale(self, now: float, max_age_s: float) -> list[str]:
        """Required, measured dims older than `max_age_s` (or from the future of a clock that jumped back)."""
        measured = ~np.isneginf(self.stamps)
        old = ~fresh_mask(self.stamps, now, max_age_s)
        return [self.names[i] for i in np.flatnonzero(self.required & measured & old)]

    def usable(self, now: float, max_age_s: float) -> np.ndarray:
        """Bool per dim: measured, finite and fresh."""
        return np.isfinite(self.values) & fresh_mask(self.stamps, now, max_age_s)

    def problems(self, now: float, max_age_s: float) -> dict[str, list[str]]:
        """{'missing': [...], 'invalid': [...], 'stale': [...]} with only the non-empty entries."""
        found = {"missing": self.missing(), "invalid": self.invalid(), "stale": self.stale(now, max_age_s)}
        return {k: v for k, v in found.items() if v}

    def capture_time(self) -> float:
        """When the required part of this state was measured (its oldest dim)."""
        return float(np.min(self.stamps[self.required]))

    def observation_vector(self) -> np.ndarray:
        """Values for a request: never-measured optional dims (e.g. no odometry twist) are 0."""
        return np.where(np.isneginf(self.stamps) & ~self.required, 0.0, self.values).astype(np.float32)


def describe_problems(problems: dict[str, list[str]]) -> str:
    labels = {"missing": "never measured", "invalid": "non-finite", "stale": "stale"}
    return "; ".join(f"{labels[k]}: {', '.join(v)}" for k, v in problems.items())


class MeasuredState:
    """The latest measured value of each dim, written by subscription callbacks, read by the
    inference thread and the motion gate. Thread-safe; readers get immutable copies."""

    def __init__(self, names, required_dims, clock=time.monotonic):
        self.names = tuple(names)
        dim = len(self.names)
        self._clock = clock
        self._lock = threading.Lock()
        self._values = np.full(dim, np.nan)
        self._stamps = np.full(dim, -np.inf)
        self._required = np.zeros(dim, dtype=bool)
        self._required[list(required_dims)] = True
        self._index = {name: i for i, name in enumerate(self.names)}
        self.unknown_names: set[str] = set()  # names a driver sent that the config does not know

    def update(self, values: dict[int, float], stamp: float | None = None) -> None:
        """Set some dims (index -> value), measured at `stamp` (a sane header stamp) or now."""
        now = self._clock()
        when = capture_time(stamp, now)
        with self._lock:
            values_copy, stamps_copy = self._values.copy(), self._stamps.copy()
            for index, value in values.items():
                values_copy[index] = float(value)
                stamps_copy[index] = when
            self._values, self._stamps = values_copy, stamps_copy

    def update_by_name(self, names, positions, stamp: float | None = None) -> None:
        """A JointState: known names update their dim; unknown ones are remembered for the status."""
        updates = {}
        for name, position in zip(names, positions):
            index = self._index.get(name)
            if index is None:
                if len(self.unknown_names) < 64:
                    self.unknown_names.add(str(name))
            else:
                updates[index] = position
        if updates:
            self.update(updates, stamp)

    def reading(self) -> StateReading:
        with self._lock:
            return StateReading(self.names, self._values, self._stamps, self._required)


def required_dims(state_msg_type: str, dim: int = layout.ACTION_DIM) -> range:
    """Dims that must be measured before the robot may move: every joint position; the base
    velocities too when the whole vector arrives at once (`float32_array`). With `joint_state`
    the base twist comes from an optional odometry topic and counts as 0 until it reports."""
    return range(0, dim) if state_msg_type == "float32_array" else range(layout.BASE_DIMS.stop, dim)

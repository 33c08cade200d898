"""The last check before a command reaches a motor (SPEC §5, §6).

Every command passes through `SafetyFilter.apply`: non-finite commands are rejected
(the previous command is held), then position/velocity limits and a per-tick change
limit are enforced. Whatever the policy sends, the output is finite and within limits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from alfie_gr00t import layout

_BASE_DIM_COUNT = layout.BASE_DIMS.stop  # dims 0-5: base velocities; the rest are joint positions


@dataclass(frozen=True)
class SafetyLimits:
    """Limits per dim: base velocity limits (dims 0-5) and joint position limits (6+).

    max_joint_step (rad) and max_base_step (velocity units) bound the change of one dim
    per command tick; for the base that is an acceleration limit.
    """

    lower: tuple[float, ...]
    upper: tuple[float, ...]
    max_joint_step: float = 0.05
    max_base_step: float = 0.02

    def __post_init__(self):
        # Accept lists (e.g. from YAML) but store immutable float tuples.
        object.__setattr__(self, "lower", tuple(float(v) for v in self.lower))
        object.__setattr__(self, "upper", tuple(float(v) for v in self.upper))
        if len(self.lower) != len(self.upper):
            raise ValueError(f"lower has {len(self.lower)} limits but upper has {len(self.upper)}")
        if len(self.lower) <= _BASE_DIM_COUNT:
            raise ValueError(
                f"limits need the {_BASE_DIM_COUNT} base dims plus at least one joint, got {len(self.lower)}"
            )
        for i, (lo, hi) in enumerate(zip(self.lower, self.upper)):
            if not (math.isfinite(lo) and math.isfinite(hi)):
                raise ValueError(f"limit of dim {i} is not finite: [{lo}, {hi}]")
            if lo > hi:
                raise ValueError(f"dim {i}: lower limit {lo} is above upper limit {hi}")
            if i < _BASE_DIM_COUNT and not lo <= 0.0 <= hi:
                raise ValueError(f"base velocity dim {i}: limits [{lo}, {hi}] must allow 0 (the hold command)")
        for name in ("max_joint_step", "max_base_step"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value}")

    @classmethod
    def default(cls) -> "SafetyLimits":
        """The Alfie defaults of SPEC §5 (from alfie_gr00t.layout)."""
        return cls(lower=layout.LOWER_LIMITS, upper=layout.UPPER_LIMITS)

    @property
    def dim(self) -> int:
        return len(self.lower)


@dataclass(frozen=True)
class SafetyResult:
    """What may be sent, and what the filter had to do to get there."""

    command: np.ndarray
    rejected: bool  # the input had a non-finite value; command is the (limited) previous one
    clamped: int  # dims changed by a limit (position/velocity or per-tick step)


class SafetyFilter:
    """Enforces SafetyLimits on each command tick and counts interventions."""

    def __init__(self, limits: SafetyLimits):
        self.limits = limits
        self._lower = np.asarray(limits.lower, dtype=np.float64)
        self._upper = np.asarray(limits.upper, dtype=np.float64)
        self._max_step = np.full(limits.dim, limits.max_joint_step, dtype=np.float64)
        self._max_step[:_BASE_DIM_COUNT] = limits.max_base_step
        self.rejected_nonfinite = 0  # commands rejected for NaN/inf
        self.clamped_ticks = 0  # ticks where at least one dim was limited

    def apply(self, command: np.ndarray, previous: np.ndarray) -> SafetyResult:
        """Limit `command` given `previous`, the last command sent.

        The first time, pass `hold_command(measured_state)` as previous. A command with
        any non-finite value is rejected whole: the previous command (clipped into
        limits) is returned. Otherwise: clip to limits, limit the change per tick
        against previous, clip again (limits win over the step limit when previous was
        outside them). `previous` must be finite: nothing safe can be derived otherwise.
        """
        cmd = self._as_vector(command, "command")
        prev = self._as_vector(previous, "previous")
        if not np.all(np.isfinite(prev)):
            raise ValueError("previous command must be finite")
        if not np.all(np.isfinite(cmd)):
            out = np.clip(prev, self._lower, self._upper)
            clamped = int(np.count_nonzero(out != prev))
            self.rejected_nonfinite += 1
            if clamped:
                self.clamped_ticks += 1
            return SafetyResult(out, True, clamped)
        out = np.clip(cmd, self._lower, self._upper)
        out = np.clip(out, prev - self._max_step, prev + self._max_step)
        out = np.clip(out, self._lower, self._upper)
        clamped = int(np.count_nonzero(out != cmd))
        if clamped:
            self.clamped_ticks += 1
        return SafetyResult(out, False, clamped)

    def _as_vector(self, value: np.ndarray, name: str) -> np.ndarray:
        vector = np.asarray(value, dtype=np.float64)
        if vector.shape != (self.limits.dim,):
            raise ValueError(f"{name} must have shape ({self.limits.dim},), got {vector.shape}")
        return vector


def hold_command(measured_state: np.ndarray) -> np.ndarray:
    """Stay where you are: the measured joint positions with base velocities (dims 0-5) zeroed."""
    state = np.array(measured_state, dtype=np.float64)  # a copy
    if state.ndim != 1 or state.shape[0] <= _BASE_DIM_COUNT:
        raise ValueError(f"measured_state must be a 1-D vector longer than {_BASE_DIM_COUNT}, got {state.shape}")
    state[:_BASE_DIM_COUNT] = 0.0
    return state

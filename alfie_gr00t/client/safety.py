"""The motion gate: the one place that decides what the robot is commanded (docs/design.md#safety-invariants).

Every outgoing command passes through `MotionGate`: policy steps, holds, e-stop stops and
the shutdown stop. The node only publishes what the gate emits; the gate owns the
reference (the last command it emitted), reads the measured state and its freshness, and
enforces the limits in robot units:

- every emitted number is finite;
- no joint moves more than its velocity limit x tick from the previous emitted command
  (holds included); the first command after activation starts from the fresh measured
  position, so it is within one tick's step of where the robot is (if the previous hold is
  still ramping when a new activation starts, it continues from that hold's last command);
- joints stay within their limits, or, when the robot was measured outside them, never go
  further out than the reference and come back no faster than the velocity limit;
- base velocity changes by at most its acceleration limit x tick, so soft holds (queue dry,
  activate:false, server death, stale inputs) ramp it to zero; e-stop and shutdown set it
  to zero at once.

A hold is where the robot is: each joint's fresh, finite measured position, or the last
emitted command for a joint whose measurement is stale, invalid or missing. A hold is a
short ramp (joints at their velocity limit, base at its deceleration), emitted one command
per tick until it arrives; then the gate is silent until the next policy step.

ROS-free, thread-safe, clock injected: the output sink is called with the lock held, so
commands leave in the order the gate decided them.
"""

from __future__ import annotations

import enum
import math
import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from alfie_gr00t import layout
from alfie_gr00t.client.robot_state import MeasuredState, describe_problems

_BASE = layout.BASE_DIMS


@dataclass(frozen=True)
class MotionLimits:
    """Limits per dim in robot units, and the tick they are enforced at.

    lower/upper: base velocity limits (dims 0-5) and joint position limits (6+).
    joint_velocity: rad/s per joint dim (6+); base_acceleration: m/s^2 and rad/s^2 (dims 0-5),
    also the deceleration of a soft hold.
    """

    lower: tuple[float, ...]
    upper: tuple[float, ...]
    joint_velocity: tuple[float, ...]
    base_acceleration: tuple[float, ...]
    tick_s: float

    def __post_init__(self):
        for name in ("lower", "upper", "joint_velocity", "base_acceleration"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        dim, base = len(self.lower), _BASE.stop
        _check(len(self.upper) == dim, f"lower has {dim} limits but upper has {len(self.upper)}")
        _check(dim > base, f"limits need the {base} base dims plus at least one joint, got {dim}")
        _check(len(self.joint_velocity) == dim - base,
               f"joint_velocity_limits needs {dim - base} entries (one per joint dim), got {len(self.joint_velocity)}")
        _check(len(self.base_acceleration) == base,
               f"base_acceleration_limits needs {base} entries, got {len(self.base_acceleration)}")
        for i, (lo, hi) in enumerate(zip(self.lower, self.upper)):
            _check(math.isfinite(lo) and math.isfinite(hi), f"limit of dim {i} is not finite: [{lo}, {hi}]")
            _check(lo <= hi, f"dim {i}: lower limit {lo} is above upper limit {hi}")
            if i < base:
                _check(lo <= 0.0 <= hi, f"base velocity dim {i}: limits [{lo}, {hi}] must allow 0 (the stop)")
        for name in ("joint_velocity", "base_acceleration"):
            bad = [v for v in getattr(self, name) if not (math.isfinite(v) and v > 0)]
            _check(not bad, f"{name} limits must be positive numbers, got {bad}")
        _check(math.isfinite(self.tick_s) and self.tick_s > 0, f"tick_s must be positive, got {self.tick_s}")

    @classmethod
    def from_config(cls, config) -> "MotionLimits":
        """From a ClientConfig (limits, velocity/acceleration limits, command rate)."""
        return cls(config.joint_lower_limits, config.joint_upper_limits, config.joint_velocity_limits,
                   config.base_acceleration_limits, 1.0 / config.command_rate_hz)

    @property
    def dim(self) -> int:
        return len(self.lower)

    def max_step(self) -> np.ndarray:
        """Largest change of each dim in one tick."""
        return np.asarray(self.base_acceleration + self.joint_velocity, dtype=np.float64) * self.tick_s


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


class CommandKind(str, enum.Enum):
    POLICY = "policy"
    HOLD = "hold"  # soft: base ramps down at its deceleration
    STOP = "stop"  # e-stop / shutdown: base zero at once
    PLAN = "plan"  # the rest of the schedule ahead of the reference, for trajectory outputs


@dataclass(frozen=True)
class Command:
    """What to publish. `joints` is None only for a stop before any position was ever known
    (then only the zero base velocity goes out). `vector` is the full layout vector. A PLAN
    command carries `path` (rows `dt` apart, limited like commands) and changes no reference."""

    kind: CommandKind
    vector: np.ndarray
    joints_known: bool
    reason: str = ""
    path: np.ndarray | None = None

    @property
    def base(self) -> np.ndarray:
        return self.vector[_BASE]

    @property
    def joints(self) -> np.ndarray | None:
        return self.vector[_BASE.stop:] if self.joints_known else None


class ActivationRefused(RuntimeError):
    def __init__(self, problems: dict[str, list[str]]):
        super().__init__(f"activation refused, robot state not usable: {describe_problems(problems)}")
        self.problems = problems


class MotionGate:
    """Every command the client sends, decided in one place. See the module docstring."""

    def __init__(self, limits: MotionLimits, measured: MeasuredState, max_state_age_s: float,
                 output: Callable[[Command], None] = lambda command: None, clock=time.monotonic):
        if measured.reading().values.shape != (limits.dim,):
            raise ValueError(f"measured state has {len(measured.names)} dims, limits have {limits.dim}")
        self.limits = limits
        self._measured = measured
        self._max_age = float(max_state_age_s)
        self._output = output
        self._clock = clock
        self._lower = np.asarray(limits.lower, dtype=np.float64)
        self._upper = np.asarray(limits.upper, dtype=np.float64)
        self._step = limits.max_step()
        self._lock = threading.RLock()
        self._reference: np.ndarray | None = None  # the last emitted vector
        self._armed = False  # policy steps allowed
        self._anchor_pending = False  # the next policy step starts from the fresh measured state
        self._ramp: np.ndarray | None = None  # hold target while a hold is being emitted
        self._ramp_kind = CommandKind.HOLD
        self._ramp_reason = ""
        self._in_policy = False
        # counters for the status
        self.policy_commands = 0
        self.hold_commands = 0
        self.holds_started = 0
        self.stops = 0
        self.rejected_nonfinite = 0
        self.limited_ticks = 0
        self.waiting_for_state = 0
        self.last_hold_reason = ""

    # -- events ------------------------------------------------------------------------------
    def arm(self) -> None:
        """Activation: allowed only when every required dim is measured, finite and fresh.

        Raises ActivationRefused naming the joints otherwise. The first policy step after this
        starts from the measured state of that moment."""
        with self._lock:
            problems = self._measured.reading().problems(self._clock(), self._max_age)
            if problems:
                raise ActivationRefused(problems)
            self._armed = True
            self._anchor_pending = True

    @property
    def armed(self) -> bool:
        return self._armed

    def watch(self, listener: Callable[[Command], None]) -> None:
        """Hand every command to `listener` too, right after the output and under the same lock: how a
        benchmark or a recorder sees exactly what the robot was sent. A listener must be quick and not raise."""
        output = self._output

        def output_then_listener(command: Command) -> None:
            output(command)
            listener(command)

        with self._lock:
            self._output = output_then_listener

    @property
    def engaged(self) -> bool:
        """Armed, or commanding (a policy step or a hold in progress): a shutdown must stop it."""
        return self._armed or self._reference is not None

    def plan(self, targets: np.ndarray, dt: float) -> Command | None:
        """Emit the same limits along a future path (rows `dt` apart), starting from the reference,
        as a PLAN command (the reference stays): for trajectory outputs. Through the same sink and
        lock as every other command, so a plan never goes out after a stop. None when not engaged."""
        with self._lock:
            if self._reference is None or not self._armed:
                return None
            step = self._step / self.limits.tick_s * dt
            ref = self._reference
            path = np.empty((len(targets), self.limits.dim))
            for row, target in enumerate(np.asarray(targets, dtype=np.float64)):
                ref = self._bounded(target if np.all(np.isfinite(target)) else ref, ref, step)
                path[row] = ref
            command = Command(CommandKind.PLAN, self._reference.copy(), True, "", path)
            self._output(command)
            return command

    def step(self, target: np.ndarray | None) -> Command | None:
        """The command tick. `target` is the scheduler's step (None when there is none, or when the
        client is not ACTIVE). Emits a policy command, the next command of a hold, or nothing."""
        with self._lock:
            if target is not None and self._armed:
                target = np.asarray(target, dtype=np.float64)
                if target.shape != (self.limits.dim,):
                    raise ValueError(f"target must have shape ({self.limits.dim},), got {target.shape}")
                if np.all(np.isfinite(target)):
                    return self._policy(target)
                self.rejected_nonfinite += 1
                return self._begin(CommandKind.HOLD, "non-finite policy step", disarm=False)
            if self._in_policy:
                return self._begin(CommandKind.HOLD, "no valid step" if self._armed else "not active", disarm=False)
            return self._continue()

    def hold(self, reason: str) -> Command | None:
        """Leave policy control softly (activate:false, failures, ...): hold where the robot is, base
        ramping down; the first command is emitted now. Policy steps stay off until `arm()`."""
        with self._lock:
            return self._begin(CommandKind.HOLD, reason, disarm=True)

    def stop(self, reason: str) -> Command | None:
        """E-stop or shutdown: base velocity zero at once, joints hold (rate-limited); emitted now."""
        with self._lock:
            self.stops += 1
            return self._begin(CommandKind.STOP, reason, disarm=True)

    # -- internals (lock held) -----------------------------------------------------------------
    def _policy(self, target: np.ndarray) -> Command | None:
        if self._anchor_pending:
            if self._reference is None:  # released: start from where the robot is measured now
                anchor = self._anchor()
                if anchor is None:
                    self.waiting_for_state += 1
                    return self._continue()
                self._reference = anchor
            # else a hold is still ramping: continue from its last command, never jump back
            self._anchor_pending = False
        self._ramp = None
        self._in_policy = True
        command = self._limited(target)
        self.policy_commands += 1
        return self._emit(CommandKind.POLICY, command, "")

    def _anchor(self) -> np.ndarray | None:
        """The fresh measured joints as the starting reference. The base starts from zero velocity,
        where any earlier command stream of ours ended, and ramps up at its acceleration limit."""
        reading = self._measured.reading()
        if reading.problems(self._clock(), self._max_age):
            return None
        anchor = reading.values.astype(np.float64)
        anchor[_BASE] = 0.0
        return anchor

    def _limited(self, target: np.ndarray) -> np.ndarray:
        out = self._bounded(target, self._reference, self._step)
        if np.any(out != target):
            self.limited_ticks += 1
        return out

    def _bounded(self, target: np.ndarray, ref: np.ndarray, step: np.ndarray) -> np.ndarray:
        """Clip into the limits (or no further out than `ref`), then at most `step` away from `ref`."""
        return np.clip(self._within_limits(target, ref), ref - step, ref + step)

    def _within_limits(self, target: np.ndarray, ref: np.ndarray) -> np.ndarray:
        """Within the limits, or, where `ref` is outside them, no further out than `ref`."""
        return np.clip(target, np.minimum(self._lower, ref), np.maximum(self._upper, ref))

    def _begin(self, kind: CommandKind, reason: str, disarm: bool) -> Command | None:
        if disarm:
            self._armed = False
            self._anchor_pending = False
        self._in_policy = False
        if self._reference is None:  # nothing commanded now: only a stop says anything
            if kind is not CommandKind.STOP:
                return None
            anchor = self._anchor()
            if anchor is None:  # nothing known about the joints: the zero twist alone
                return self._emit(kind, np.zeros(self.limits.dim), reason, joints_known=False, keep=False)
            self._reference = anchor
        if self._ramp is None:  # a new hold (one already ramping is re-targeted, not counted again)
            self.holds_started += 1
            self.last_hold_reason = reason
        self._ramp = self._hold_target()
        self._ramp_kind, self._ramp_reason = kind, reason
        return self._continue()

    def _hold_target(self) -> np.ndarray:
        reading = self._measured.reading()
        usable = reading.usable(self._clock(), self._max_age)
        target = self._within_limits(np.where(usable, reading.values, self._reference), self._reference)
        target[_BASE] = 0.0
        return target

    def _continue(self) -> Command | None:
        """The next command of a hold in progress (None when there is none)."""
        if self._ramp is None:
            return None
        ref = self._reference
        out = np.clip(self._ramp, ref - self._step, ref + self._step)  # exactly the target once within a step
        if self._ramp_kind is CommandKind.STOP:
            out[_BASE] = 0.0
        kind, reason = self._ramp_kind, self._ramp_reason
        arrived = np.array_equal(out, self._ramp)
        if arrived:
            self._ramp = None  # this is the hold's last command
        self.hold_commands += 1
        command = self._emit(kind, out, reason)
        if arrived and not self._armed:
            # Released: the robot may be moved by anything else now; the next command (a stop, or
            # the first step of a new activation) starts again from the fresh measured state.
            self._reference = None
        return command

    def _emit(self, kind: CommandKind, vector: np.ndarray, reason: str, joints_known: bool = True,
              keep: bool = True) -> Command:
        command = Command(kind, vector.copy(), joints_known, reason)
        if keep:
            self._reference = vector.copy()
        self._output(command)
        return command

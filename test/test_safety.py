"""MotionGate: whatever comes in (measurements, policy steps, events), every emitted command is
finite, rate-limited from the previous one, within limits (or no further out than the robot was
measured), and holds are where the robot is. Clock injected; no ROS."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alfie_gr00t.client.robot_state import MeasuredState, required_dims
from alfie_gr00t.client.safety import ActivationRefused, CommandKind, MotionGate, MotionLimits

DIM = 21
TICK = 0.01
NAMES = tuple(f"j{i}" for i in range(DIM))
# The table of docs/design.md#the-21-d-layout, written out independently of alfie_gr00t.layout.
SPEC_LOWER = np.array([-0.15] * 3 + [-0.5] * 3 + [
    -1.5, -1.0, -1.6, -1.6, -1.6, 0.0,
    -1.5, -1.5, -1.6, -1.6, -1.6, 0.0,
    -1.0, -1.1, -0.2])  # fmt: skip
SPEC_UPPER = np.array([0.15] * 3 + [0.5] * 3 + [
    1.5, 1.5, 1.6, 1.6, 1.6, 0.8,
    1.5, 1.0, 1.6, 2.7, 0.8, 0.8,
    0.5, 0.2, 0.1])  # fmt: skip
JOINT_VEL = np.array([1.5] * 5 + [3.0] + [1.5] * 5 + [3.0] + [1.5] * 3)
BASE_ACC = np.array([0.5] * 3 + [1.5] * 3)
STEP = np.concatenate([BASE_ACC, JOINT_VEL]) * TICK  # largest change per tick, per dim
MAX_AGE = 0.25
EPS = 1e-9


class Clock:
    def __init__(self, t=100.0):
        self.t = t

    def __call__(self):
        return self.t


def make_gate(clock=None):
    clock = clock or Clock()
    measured = MeasuredState(NAMES, required_dims("joint_state", DIM), clock=clock)
    out = []
    limits = MotionLimits(SPEC_LOWER, SPEC_UPPER, JOINT_VEL, BASE_ACC, TICK)
    gate = MotionGate(limits, measured, MAX_AGE, output=out.append, clock=clock)
    return gate, measured, clock, out


def middle():
    return (SPEC_LOWER + SPEC_UPPER) / 2.0


def measure_all(measured, values):
    measured.update(dict(enumerate(values)))


# -- limits and config ----------------------------------------------------------------------

def test_default_config_limits_equal_the_spec_table_and_robot_units():
    from alfie_gr00t.client.config import ClientConfig

    limits = ClientConfig().motion_limits()
    np.testing.assert_allclose(limits.lower, SPEC_LOWER)
    np.testing.assert_allclose(limits.upper, SPEC_UPPER)
    np.testing.assert_allclose(limits.max_step(), STEP)  # 1.5 rad/s at 100 Hz: 0.015 rad per tick


@pytest.mark.parametrize("change, fragment", [
    ({"joint_velocity": [1.5] * 14}, "joint_velocity_limits needs 15"),
    ({"joint_velocity": [0.0] + [1.5] * 14}, "positive"),
    ({"base_acceleration": [0.5] * 5}, "base_acceleration_limits needs 6"),
    ({"base_acceleration": [float("nan")] * 6}, "positive"),
    ({"lower": [0.1] + list(SPEC_LOWER[1:])}, "must allow 0"),
    ({"tick_s": 0.0}, "tick_s"),
])
def test_bad_limits_are_refused(change, fragment):
    values = dict(lower=SPEC_LOWER, upper=SPEC_UPPER, joint_velocity=JOINT_VEL, base_acceleration=BASE_ACC,
                  tick_s=TICK)
    values.update(change)
    with pytest.raises(ValueError, match=fragment):
        MotionLimits(**values)


# -- activation and state hygiene ----------------------------------------------------------

def test_activation_is_refused_naming_joints_never_measured():
    gate, measured, clock, out = make_gate()
    values = middle()
    measured.update_by_name([n for n in NAMES if n not in ("j18", "j19")], [values[i] for i in range(DIM)
                                                                          if NAMES[i] not in ("j18", "j19")])
    with pytest.raises(ActivationRefused, match="never measured: j18, j19"):
        gate.arm()
    assert not gate.armed and out == []


def test_activation_is_refused_for_nan_and_stale_joints():
    gate, measured, clock, out = make_gate()
    values = middle()
    values[11] = np.nan
    measure_all(measured, values)
    with pytest.raises(ActivationRefused, match="non-finite: j11"):
        gate.arm()
    values[11] = 0.1
    measure_all(measured, values)
    clock.t += MAX_AGE + 0.01
    with pytest.raises(ActivationRefused, match="stale"):
        gate.arm()


def test_unknown_driver_names_are_reported_not_mapped():
    gate, measured, clock, out = make_gate()
    measured.update_by_name(["head_yaw_joint", "j6"], [0.3, 0.2])
    assert measured.unknown_names == {"head_yaw_joint"}
    assert "j18" in measured.reading().missing()


def test_first_policy_command_is_one_step_from_the_measured_position():
    gate, measured, clock, out = make_gate()
    start = middle()
    start[19] = -0.6  # head pitch
    measure_all(measured, start)
    gate.arm()
    target = start.copy()
    target[19] = 0.0  # the policy wants the head at 0: far away
    command = gate.step(target)
    assert command.kind is CommandKind.POLICY
    assert abs(command.vector[19] - (-0.6)) == pytest.approx(STEP[19])
    np.testing.assert_allclose(command.vector[6:], np.clip(target[6:], start[6:] - STEP[6:], start[6:] + STEP[6:]))


def test_joint_measured_outside_its_limit_moves_back_at_the_velocity_limit():
    gate, measured, clock, out = make_gate()
    start = middle()
    start[19] = 0.35  # head pitch, limit 0.2
    measure_all(measured, start)
    gate.arm()
    first = gate.step(start).vector[19]  # the policy says "stay"
    assert first == pytest.approx(0.35)  # never further out, never a jump to the limit
    second = gate.step(np.where(np.arange(DIM) == 19, 0.0, start)).vector[19]
    assert second == pytest.approx(0.35 - STEP[19])


def test_policy_steps_are_refused_until_armed():
    gate, measured, clock, out = make_gate()
    measure_all(measured, middle())
    assert gate.step(middle()) is None and out == []


# -- holds -----------------------------------------------------------------------------------

def run_until_silent(gate, clock, limit=500):
    commands = []
    for _ in range(limit):
        clock.t += TICK
        command = gate.step(None)
        if command is None:
            return commands
        commands.append(command)
    raise AssertionError("the hold never finished")


def active_gate(start=None):
    gate, measured, clock, out = make_gate()
    start = middle() if start is None else start
    measure_all(measured, start)
    gate.arm()
    gate.step(start)
    return gate, measured, clock, out


def test_soft_hold_ramps_base_to_zero_at_the_deceleration_limit():
    gate, measured, clock, out = active_gate()
    moving = middle()
    moving[0] = 0.1  # 0.1 m/s forward
    for _ in range(100):  # accelerate to 0.1 m/s within the limits
        clock.t += TICK
        measure_all(measured, middle())
        gate.step(moving)
    assert out[-1].vector[0] == pytest.approx(0.1)
    first = gate.hold("activate:false")
    assert first.kind is CommandKind.HOLD and first.vector[0] == pytest.approx(0.1 - STEP[0])
    rest = run_until_silent(gate, clock)
    base = [first.vector[0]] + [c.vector[0] for c in rest]
    assert np.all(np.diff(base) <= EPS) and base[-1] == 0.0
    assert len(base) == math.ceil(0.1 / STEP[0])  # 0.5 m/s^2 from 0.1 m/s: 0.2 s


def test_estop_sets_base_to_zero_at_once_and_holds_joints_rate_limited():
    gate, measured, clock, out = active_gate()
    moving = middle()
    moving[3] = 0.2
    for _ in range(50):
        clock.t += TICK
        measure_all(measured, middle())
        gate.step(moving)
    stop = gate.stop("estop")
    assert stop.kind is CommandKind.STOP and np.all(stop.base == 0.0)
    assert not gate.armed
    after = [gate.step(moving) for _ in range(30)]  # policy steps are refused after a stop
    assert all(c is None or c.kind is CommandKind.STOP for c in after)


def test_hold_uses_the_fresh_measurement_and_never_a_nan():
    gate, measured, clock, out = active_gate()
    reading = middle()
    reading[11] = np.nan  # gripper reads NaN
    reading[8] += 0.01  # elbow slightly behind the command
    measure_all(measured, reading)
    hold = gate.hold("activate:false")
    commands = [hold] + run_until_silent(gate, clock)
    assert all(np.all(np.isfinite(c.vector)) for c in commands)
    assert commands[-1].vector[11] == pytest.approx(middle()[11])  # NaN joint: the last command
    assert commands[-1].vector[8] == pytest.approx(reading[8])  # fresh joint: where it is


def test_stale_state_never_becomes_a_hold_target():
    gate, measured, clock, out = active_gate()
    last = middle()
    last[8] += 0.3
    for _ in range(40):  # the policy moves the elbow; the state topic has stalled at the start
        clock.t += TICK
        gate.step(last)
    assert out[-1].vector[8] == pytest.approx(last[8])
    assert clock.t - 100.0 > MAX_AGE  # the measurement is stale now
    hold = gate.hold("stale inputs")
    assert hold.vector[8] == pytest.approx(last[8])  # the last command, not the stale 0.46 rad jump back
    assert run_until_silent(gate, clock) == []


def test_queue_dry_hold_keeps_control_and_resumes_smoothly():
    gate, measured, clock, out = active_gate()
    clock.t += TICK
    measure_all(measured, middle())
    hold = gate.step(None)  # the queue ran dry
    assert hold.kind is CommandKind.HOLD and gate.armed
    target = middle() + 0.2
    resumed = gate.step(target)
    assert resumed.kind is CommandKind.POLICY
    assert np.all(np.abs(resumed.vector - hold.vector) <= STEP + EPS)


def test_policy_beyond_the_limits_stops_at_the_limit():
    gate, measured, clock, out = active_gate()
    target = middle()
    target[19] = 5.0  # head pitch, limit 0.2
    for _ in range(200):
        clock.t += TICK
        measure_all(measured, out[-1].vector)
        gate.step(target)
    assert out[-1].vector[19] == pytest.approx(SPEC_UPPER[19])


def test_non_finite_policy_step_becomes_a_hold():
    gate, measured, clock, out = active_gate()
    bad = middle()
    bad[11] = np.nan
    command = gate.step(bad)
    assert command.kind is CommandKind.HOLD and np.all(np.isfinite(command.vector))
    assert gate.rejected_nonfinite == 1


def test_reactivation_during_a_hold_ramp_continues_from_its_last_command():
    gate, measured, clock, out = active_gate()
    target = middle()
    target[8] += 0.5
    for _ in range(30):
        clock.t += TICK
        gate.step(target)
    measured_now = middle()  # the robot lags behind the commands
    measure_all(measured, measured_now)
    last = gate.hold("activate:false").vector
    gate.arm()  # a new activation while the hold is still ramping
    first = gate.step(target).vector
    assert np.all(np.abs(first - last) <= STEP + EPS)


def test_after_release_the_next_activation_starts_from_the_measured_position():
    gate, measured, clock, out = active_gate()
    gate.hold("activate:false")
    run_until_silent(gate, clock)
    assert not gate.engaged
    moved = middle()
    moved[8] += 0.6  # someone moved the arm by hand while idle
    measure_all(measured, moved)
    gate.arm()
    first = gate.step(moved + 0.1).vector
    assert np.all(np.abs(first[6:] - moved[6:]) <= STEP[6:] + EPS)


def test_stop_before_anything_was_known_sends_only_the_zero_twist():
    gate, measured, clock, out = make_gate()
    stop = gate.stop("estop")
    assert stop.joints is None and np.all(stop.base == 0.0)


def test_plan_applies_the_same_limits_along_a_path():
    gate, measured, clock, out = active_gate()
    far = np.tile(middle() + 1.0, (5, 1))
    reference = out[-1].vector
    plan = gate.plan(far, 1 / 15)
    assert plan.kind is CommandKind.PLAN and out[-1] is plan  # emitted through the sink like every command
    np.testing.assert_array_equal(plan.vector, reference)
    steps = np.diff(np.vstack([reference, plan.path]), axis=0)
    assert np.all(np.abs(steps) <= STEP / TICK / 15 + EPS)
    assert np.all(plan.path <= np.maximum(SPEC_UPPER, reference) + EPS)
    gate.stop("estop")
    assert gate.plan(far, 1 / 15) is None  # nothing planned once stopped


# -- the property: random event sequences -------------------------------------------------

finite = st.floats(-3.0, 3.0, allow_nan=False)
wild = st.one_of(finite, st.just(float("nan")), st.just(float("inf")), st.just(-float("inf")),
                 st.floats(-1e6, 1e6, allow_nan=False))
# a measurement: 21 values (some outside the limits), dims reading NaN, dims left out of this update
measurement = st.tuples(st.just("measure"), st.lists(st.floats(-2.0, 2.0), min_size=DIM, max_size=DIM),
                        st.sets(st.integers(0, DIM - 1), max_size=2), st.sets(st.integers(0, DIM - 1), max_size=2))
policy = st.tuples(st.just("policy"), st.lists(wild, min_size=DIM, max_size=DIM), st.integers(1, 150))
events = st.one_of(
    measurement, policy,
    st.tuples(st.just("tick"), st.integers(1, 40)),  # time passes, no target (queue dry / not active)
    st.tuples(st.just("stall"), st.floats(0.0, 1.0)),  # the state topic stalls
    st.tuples(st.just("arm")), st.tuples(st.just("hold")), st.tuples(st.just("stop")),
)


class Checker:
    """Checks each emitted command against the previous one and the measured state."""

    def __init__(self, gate, measured, clock):
        self.gate, self.measured, self.clock = gate, measured, clock
        self.previous = None

    def check(self, command, engaged_before):
        v = command.vector
        assert np.all(np.isfinite(v)), f"non-finite command {v}"
        assert np.all(v[:6] >= SPEC_LOWER[:6] - EPS) and np.all(v[:6] <= SPEC_UPPER[:6] + EPS), "base beyond limits"
        if command.kind is CommandKind.STOP:
            assert np.all(v[:6] == 0.0), "a stop must zero the base at once"
        if engaged_before and self.previous is not None:
            reference = self.previous
            delta = np.abs(v - reference)
            base_ok = command.kind is CommandKind.STOP or np.all(delta[:6] <= STEP[:6] + EPS)
            assert base_ok, f"base changed by {delta[:6]} in one tick"
            assert np.all(delta[6:] <= STEP[6:] + EPS), f"joint jump {delta[6:].max()} in one tick"
        elif command.joints is not None:
            # a fresh start: from the measured position, every joint within one step of it
            reading = self.measured.reading()
            assert not reading.problems(self.clock(), MAX_AGE), "started from an unusable measurement"
            reference = reading.values
            assert np.all(np.abs(v[6:] - reference[6:]) <= STEP[6:] + EPS), "first command not near measured"
        else:
            reference = None
        if reference is not None and command.joints is not None:
            low = np.minimum(SPEC_LOWER[6:], reference[6:]) - EPS
            high = np.maximum(SPEC_UPPER[6:], reference[6:]) + EPS
            assert np.all(v[6:] >= low) and np.all(v[6:] <= high), "joint beyond limits and moving outward"
        if command.joints is not None:
            self.previous = v.copy()


@settings(max_examples=300, deadline=None)
@given(st.lists(events, min_size=1, max_size=40))
def test_every_command_satisfies_the_invariants(sequence):
    gate, measured, clock, out = make_gate()
    checker = Checker(gate, measured, clock)

    def emit(action):
        engaged = gate.engaged
        before = len(out)
        action()
        for command in out[before:]:
            checker.check(command, engaged)
            engaged = True
        if not gate.engaged:  # released: the next command starts again from the measured state
            checker.previous = None

    for event in sequence:
        kind = event[0]
        if kind == "measure":
            values, nan_dims, skip = event[1], event[2], event[3]
            measured.update({i: (np.nan if i in nan_dims else v) for i, v in enumerate(values) if i not in skip})
        elif kind == "stall":
            clock.t += event[1]
        elif kind == "arm":
            try:
                gate.arm()
            except ActivationRefused:
                pass
        elif kind == "hold":
            emit(lambda: gate.hold("test"))
        elif kind == "stop":
            emit(lambda: gate.stop("test"))
        elif kind == "policy":
            target = np.asarray(event[1])
            for _ in range(event[2]):
                clock.t += TICK
                emit(lambda: gate.step(target))
        elif kind == "tick":
            for _ in range(event[1]):
                clock.t += TICK
                emit(lambda: gate.step(None))
    # wherever it ended, a shutdown stop is finite, zero-twist and follows the same rules
    emit(lambda: gate.stop("shutdown"))
    assert out[-1].kind is CommandKind.STOP and np.all(out[-1].base == 0.0)
    # and silence comes only after a finished hold: the last command before it has zero base
    for _ in range(600):
        clock.t += TICK
        if gate.step(None) is None:
            break
    assert np.all(out[-1].base == 0.0)

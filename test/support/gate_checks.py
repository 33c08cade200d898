"""The MotionGate's invariants, checked on every command a test robot collected."""

import numpy as np

from alfie_gr00t import layout

from support.client_harness import LOWER, UPPER

TICK = 0.01
JOINT_STEP = TICK * np.array(([1.5] * 5 + [3.0]) * 2 + [1.5] * 3)  # default velocity limits x tick
BASE_STEP = TICK * np.array([0.5] * 3 + [1.5] * 3)
EPS = 1e-6


def joint_array(messages):
    return np.array([m.position for m in messages], dtype=np.float64).reshape(-1, 15)


def twist_array(messages):
    return np.array([[m.linear.x, m.linear.y, m.linear.z, m.angular.x, m.angular.y, m.angular.z]
                     for m in messages]).reshape(-1, 6)


def assert_gate_invariants(robot, measured_start=None):
    """Finite; no joint moves more than its velocity limit per tick between consecutive commands;
    within limits or no further out than where it started; the base within its acceleration limit
    (a stop's zero excepted)."""
    joints = joint_array(robot.joints.messages)
    assert np.all(np.isfinite(joints)), "a non-finite joint command was published"
    steps = np.abs(np.diff(joints, axis=0))
    assert np.all(steps <= JOINT_STEP + EPS), f"joint jump of {steps.max():.4f} rad in one tick"
    if len(joints) and measured_start is not None:
        assert np.all(np.abs(joints[0] - measured_start) <= JOINT_STEP + EPS), "first command not near measured"
    start = joints[0] if len(joints) else None
    if start is not None:
        low = np.minimum(LOWER[layout.JOINT_DIMS], start) - EPS
        high = np.maximum(UPPER[layout.JOINT_DIMS], start) + EPS
        assert np.all((joints >= low) & (joints <= high)), "joint beyond its limit and moving outward"
    twists = twist_array(robot.twists.messages)
    assert np.all(np.isfinite(twists))
    base_steps = np.abs(np.diff(twists, axis=0))
    to_zero = np.all(twists[1:] == 0.0, axis=1)
    assert np.all((base_steps <= BASE_STEP + EPS).all(axis=1) | to_zero), "base velocity jumped"

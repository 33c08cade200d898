"""LatestInputs (ROS-free): the newest frame per camera, stale refusals, and how old frames are when
they are stored and when the inference thread takes its snapshot."""

import math

import pytest

from alfie_gr00t import layout
from alfie_gr00t.client.inputs import LatestInputs, StaleInputs
from alfie_gr00t.client.robot_state import MeasuredState, required_dims

CAMERAS = ("a", "b")


class Clock:
    def __init__(self, t=100.0):
        self.t = t

    def __call__(self):
        return self.t


def make_inputs(clock):
    measured = MeasuredState(layout.JOINT_NAMES, required_dims("joint_state"), clock=clock)
    return LatestInputs(CAMERAS, measured, "task", clock=clock), measured


def measure_state(measured):
    measured.update({i: 0.1 for i in required_dims("joint_state")})


def test_frame_delay_is_capture_to_stored_and_age_is_capture_to_snapshot():
    clock = Clock()
    inputs, measured = make_inputs(clock)
    inputs.store_frame("a", b"frame-a", stamp=clock.t - 0.020)  # arrives 20 ms after capture
    inputs.store_frame("b", b"frame-b", stamp=clock.t - 0.050)
    measure_state(measured)
    delay = inputs.frame_delay_ms.snapshot()
    assert delay["count"] == 2 and delay["mean"] == pytest.approx(35.0, abs=1e-6)
    clock.t += 0.100  # the inference thread reads 100 ms later
    snap = inputs.snapshot(max_age_s=0.25)
    assert snap.frames == {"a": b"frame-a", "b": b"frame-b"}
    age = inputs.frame_age_ms.snapshot()
    assert age["count"] == 2
    assert sorted([age["last"], 2 * age["mean"] - age["last"]]) == pytest.approx([120.0, 150.0], abs=1e-6)


def test_the_snapshot_takes_the_newest_frame_and_its_age():
    clock = Clock()
    inputs, measured = make_inputs(clock)
    measure_state(measured)
    for k in range(5):  # five frames 33 ms apart, each stored at once
        clock.t += 0.033
        inputs.store_frame("a", f"a{k}".encode(), stamp=clock.t)
        inputs.store_frame("b", f"b{k}".encode(), stamp=clock.t)
    measure_state(measured)
    snap = inputs.snapshot(max_age_s=0.25)
    assert snap.frames == {"a": b"a4", "b": b"b4"}
    assert inputs.frame_age_ms.snapshot()["p99"] == pytest.approx(0.0, abs=1e-6)


def test_stale_frames_are_refused_and_their_age_still_counted():
    clock = Clock()
    inputs, measured = make_inputs(clock)
    inputs.store_frame("a", b"old", stamp=clock.t)
    inputs.store_frame("b", b"new", stamp=clock.t)
    clock.t += 0.400
    inputs.store_frame("b", b"newer", stamp=clock.t)
    measure_state(measured)
    with pytest.raises(StaleInputs) as refused:
        inputs.snapshot(max_age_s=0.25)
    assert refused.value.names == ["a"]
    age = inputs.frame_age_ms.snapshot()
    assert age["count"] == 2 and max(age["last"], 2 * age["mean"] - age["last"]) == pytest.approx(400.0, abs=1e-6)


def test_a_camera_that_never_arrived_has_no_age():
    clock = Clock()
    inputs, measured = make_inputs(clock)
    inputs.store_frame("a", b"x", stamp=clock.t)
    measure_state(measured)
    with pytest.raises(StaleInputs) as refused:
        inputs.snapshot(max_age_s=0.25)
    assert refused.value.names == ["b"]
    assert inputs.frame_age_ms.snapshot()["count"] == 1


def test_an_insane_stamp_counts_from_the_arrival():
    """A stamp from another clock (10 s old here) is not trusted: the frame counts as captured on arrival,
    so its delay is 0, not 10 000 ms."""
    clock = Clock()
    inputs, _ = make_inputs(clock)
    inputs.store_frame("a", b"x", stamp=clock.t - 10.0)
    inputs.store_frame("b", b"y", stamp=None)
    delay = inputs.frame_delay_ms.snapshot()
    assert delay["count"] == 2 and delay["mean"] == 0.0
    assert all(math.isfinite(v) for v in delay.values())


def test_frame_age_percentiles_follow_the_recent_frames():
    """The rolling window (2000 frames) keeps the recent ones: after 1100 snapshots of two 10 ms old
    frames and then 20 of two 300 ms old ones (stale, refused), p50 is 10 ms and p99 300 ms."""
    clock = Clock()
    inputs, measured = make_inputs(clock)
    for old in [0.010] * 1100 + [0.300] * 20:
        clock.t += 0.001
        inputs.store_frame("a", b"x", stamp=clock.t - old)
        inputs.store_frame("b", b"y", stamp=clock.t - old)
        measure_state(measured)
        try:
            inputs.snapshot(max_age_s=0.25)
        except StaleInputs:
            pass
    age = inputs.frame_age_ms.snapshot()
    assert age["count"] == 2240
    assert age["p50"] == pytest.approx(10.0, abs=1e-6) and age["p99"] == pytest.approx(300.0, abs=1e-6)

"""LatestInputs (ROS-free): the newest frame per camera, stale refusals, and how old frames are when
they are stored and when the inference thread takes its snapshot."""

import math

import numpy as np
import pytest

from alfie_gr00t import layout
from alfie_gr00t.wire import images
from alfie_gr00t.client.inputs import LatestInputs, StaleInputs, frame_to_jpeg, frame_to_rgb, image_from_cdr
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


# -- frames read from their CDR bytes (no rclpy deserializer) ----------------------------------------
def _serialized(msg):
    from rclpy.serialization import serialize_message
    return serialize_message(msg)


@pytest.mark.parametrize("encoding,channels", [("rgb8", 3), ("bgr8", 3), ("mono8", 1), ("bgra8", 4)])
@pytest.mark.parametrize("frame_id", ["", "cam", "front_camera_optical"])
def test_image_from_cdr_equals_the_deserialized_message(encoding, channels, frame_id):
    sensor_msgs = pytest.importorskip("sensor_msgs.msg")
    rng = np.random.default_rng(len(frame_id) + channels)
    msg = sensor_msgs.Image(height=5, width=7, encoding=encoding, step=7 * channels + 3)
    msg.header.frame_id = frame_id
    msg.header.stamp.sec, msg.header.stamp.nanosec = 12, 345
    msg.data = rng.integers(0, 255, msg.step * msg.height, dtype=np.uint8).tobytes()
    cdr = image_from_cdr(_serialized(msg))
    assert (cdr.height, cdr.width, cdr.encoding, cdr.step) == (5, 7, encoding, msg.step)
    assert bytes(cdr.data) == bytes(msg.data)
    np.testing.assert_array_equal(frame_to_rgb(cdr), images.to_rgb(bytes(msg.data), 5, 7, encoding, msg.step))


def test_compressed_image_from_cdr_keeps_format_and_bytes():
    sensor_msgs = pytest.importorskip("sensor_msgs.msg")
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[:, :4] = 200
    msg = sensor_msgs.CompressedImage(format="jpeg")
    msg.header.frame_id = "wrist"
    msg.data = images.encode_jpeg(rgb, 95)
    cdr = image_from_cdr(_serialized(msg), compressed=True)
    assert cdr.encoding is None and cdr.format == "jpeg" and bytes(cdr.data) == bytes(msg.data)
    assert frame_to_rgb(cdr).shape == (8, 8, 3)
    assert frame_to_jpeg(cdr, 8, 8, 90) == bytes(msg.data)  # a JPEG at the model size passes through


def test_image_from_cdr_leaves_other_encodings_and_broken_bytes_to_the_deserializer():
    sensor_msgs = pytest.importorskip("sensor_msgs.msg")
    msg = sensor_msgs.Image(height=2, width=2, encoding="bayer_rggb8", step=2, data=bytes(4))
    assert image_from_cdr(_serialized(msg)) is None
    good = _serialized(sensor_msgs.Image(height=2, width=2, encoding="rgb8", step=6, data=bytes(12)))
    for broken in (b"", good[:3], good[:20], b"\x01" + good[1:]):
        assert image_from_cdr(broken) is None

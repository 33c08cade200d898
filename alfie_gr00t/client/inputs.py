"""The latest camera frames and robot state, and the snapshot a request is built from."""

from __future__ import annotations

import struct
import threading
import time
from dataclasses import dataclass

import numpy as np

from alfie_gr00t.client.robot_state import MeasuredState, capture_time, describe_problems, fresh_mask
from alfie_gr00t.stats import RollingStats
from alfie_gr00t.wire import images

try:  # cv_bridge is a ROS system package (not on PyPI); numpy conversion covers the common encodings.
    from cv_bridge import CvBridge
except ImportError:  # pragma: no cover - depends on the machine
    CvBridge = None


class StaleInputs(RuntimeError):
    """Inputs that may not be sent: cameras that are stale or never arrived, and state dims
    that are stale, never measured or non-finite (each named)."""

    def __init__(self, names: list[str], detail: str = ""):
        super().__init__(f"stale or unusable inputs: {detail or ', '.join(names)}")
        self.names = names


@dataclass(frozen=True)
class Snapshot:
    frames: dict  # camera -> the latest sensor_msgs Image/CompressedImage (or any object with the same fields)
    state: np.ndarray
    state_time: float  # the observation's capture time on the client clock (the state's oldest dim)
    language: str


class LatestInputs:
    """The newest camera frames (with capture times) and task, plus the shared MeasuredState;
    written by callbacks, read by the inference thread.

    Two rolling figures say how old the frames are (ms, per camera frame): `frame_delay_ms`, capture
    to stored (transport and the wait for the subscription's callback), and `frame_age_ms`, capture
    to the snapshot the inference thread takes (the delay plus the time the frame waited here)."""

    def __init__(self, camera_names, measured: MeasuredState, task: str, clock=time.monotonic):
        self._lock = threading.Lock()
        self._clock = clock
        self._frames: dict = {}
        self._frame_times: dict[str, float] = {}
        self._camera_names = tuple(camera_names)
        self.measured = measured
        self.task = task
        self.frame_delay_ms = RollingStats(window=2000)
        self.frame_age_ms = RollingStats(window=2000)

    def store_frame(self, name: str, msg, stamp: float | None = None) -> None:
        """A camera frame, captured at `stamp` (its header stamp, trusted only when sane) or now.
        Called from the subscription callback: it only keeps the reference (serialized bytes are fine)."""
        now = self._clock()
        when = capture_time(stamp, now)
        with self._lock:
            self._frames[name] = msg
            self._frame_times[name] = when
        self.frame_delay_ms.add((now - when) * 1000.0)

    def snapshot(self, max_age_s: float) -> Snapshot:
        """The latest inputs, or StaleInputs naming every camera and state dim that may not be sent."""
        now = self._clock()
        reading = self.measured.reading()
        with self._lock:
            times = {n: self._frame_times[n] for n in self._camera_names if n in self._frame_times}
            stale = [n for n in self._camera_names
                     if not fresh_mask(times.get(n, -np.inf), now, max_age_s)]
            frames = dict(self._frames)
        for when in times.values():
            self.frame_age_ms.add((now - when) * 1000.0)
        problems = reading.problems(now, max_age_s)
        if stale or problems:
            detail = "; ".join(filter(None, [f"cameras: {', '.join(stale)}" if stale else "",
                                             describe_problems(problems)]))
            raise StaleInputs(stale + [n for names in problems.values() for n in names], detail)
        return Snapshot(frames, reading.observation_vector(), reading.capture_time(), self.task)


def header_stamp_from_cdr(data: bytes) -> float | None:
    """The header stamp of a serialized sensor_msgs Image/CompressedImage (CDR: 4-byte encapsulation,
    then std_msgs/Header starting with stamp.sec int32, stamp.nanosec uint32). None if unreadable."""
    if len(data) < 12 or data[0] != 0:
        return None
    order = "<" if data[1] & 1 else ">"
    sec, nanosec = struct.unpack_from(order + "iI", data, 4)
    return sec + nanosec * 1e-9 if nanosec < 1_000_000_000 else None


# -- frames -------------------------------------------------------------------------------
_bridge = None


def frame_to_rgb(msg) -> np.ndarray:
    """sensor_msgs Image or CompressedImage -> (H, W, 3) uint8 RGB."""
    global _bridge
    if hasattr(msg, "encoding"):
        if CvBridge is not None:
            _bridge = _bridge or CvBridge()
            return _bridge.imgmsg_to_cv2(msg, desired_encoding="rgb8")
        return images.to_rgb(msg.data, msg.height, msg.width, msg.encoding, msg.step)
    return images.decode_jpeg(bytes(msg.data), max_side=8192)


def frame_to_jpeg(msg, width: int, height: int, quality: int) -> bytes:
    """JPEG at the model size; a compressed frame that already is one passes through untouched."""
    if not hasattr(msg, "encoding"):
        data = bytes(msg.data)
        try:
            if images.jpeg_dimensions(data) == (width, height):
                return data
        except images.ImageError:
            pass
    return images.encode_jpeg(images.resize(frame_to_rgb(msg), width, height), quality)


def frame_to_model_rgb(msg, width: int, height: int) -> np.ndarray:
    return np.ascontiguousarray(images.resize(frame_to_rgb(msg), width, height))

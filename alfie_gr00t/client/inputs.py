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


@dataclass(frozen=True)
class CdrImage:
    """The fields of a serialized sensor_msgs/Image (or CompressedImage: `encoding` None, `format` set),
    read straight from its CDR bytes: `data` is a view of them, nothing is copied."""
    data: memoryview
    height: int = 0
    width: int = 0
    encoding: str | None = None
    step: int = 0
    format: str = ""


_PLAIN_ENCODINGS = frozenset({"rgb8", "bgr8", "mono8", "rgba8", "bgra8"})


def image_from_cdr(data, compressed: bool = False) -> CdrImage | None:
    """A serialized Image/CompressedImage read without rclpy's deserializer (which copies the pixels into
    a Python array, ~0.8 ms a 640x480 frame with the interpreter lock held). None when the bytes are not
    a well-formed message of that type or the encoding is one only cv_bridge converts: the caller then
    deserializes as usual."""
    view = memoryview(data)
    try:
        if len(view) < 12 or view[0] != 0:
            return None
        reader = _CdrReader(view, "<" if view[1] & 1 else ">")
        reader.skip(8)  # stamp
        reader.string()  # frame_id
        if compressed:
            fmt = reader.string()
            return CdrImage(reader.octets(), format=fmt)
        height, width = reader.uint32(), reader.uint32()
        encoding = reader.string()
        if encoding not in _PLAIN_ENCODINGS:
            return None
        reader.skip(1)  # is_bigendian (8-bit encodings only)
        step = reader.uint32()
        return CdrImage(reader.octets(), height, width, encoding, step)
    except (struct.error, UnicodeDecodeError, ValueError):
        return None


class _CdrReader:
    """Plain CDR: primitives aligned to their size, counted from after the 4-byte encapsulation."""

    def __init__(self, view: memoryview, order: str):
        self._view, self._order, self._pos = view, order, 4

    def skip(self, n: int) -> None:
        self._pos += n

    def uint32(self) -> int:
        self._pos += -(self._pos - 4) % 4
        value = struct.unpack_from(self._order + "I", self._view, self._pos)[0]
        self._pos += 4
        return value

    def string(self) -> str:
        n = self.uint32()
        end = self._pos + n
        if n == 0 or end > len(self._view):
            raise ValueError("string past the end")
        text = bytes(self._view[self._pos:end - 1]).decode("utf-8")
        self._pos = end
        return text

    def octets(self) -> memoryview:
        n = self.uint32()
        if self._pos + n > len(self._view):
            raise ValueError("sequence past the end")
        return self._view[self._pos:self._pos + n]


# -- frames -------------------------------------------------------------------------------
_bridge = None


def frame_to_rgb(msg) -> np.ndarray:
    """sensor_msgs Image or CompressedImage -> (H, W, 3) uint8 RGB."""
    global _bridge
    if isinstance(msg, CdrImage):
        if msg.encoding is not None:
            return images.to_rgb(msg.data, msg.height, msg.width, msg.encoding, msg.step)
        return images.decode_jpeg(bytes(msg.data), max_side=8192)
    if hasattr(msg, "encoding"):
        if CvBridge is not None:
            _bridge = _bridge or CvBridge()
            return _bridge.imgmsg_to_cv2(msg, desired_encoding="rgb8")
        return images.to_rgb(msg.data, msg.height, msg.width, msg.encoding, msg.step)
    return images.decode_jpeg(bytes(msg.data), max_side=8192)


def frame_to_jpeg(msg, width: int, height: int, quality: int) -> bytes:
    """JPEG at the model size; a compressed frame that already is one passes through untouched."""
    if getattr(msg, "encoding", None) is None:
        data = bytes(msg.data)
        try:
            if images.jpeg_dimensions(data) == (width, height):
                return data
        except images.ImageError:
            pass
    return images.encode_jpeg(images.resize(frame_to_rgb(msg), width, height), quality)


def frame_to_model_rgb(msg, width: int, height: int) -> np.ndarray:
    return np.ascontiguousarray(images.resize(frame_to_rgb(msg), width, height))

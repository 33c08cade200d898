"""Episodes from any bag of the robot (a teleoperation demo recorded with `ros2 bag record`), through a
topic map (dataset/topic_map.py). ROS-free: messages decoded from the bag's own definitions.

Two passes over each bag: the first decodes everything but the camera payloads (their times only)
and resamples every episode; the second decodes only the frames the grids show (a 30 Hz camera
exported at 15 fps: every other frame). Raw `sensor_msgs/Image` frames are kept as PNG (lossless)
until the video is written; `CompressedImage` frames as they are.

Times are the bag's receive times (rosbag2's log time) unless the map says `time: header`.
Episodes: one per bag, or cut by a marker topic. Each episode's span is where every input is live
(from the latest first sample to the earliest last sample), inside its boundaries.
"""

from __future__ import annotations

import numpy as np

from alfie_gr00t import layout
from alfie_gr00t.dataset.episode import DEFAULT_FPS, DEFAULT_MAX_GAP_S, ExportError, Streams, resample_streams
from alfie_gr00t.dataset.topic_map import ZERO, TopicMap

IMAGE_TYPES = ("sensor_msgs/Image", "sensor_msgs/CompressedImage")
_CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "8UC1": 1, "8UC3": 3}


def _twist(msg) -> list:
    return [msg.linear.x, msg.linear.y, msg.linear.z, msg.angular.x, msg.angular.y, msg.angular.z]


def _by_name(names, values, index: dict, dim: int) -> np.ndarray:
    row = np.full(dim, np.nan)
    for name, value in zip(names, values):
        if name in index:
            row[index[name]] = value
    return row


class _Collector:
    """Pass 1: every input of one bag as time series."""

    def __init__(self, tmap: TopicMap, joint_names: tuple, source: str):
        self.tmap, self.names, self.source = tmap, joint_names, source
        self.dim = len(joint_names)
        self.index = {n: i for i, n in enumerate(joint_names)}
        self.series: dict[str, tuple[list, list]] = {}  # role -> (times, values)
        self.types: dict[str, str] = {}
        self.warnings: list[str] = []
        self.roles: dict[str, list] = {}
        for cam, topic in tmap.cameras.items():
            self.roles.setdefault(topic, []).append(f"camera {cam}")
        for role, topic in (("state joints", tmap.state_joints), ("state base", tmap.state_base),
                            ("state array", tmap.state_array), ("action", tmap.action_topic),
                            ("action base", tmap.action_base), ("task", tmap.task_topic), ("marker", tmap.marker)):
            if topic and topic != ZERO:
                self.roles.setdefault(topic, []).append(role)

    def time_of(self, message, msg) -> float:
        if self.tmap.time == "header" and hasattr(msg, "header"):
            return float(msg.header.stamp.sec) + float(msg.header.stamp.nanosec) * 1e-9
        return message.log_time * 1e-9

    def add(self, role: str, t: float, value) -> None:
        times, values = self.series.setdefault(role, ([], []))
        times.append(t)
        values.append(value)

    def take(self, message, msg, kind: str) -> None:
        self.types.setdefault(message.topic, kind)
        t = self.time_of(message, msg)
        for role in self.roles.get(message.topic, ()):
            self._take(role, t, msg, kind, message.topic)

    def _take(self, role: str, t: float, msg, kind: str, topic: str) -> None:
        expect = {"state joints": ("sensor_msgs/JointState",), "state base": ("geometry_msgs/Twist",),
                  "action base": ("geometry_msgs/Twist",), "state array": ("std_msgs/Float32MultiArray",),
                  "task": ("std_msgs/String",), "marker": ("std_msgs/Bool", "std_msgs/String"),
                  "action": {"joint_state": ("sensor_msgs/JointState",),
                             "joint_trajectory": ("trajectory_msgs/JointTrajectory",),
                             "array": ("std_msgs/Float32MultiArray",)}.get(self.tmap.action_source, ())}
        wanted = IMAGE_TYPES if role.startswith("camera") else expect[role]
        if kind not in wanted:
            raise ExportError(f"{self.source}: {topic} ({role}) is {kind}, the topic map needs {' or '.join(wanted)}")
        if role.startswith("camera"):
            self.add(role, t, None)
        elif role in ("state joints",) or (role == "action" and kind == "sensor_msgs/JointState"):
            self.add(role, t, _by_name(msg.name, msg.position, self.index, self.dim))
        elif role == "action" and kind == "trajectory_msgs/JointTrajectory":
            if msg.points:
                self.add(role, t, _by_name(msg.joint_names, msg.points[0].positions, self.index, self.dim))
        elif role in ("state base", "action base"):
            row = np.full(self.dim, np.nan)
            row[layout.BASE_DIMS] = _twist(msg)
            self.add(role, t, row)
        elif role in ("state array", "action"):
            if len(msg.data) != self.dim:
                self.warnings.append(f"{topic}: an array of {len(msg.data)} values (expected {self.dim}) skipped")
                return
            self.add(role, t, np.asarray(msg.data, dtype=np.float64))
        elif role == "task":
            self.add(role, t, msg.data)
        else:  # marker
            self.add(role, t, bool(msg.data) if kind == "std_msgs/Bool" else str(msg.data))

    def series_of(self, role: str):
        times, values = self.series.get(role, ([], []))
        return np.asarray(times, dtype=np.float64), values


def _windows(col: _Collector, start: float, end: float) -> list:
    """Episode boundaries: the whole bag, or the marker's."""
    if col.tmap.split == "bag":
        return [(start, end)]
    times, values = col.series_of("marker")
    if not len(times):
        raise ExportError(f"{col.source}: the marker topic {col.tmap.marker} has no message: no episode boundary")
    windows, opened = [], None
    for t, v in sorted(zip(times, values), key=lambda x: x[0]):
        if isinstance(v, bool):
            if v and opened is None:
                opened = t
            elif not v and opened is not None:
                windows.append((opened, t))
                opened = None
        else:
            if opened is not None:
                windows.append((opened, t))
            opened = t
    if opened is not None:
        windows.append((opened, end))
    return windows


def _base_part(col: _Collector, role: str, spec: str, warn: str, times_needed) -> list:
    if spec and spec != ZERO:
        times, values = col.series_of(role)
        if not len(times):
            raise ExportError(f"{col.source}: {spec} ({role}) has no message in the bag")
        return [(times, np.stack(values))]
    zero = np.full((1, col.dim), np.nan)
    zero[0, layout.BASE_DIMS] = 0.0
    if not spec:
        col.warnings.append(warn)
    return [(np.array([-np.inf]), zero)] if len(times_needed) else []


def bag_streams(bag, tmap: TopicMap, decode, joint_names=layout.JOINT_NAMES) -> tuple[list, dict]:
    """Pass 1 over one Bag: the Streams of each of its episodes, and per camera which message (its place
    on the topic) each time-sorted frame is. `decode(bag, want)` yields (message, msg, kind)."""
    source = bag.path
    col = _Collector(tmap, tuple(joint_names), source)
    cameras = set(tmap.cameras.values())
    seen: dict[str, str] = {}

    def want(message):
        seen[message.topic] = message.schema.name if message.schema else "?"
        return message.topic in col.roles and (message.topic not in cameras or tmap.time == "header")

    first = last = None
    camera_times: dict[str, list] = {t: [] for t in cameras}
    for message, msg, kind in decode(bag, want):
        col.take(message, msg, kind)
    for message in bag.messages():  # receive times of every message (the camera payloads stay undecoded)
        if message.topic in cameras and tmap.time == "receive":
            camera_times[message.topic].append(message.log_time * 1e-9)
        t = message.log_time * 1e-9
        first = t if first is None else min(first, t)
        last = t if last is None else max(last, t)
    missing = [f"{topic} ({', '.join(roles)})" for topic, roles in col.roles.items() if topic not in seen]
    if missing:
        have = ", ".join(f"{t} [{ty}]" for t, ty in sorted(seen.items())) or "no topic"
        raise ExportError(f"{source}: the topic map names topics the bag does not have: {missing}; it has {have}")
    for cam, topic in tmap.cameras.items():
        kind = seen[topic].replace("/msg/", "/")
        if kind not in IMAGE_TYPES:
            raise ExportError(f"{source}: {topic} (camera {cam}) is {kind}, the topic map needs "
                              f"{' or '.join(IMAGE_TYPES)}")
    frames, ordinals = {}, {}
    for cam, topic in tmap.cameras.items():
        times = np.asarray(camera_times[topic], dtype=np.float64) if tmap.time == "receive" else \
            col.series_of(f"camera {cam}")[0]
        order = np.argsort(times, kind="stable")  # sorted position -> the message's place on its topic
        ordinals[cam] = order
        frames[cam] = (times[order], [None] * len(times))
    state = []
    if tmap.state_array:
        times, values = col.series_of("state array")
        state.append((times, np.stack(values) if values else np.zeros((0, col.dim))))
    else:
        times, values = col.series_of("state joints")
        state.append((times, np.stack(values) if values else np.zeros((0, col.dim))))
        state += _base_part(col, "state base", tmap.state_base,
                            "no state base topic in the topic map: the state's base (dims 0-5) is written as 0", times)
    if tmap.action_source == "next_state":
        action = None
    else:
        times, values = col.series_of("action")
        if not len(times):
            raise ExportError(f"{source}: the action topic {tmap.action_topic} has no usable message")
        action = [(times, np.stack(values))]
        action += _base_part(col, "action base", tmap.action_base,
                             "no action base topic in the topic map: the base action (dims 0-5) is written as 0", times)
    if tmap.task_text:
        task_times, task_texts = np.array([-np.inf]), [tmap.task_text]
    else:
        task_times, task_texts = col.series_of("task")
    live = [t for t, _ in frames.values()] + [t for t, _ in state if np.isfinite(t).all()] + \
        ([t for t, _ in action if np.isfinite(t).all()] if action else [])
    if any(len(t) == 0 for t in live):
        empty = [c for c, (t, _) in frames.items() if len(t) == 0]
        raise ExportError(f"{source}: no message on an input topic ({empty or 'the state'}): nothing to export")
    gaps = {f"camera {c} ({tmap.cameras[c]})": t for c, (t, _) in frames.items()}
    gaps.update({f"the state ({tmap.state_joints or tmap.state_array})": state[0][0]})
    if action:
        gaps[f"the action ({tmap.action_topic})"] = action[0][0]
    out = []
    for k, (w0, w1) in enumerate(_windows(col, first or 0.0, last or 0.0)):
        inside = [t[(t >= w0) & (t <= w1)] for t in live]
        if any(len(t) == 0 for t in inside):
            col.warnings.append(f"episode window {k} ({w0 - (first or 0):.2f}-{w1 - (first or 0):.2f} s) has an input "
                                "without a message: skipped")
            continue
        span = (max(float(t.min()) for t in inside), min(float(t.max()) for t in inside))
        out.append(Streams(source=f"{source}" + (f" [episode {k}]" if tmap.split == "marker" else ""),
                           joint_names=tuple(joint_names), span=span, state=state, action=action, frames=frames,
                           task_times=task_times, task_texts=list(task_texts), gaps=gaps,
                           warnings=list(col.warnings) + list(bag.warnings)))
    if not out:
        raise ExportError(f"{source}: no episode (markers on {tmap.marker} delimit none with data)")
    return out, ordinals


def _frame_payload(msg, kind: str):
    """(bytes, format) for the dataset writer: CompressedImage as is; Image to PNG (lossless)."""
    import cv2

    if kind == "sensor_msgs/CompressedImage":
        return bytes(msg.data), str(msg.format)
    channels = _CHANNELS.get(msg.encoding)
    if channels is None:
        raise ExportError(f"an Image of encoding {msg.encoding!r}: export supports {sorted(_CHANNELS)}")
    data = bytes(msg.data)
    if msg.step < msg.width * channels or len(data) < msg.height * msg.step:
        raise ExportError(f"an Image {msg.width}x{msg.height} {msg.encoding} of step {msg.step} holds "
                          f"{len(data)} bytes: not a whole frame")
    rows = np.frombuffer(data[:msg.height * msg.step], dtype=np.uint8).reshape(msg.height, msg.step)
    image = rows[:, :msg.width * channels].reshape(msg.height, msg.width, channels)
    convert = {"rgb8": cv2.COLOR_RGB2BGR, "rgba8": cv2.COLOR_RGBA2BGR, "bgra8": cv2.COLOR_BGRA2BGR,
               "mono8": cv2.COLOR_GRAY2BGR, "8UC1": cv2.COLOR_GRAY2BGR}.get(msg.encoding)
    bgr = cv2.cvtColor(image, convert) if convert is not None else np.ascontiguousarray(image)
    ok, png = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ExportError("an Image frame could not be kept as PNG")
    return png.tobytes(), "png"


def fill_frames(bag, tmap: TopicMap, episodes, decode, ordinals: dict) -> None:
    """Pass 2: decode the frames the episodes' grids show, into their frame lists."""
    shown = {cam: set().union(*(set(ep.frame_of[cam].tolist()) for ep in episodes)) for cam in tmap.cameras}
    slot = {cam: {int(ordinals[cam][i]): i for i in shown[cam]} for cam in tmap.cameras}  # message place -> frame
    topic_cams: dict[str, list] = {}
    for cam, topic in tmap.cameras.items():
        topic_cams.setdefault(topic, []).append(cam)
    ordinal = {topic: -1 for topic in topic_cams}

    def want(message):
        if message.topic not in ordinal:
            return False
        ordinal[message.topic] += 1
        return any(ordinal[message.topic] in slot[c] for c in topic_cams[message.topic])

    for message, msg, kind in decode(bag, want):
        payload = _frame_payload(msg, kind)
        for cam in topic_cams[message.topic]:
            i = slot[cam].get(ordinal[message.topic])
            if i is not None:
                for ep in episodes:
                    ep.frames[cam][i] = payload
    for ep in episodes:
        for cam in tmap.cameras:
            if any(ep.frames[cam][i] is None for i in set(ep.frame_of[cam].tolist())):
                raise ExportError(f"{ep.source}: camera {cam}: a frame the grid shows did not decode")


def bag_episodes(bag, tmap: TopicMap, decode, *, fps: float = DEFAULT_FPS, max_gap_s: float = DEFAULT_MAX_GAP_S,
                 joint_names=layout.JOINT_NAMES) -> list:
    """The resampled Episodes of one bag, frames filled."""
    streams, ordinals = bag_streams(bag, tmap, decode, joint_names)
    episodes = [resample_streams(s, fps, max_gap_s) for s in streams]
    fill_frames(bag, tmap, episodes, decode, ordinals)
    return episodes

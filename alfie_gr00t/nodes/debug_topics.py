"""groot_client's debug topics: what the policy saw and answered, and what the gate did, as ROS messages.

Topics (relative to the client node):

    ~/debug/image/<camera>   sensor_msgs/CompressedImage  the frame exactly as sent ("jpeg", or raw
                                                           "rgb8; raw WxH" with image_encoding raw or the
                                                           Isaac-GR00T protocol)
    ~/debug/state            sensor_msgs/JointState       the 21-D state as sent (normalized if stats_file)
    ~/debug/task             std_msgs/String              the task text sent
    ~/debug/chunk            trajectory_msgs/JointTrajectory  the reply in robot units, before the scheduler
    ~/debug/chunk_scheduled  trajectory_msgs/JointTrajectory  the steps the scheduler kept
    ~/debug/gate             diagnostic_msgs/DiagnosticStatus what the gate did this 100 Hz tick

Observation and chunk messages are stamped with the observation's capture time. A message is built
only when its publisher has a subscriber or a recording is on; otherwise nothing is constructed or
copied (`builds` counts the messages built, so a test can see it). Exchange messages are built on the
inference thread (rclpy's publish is thread-safe), the gate message on the tick (one small message).
"""

from __future__ import annotations

import array
from typing import Callable

import numpy as np
from builtin_interfaces.msg import Duration, Time
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from sensor_msgs.msg import CompressedImage, JointState
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from alfie_gr00t.wire import images
from alfie_gr00t.client.links import SentFrames
from alfie_gr00t.client.safety import Command, CommandKind
from alfie_gr00t.client.worker import ExchangeObserver, ExchangeRecord

GATE_NAME = "groot_client/gate"
TOPICS = ("debug/state", "debug/task", "debug/chunk", "debug/chunk_scheduled", "debug/gate")


def stamp(seconds: float) -> Time:
    """Clock seconds (ROS time) -> builtin_interfaces/Time."""
    ns = int(round(seconds * 1e9))
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def duration(seconds: float) -> Duration:
    ns = int(round(seconds * 1e9))
    return Duration(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


# -- builders -------------------------------------------------------------------------------------
def image_message(camera: str, sent: SentFrames, capture_time: float) -> CompressedImage:
    msg = CompressedImage()
    msg.header.stamp = stamp(capture_time)
    msg.header.frame_id = camera
    msg.format = "jpeg" if sent.encoding == "jpeg" else images.raw_format(sent.width, sent.height)
    msg.data = array.array("B", sent.data(camera))
    return msg


def state_message(names, state: np.ndarray, capture_time: float) -> JointState:
    msg = JointState()
    msg.header.stamp = stamp(capture_time)
    msg.name = list(names)
    msg.position = array.array("d", np.asarray(state, dtype=np.float64).tobytes())
    return msg


def chunk_message(names, steps: np.ndarray, start_time: float, step_hz: float) -> JointTrajectory:
    """Step k at time_from_start k / step_hz, the header stamped `start_time` (when step 0 applies)."""
    msg = JointTrajectory()
    msg.header.stamp = stamp(start_time)
    msg.joint_names = list(names)
    rows = np.asarray(steps, dtype=np.float64)
    msg.points = [JointTrajectoryPoint(positions=array.array("d", row.tobytes()), time_from_start=duration(k / step_hz))
                  for k, row in enumerate(rows)]
    return msg


def gate_message(names, target: np.ndarray | None, command: Command | None) -> DiagnosticStatus:
    """What the gate did with this tick's target: level OK when it passed the step unchanged (or had
    nothing to do), WARN when it limited joints or is holding/stopping; `limited` names the dims whose
    command differs from the policy's target."""
    if command is None:
        kind, reason, limited = "none", "", []
    else:
        kind, reason = command.kind.value, command.reason
        limited = []
        if command.kind is CommandKind.POLICY and target is not None:
            limited = [names[i] for i in np.flatnonzero(command.vector != np.asarray(target, dtype=np.float64))]
    holding = command is not None and command.kind in (CommandKind.HOLD, CommandKind.STOP)
    level = DiagnosticStatus.WARN if (limited or holding) else DiagnosticStatus.OK
    return DiagnosticStatus(level=level, name=GATE_NAME, message=reason,
                            values=[KeyValue(key="kind", value=kind), KeyValue(key="limited", value=",".join(limited))])


# -- the node's debug outputs ------------------------------------------------------------------------
class DebugTopics(ExchangeObserver):
    """The client's debug publishers. `record(topic, msg, publish_time_ns)` is the recorder's sink
    (None: not recording); `recording()` says whether a session is open (then every message is built,
    subscribed or not)."""

    def __init__(self, node, config, record: Callable | None = None, recording: Callable[[], bool] = lambda: False):
        self._node = node
        self._names = tuple(config.joint_names)
        self._cameras = tuple(config.camera_names)
        self._hz = float(config.action_step_hz)
        self._record = record
        self._recording = recording
        self.images = {c: node.create_publisher(CompressedImage, f"~/debug/image/{c}", 10) for c in self._cameras}
        self.state = node.create_publisher(JointState, "~/debug/state", 10)
        self.task = node.create_publisher(String, "~/debug/task", 10)
        self.chunk = node.create_publisher(JointTrajectory, "~/debug/chunk", 10)
        self.scheduled = node.create_publisher(JointTrajectory, "~/debug/chunk_scheduled", 10)
        self.gate = node.create_publisher(DiagnosticStatus, "~/debug/gate", 10)
        self._exchange_pubs = (*self.images.values(), self.state, self.task, self.chunk, self.scheduled)
        self.builds = 0  # messages built (tests: none while nobody listens)

    @property
    def publishers(self):
        return (*self._exchange_pubs, self.gate)

    # -- ExchangeObserver (inference thread) --
    def wanted(self) -> bool:
        return self._recording() or any(p.get_subscription_count() > 0 for p in self._exchange_pubs)

    def __call__(self, record: ExchangeRecord) -> None:
        recording = self._recording()
        capture_ns = int(round(record.capture_time * 1e9))
        for camera, pub in self.images.items():
            if camera in record.frames.frames and (recording or pub.get_subscription_count() > 0):
                self._out(pub, image_message(camera, record.frames, record.capture_time), capture_ns, recording)
        if recording or self.state.get_subscription_count() > 0:
            self._out(self.state, state_message(self._names, record.state, record.capture_time), capture_ns,
                      recording)
        if recording or self.task.get_subscription_count() > 0:
            self._out(self.task, String(data=record.task), capture_ns, recording)
        if record.chunk is not None and (recording or self.chunk.get_subscription_count() > 0):
            self._out(self.chunk, chunk_message(self._names, record.chunk, record.capture_time, self._hz),
                      capture_ns, recording)
        if record.kept is not None and (recording or self.scheduled.get_subscription_count() > 0):
            self._out(self.scheduled, chunk_message(self._names, record.kept, record.first_kept_time, self._hz),
                      capture_ns, recording)

    # -- the tick --
    def gate_wanted(self) -> bool:
        return self._recording() or self.gate.get_subscription_count() > 0

    def gate_tick(self, target, command: Command | None, now_ns: int) -> None:
        recording = self._recording()
        self._out(self.gate, gate_message(self._names, target, command), now_ns, recording)

    def _out(self, pub, msg, publish_time_ns: int, recording: bool) -> None:
        self.builds += 1
        if pub.get_subscription_count() > 0:
            pub.publish(msg)
        if recording and self._record is not None:
            self._record(pub.topic_name, msg, publish_time_ns)

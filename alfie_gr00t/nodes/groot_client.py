"""groot_client: cameras and state in, safe joint commands out at 100 Hz.

Wiring only. The ROS-free `ClientCore` (client/core.py) decides everything: activation, stops,
the deadman, clock jumps, the status; its command thread ticks at 100 Hz and hands every
command through the one MotionGate to `_publish`, the only place motion messages are made.
Sensor callbacks only store the latest messages; the inference thread does the rest. The stop
interfaces run on a node, executor thread and DDS participant of their own (nodes/stop_path.py).
"""

from __future__ import annotations

import json
import logging
import sys
import time

from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Twist
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.clock import ClockChange, JumpThreshold
from rclpy.duration import Duration as RosDuration
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Float32MultiArray, String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from alfie_gr00t.client.config import ClientConfig
from alfie_gr00t.client.core import ClientCore, clock_jump_cause
from alfie_gr00t.client.inputs import header_stamp_from_cdr, image_from_cdr
from alfie_gr00t.client.safety import Command, CommandKind
from alfie_gr00t.layout import BASE_DIMS, JOINT_DIMS
from alfie_gr00t.nodes.camera_qos import CameraSubscriptions
from alfie_gr00t.nodes.debug_topics import DebugTopics
from alfie_gr00t.nodes.diagnostics import ClientDiagnostics, attach_diagnostics
from alfie_gr00t.nodes.params import declare_config
from alfie_gr00t.nodes.recorder import SessionRecorder, publisher_qos
from alfie_gr00t.nodes.runner import log_info, run_node
from alfie_gr00t.nodes.stop_path import StopPath, use_client_dds_profile

# Best effort matches reliable and best-effort drivers alike.
_STATE_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)


class GrootClient(Node):
    def __init__(self, **node_kwargs):
        super().__init__("groot_client", **node_kwargs)
        self.config: ClientConfig = declare_config(self, ClientConfig)
        image_type = Image if self.config.image_msg_type == "raw" else CompressedImage
        compressed = image_type is CompressedImage
        self.core = ClientCore(self.config, output=self._publish, clock=self.now, log=self._log,
                               frame_decoder=lambda data: image_from_cdr(data, compressed)
                               or deserialize_message(data, image_type))
        core = self.core
        self.machine, self.measured, self.inputs = core.machine, core.measured, core.inputs
        self.scheduler, self.gate, self.refill = core.scheduler, core.gate, core.refill
        self.worker = None  # the core's InferenceWorker once started
        self.recorder: SessionRecorder | None = None  # record_dir set: one MCAP session per activation
        self._session_open = False
        self.debug: DebugTopics | None = None
        self.stop_path: StopPath | None = None

    def now(self) -> float:
        """The client's clock: the node's ROS clock (sim time under use_sim_time), in seconds."""
        return self.get_clock().now().nanoseconds * 1e-9

    def start(self) -> None:
        """Build the pipeline, wire topics and timers, then start the threads."""
        cfg = self.config
        if cfg.record_dir:
            self.recorder = SessionRecorder(cfg.record_dir, max_bytes=int(cfg.record_max_mb * 1024 * 1024),
                                            max_files=cfg.record_max_files, log=self.get_logger().info,
                                            split_bytes=int(cfg.record_split_mb * 1024 * 1024),
                                            clock_ns=lambda: self.get_clock().now().nanoseconds,
                                            qos_of=lambda topic: publisher_qos(self, topic))
        self.worker = self.core.start(threads=False).worker
        self._create_interfaces()
        self.worker.observer = self.debug
        self.core.on_tick = self._on_tick
        self.core.on_activated = lambda epoch: self.recorder is not None and self._session_wanted.trigger()
        self._clock_jumps = self.get_clock().create_jump_callback(
            JumpThreshold(min_forward=None, min_backward=RosDuration(seconds=-0.1), on_clock_change=True),
            post_callback=self._on_clock_jump)
        self.stop_path = StopPath(self).start()
        self.core.start_threads()
        curve = f", CurveZMQ, server key {cfg.curve_server_key}" if cfg.curve_secret_key else ""
        deadman = f", deadman {cfg.deadman_topic} ({cfg.deadman_timeout_ms:.0f} ms)" if cfg.deadman_topic else ""
        self.get_logger().info(f"client ready: server {cfg.address} ({cfg.server_protocol}{curve}), output "
                               f"{cfg.output_mode}{deadman}, state IDLE; call ~/set_active true (or publish "
                               "true on ~/activate) to start")

    def _create_interfaces(self) -> None:
        cfg = self.config
        sensors = ReentrantCallbackGroup()
        image_type = Image if cfg.image_msg_type == "raw" else CompressedImage
        # Serialized bytes kept (only the frames actually sent get deserialized); reliable when the driver
        # offers it, keep-last 1 (nodes/camera_qos.py).
        self.cameras = CameraSubscriptions(
            self, image_type, dict(zip(cfg.camera_names, cfg.camera_topics)),
            lambda n, data: self.inputs.store_frame(n, data, header_stamp_from_cdr(data)), callback_group=sensors)
        if cfg.state_msg_type == "joint_state":
            self.create_subscription(JointState, cfg.state_topic, self._on_joint_state, _STATE_QOS,
                                     callback_group=sensors)
            self.create_subscription(Twist, cfg.base_velocity_topic, self._on_base_velocity, _STATE_QOS,
                                     callback_group=sensors)
        else:
            self.create_subscription(Float32MultiArray, cfg.state_topic, self._on_state_array, _STATE_QOS,
                                     callback_group=sensors)
        self.create_subscription(String, "~/task_description", self._on_task, 10)
        self.joint_pub = self.create_publisher(JointState, "~/joint_commands", 10)
        self.twist_pub = self.create_publisher(Twist, "~/cmd_vel", 10)
        self.trajectory_pub = self.create_publisher(JointTrajectory, "~/joint_trajectory", 10)
        self.status_pub = self.create_publisher(String, "~/status", 10)
        if cfg.output_mode != "joint_state":
            self.create_timer(1.0 / cfg.trajectory_rate_hz, self.core.plan_trajectory)
        self.create_timer(1.0, self._publish_status)
        attach_diagnostics(self, self.status, ClientDiagnostics(self.get_name()), on_publish=self._record)
        self.debug = DebugTopics(self, cfg, record=self._record, recording=lambda: self._session_open)
        self._topics = {name: self.resolve_topic_name(name) for name in (
            cfg.state_topic, cfg.base_velocity_topic, "~/task_description")}
        self._session_wanted = self.create_guard_condition(self._start_session)
        if self.recorder is not None:
            self.create_timer(0.1, self._watch_session)

    def _log(self, level: str, message: str) -> None:
        """The core's log lines, through the ROS logger (/rosout) while the context is up. One call site per
        severity: rclpy refuses to change a call site's severity."""
        if not self.context.ok():
            logging.getLogger(self.get_name()).warning(message)
        elif level == "warning":
            self.get_logger().warning(message, throttle_duration_sec=2.0)
        elif level == "warning_now":
            self.get_logger().warning(message)
        elif level == "error":
            self.get_logger().error(message)
        else:
            self.get_logger().info(message)

    # -- recording ------------------------------------------------------------------------------
    def _record(self, topic: str, msg, publish_time_ns: int | None = None) -> None:
        """Into the open session (never blocks: the recorder queues or drops and counts); the publish time
        is now unless given (observation messages carry their capture time)."""
        if self._session_open:
            if publish_time_ns is None:
                publish_time_ns = self.get_clock().now().nanoseconds
            self.recorder.record(topic, msg, publish_time_ns)

    def _start_session(self) -> None:
        """An activation began (the core triggers this on the node's own executor): a new session file,
        closing any still open."""
        if self.recorder is None:
            return
        name = time.strftime("groot_%Y%m%d_%H%M%S") + f"_a{self.machine.epoch}"
        try:
            self.recorder.start_session(name)  # it logs the session once ("recording session to ...")
        except Exception as exc:  # noqa: BLE001 - a full or read-only disk must not stop the robot
            self.get_logger().error(f"recording not started: {exc}")
            return
        self._session_open = True

    def _watch_session(self) -> None:
        if self._session_open and self.core.session_should_end():
            self._session_open = False
            self.recorder.end_session(wait=False)  # the writer closes the file; the executor never waits

    # -- inputs: store only ------------------------------------------------------------------
    def _on_joint_state(self, msg: JointState) -> None:
        self.measured.update_by_name(msg.name, msg.position, _stamp_seconds(msg.header.stamp))
        self._record(self._topics[self.config.state_topic], msg)

    def _on_base_velocity(self, msg: Twist) -> None:
        v = (msg.linear.x, msg.linear.y, msg.linear.z, msg.angular.x, msg.angular.y, msg.angular.z)
        self.measured.update(dict(enumerate(v)))
        self._record(self._topics[self.config.base_velocity_topic], msg)

    def _on_state_array(self, msg: Float32MultiArray) -> None:
        self._record(self._topics[self.config.state_topic], msg)
        if len(msg.data) == self.config.action_dim:
            self.measured.update(dict(enumerate(msg.data)))
        else:
            self.get_logger().warning(f"state array of {len(msg.data)} values ignored; expected "
                                      f"{self.config.action_dim}", throttle_duration_sec=5.0)

    def _on_task(self, msg: String) -> None:
        self.inputs.task = msg.data
        self.get_logger().info(f"task: {msg.data!r}")
        self._record(self._topics["~/task_description"], msg)

    def _on_clock_jump(self, jump) -> None:
        """The ROS clock went back (sim time reset, `ros2 bag play --loop`) or its source changed."""
        changed = jump.clock_change in (ClockChange.ROS_TIME_ACTIVATED, ClockChange.ROS_TIME_DEACTIVATED)
        cause = clock_jump_cause(changed, jump.delta.nanoseconds / 1e9)
        if cause is not None:
            self.core.clock_jumped(cause)

    # -- output: the gate's sink ----------------------------------------------------------------
    def _on_tick(self, target, command) -> None:
        debug = self.debug
        if debug is not None and debug.gate_wanted():
            debug.gate_tick(target, command, self.get_clock().now().nanoseconds)

    def _publish(self, command: Command) -> None:
        """The gate's output: every command leaves through here, nowhere else."""
        cfg = self.config
        debug = self.debug
        if (command.kind is not CommandKind.PLAN and not self.core.in_tick()
                and debug is not None and debug.gate_wanted()):
            # a hold or stop decided outside the tick (activate:false, e-stop, failures, shutdown)
            debug.gate_tick(None, command, self.get_clock().now().nanoseconds)
        if command.kind is CommandKind.PLAN:
            plan = self._trajectory(command.path[:, JOINT_DIMS], 1.0 / cfg.action_step_hz)
            self.trajectory_pub.publish(plan)
            self._record(self.trajectory_pub.topic_name, plan)
            return
        joints = command.joints
        if joints is not None:
            if cfg.output_mode != "joint_trajectory":
                msg = JointState()
                msg.header.stamp = self.get_clock().now().to_msg()
                msg.name = list(cfg.joint_names[JOINT_DIMS])
                msg.position = [float(v) for v in joints]
                self.joint_pub.publish(msg)
                self._record(self.joint_pub.topic_name, msg)
            if cfg.output_mode != "joint_state" and command.kind is not CommandKind.POLICY:
                hold = self._trajectory([joints], 1.0 / cfg.command_rate_hz)
                self.trajectory_pub.publish(hold)
                self._record(self.trajectory_pub.topic_name, hold)
        twist = Twist()
        (twist.linear.x, twist.linear.y, twist.linear.z,
         twist.angular.x, twist.angular.y, twist.angular.z) = (float(v) for v in command.vector[BASE_DIMS])
        self.twist_pub.publish(twist)
        self._record(self.twist_pub.topic_name, twist)

    def _trajectory(self, points, dt: float) -> JointTrajectory:
        """Points `dt` apart, the first `dt` from now."""
        msg = JointTrajectory()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.joint_names = list(self.config.joint_names[JOINT_DIMS])
        for k, positions in enumerate(points):
            seconds = (k + 1) * dt
            point = JointTrajectoryPoint(positions=[float(v) for v in positions])
            point.time_from_start = Duration(sec=int(seconds), nanosec=int((seconds % 1.0) * 1e9))
            msg.points.append(point)
        return msg

    # -- status --------------------------------------------------------------------------------
    def status(self) -> dict:
        return self.core.status(self.recorder.stats() if self.recorder is not None else None).to_dict()

    def _publish_status(self) -> None:
        self.core.check_budget()  # 1 Hz is soon enough for a warning; kept off the 100 Hz tick
        msg = String(data=json.dumps(self.status()))
        self.status_pub.publish(msg)
        self._record(self.status_pub.topic_name, msg)

    def close(self) -> None:
        """Shutdown: the stop path and the command thread end, a stop (zero base velocity at once) while
        the context is still valid, the recording, then the worker; the profile table when something ran."""
        if self.worker is None:
            return
        if self.stop_path is not None:
            self.stop_path.close()
            self.stop_path = None
        table = self.core.close(publish_stop=self.context.ok())
        if self.recorder is not None:
            self._session_open = False
            self.recorder.close()  # the session so far, the stop included, summary written (bounded wait)
        if table:
            log_info(self, "client profile (ms):\n" + table)
        self.worker = None


def _stamp_seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def main(args=None) -> int:
    use_client_dds_profile()  # before rclpy starts its participants
    return run_node(GrootClient, args)


if __name__ == "__main__":
    sys.exit(main())

"""groot_client: cameras and state in, safe joint commands out at 100 Hz.

Callbacks only store the latest messages; a background thread (InferenceWorker) does
all conversion, encoding and networking; a timer plays the scheduled chunk through
the safety filter. State machine and hold semantics follow SPEC §4.
"""

from __future__ import annotations

import json
import sys
import threading
import time

import numpy as np
from geometry_msgs.msg import Twist
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, qos_profile_sensor_data
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Bool, Float32MultiArray, String

from alfie_gr00t.client_core import (ClientState, ClientStateMachine, InferenceWorker, LatestInputs,
                                     state_updates_from_joint_state)
from alfie_gr00t.config import ClientConfig
from alfie_gr00t.layout import BASE_DIMS, JOINT_DIMS
from alfie_gr00t.nodes.params import declare_config
from alfie_gr00t.nodes.runner import run_node
from alfie_gr00t.normalization import Normalizer
from alfie_gr00t.safety import SafetyFilter, SafetyLimits, hold_command
from alfie_gr00t.scheduler import ActionScheduler, SchedulerConfig
from alfie_gr00t.stats import RollingStats


class GrootClient(Node):
    def __init__(self, **node_kwargs):
        super().__init__("groot_client", **node_kwargs)
        self.config: ClientConfig = declare_config(self, ClientConfig)
        self.machine = ClientStateMachine()
        self.inputs = LatestInputs(self.config.camera_names, self.config.action_dim, self.config.task_description)
        self.worker: InferenceWorker | None = None
        self.commands_published = 0
        self.holds_published = 0
        self.command_period_ms = RollingStats(window=2000)
        self._last_tick: float | None = None
        self._previous: np.ndarray | None = None  # last command sent, the safety filter's reference
        self._holding = False  # a hold was sent while ACTIVE; stay silent until chunks resume
        self._output_lock = threading.Lock()  # the tick and the transition callbacks both publish

    def start(self) -> None:
        """Build the pipeline, then wire topics and timers."""
        cfg = self.config
        normalizer = Normalizer.from_stats_file(cfg.stats_file, cfg.action_dim) if cfg.stats_file \
            else Normalizer.identity(cfg.action_dim)
        self.scheduler = ActionScheduler(SchedulerConfig(
            action_step_hz=cfg.action_step_hz, action_horizon=cfg.action_horizon,
            refill_threshold_steps=cfg.refill_threshold_steps, crossfade_steps=cfg.crossfade_steps,
            ema_alpha=cfg.ema_alpha, watchdog_timeout_s=cfg.watchdog_timeout_s, action_dim=cfg.action_dim))
        self.safety = SafetyFilter(SafetyLimits(cfg.joint_lower_limits, cfg.joint_upper_limits,
                                                cfg.max_joint_step, cfg.max_base_step))
        image_type = self._image_type()
        self.worker = InferenceWorker(cfg, self.inputs, self.scheduler, self.machine, normalizer,
                                      on_error=self._on_inference_error,
                                      frame_decoder=lambda data: deserialize_message(data, image_type))
        self._create_interfaces()
        self.worker.start()
        self.get_logger().info(f"client ready: server {cfg.address} ({cfg.server_protocol}), state IDLE; "
                               "publish true on ~/activate to start")

    def _create_interfaces(self) -> None:
        cfg = self.config
        sensors = ReentrantCallbackGroup()
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        image_type = self._image_type()
        for name, topic in zip(cfg.camera_names, cfg.camera_topics):
            # raw=True: keep the serialized bytes; only the frames actually sent get deserialized.
            self.create_subscription(image_type, topic, lambda data, n=name: self.inputs.store_frame(n, data),
                                     qos_profile_sensor_data, callback_group=sensors, raw=True)
        if cfg.state_msg_type == "joint_state":
            self.create_subscription(JointState, cfg.state_topic, self._on_joint_state, 10, callback_group=sensors)
            self.create_subscription(Twist, cfg.base_velocity_topic, self._on_base_velocity, 10,
                                     callback_group=sensors)
        else:
            self.create_subscription(Float32MultiArray, cfg.state_topic, self._on_state_array, 10,
                                     callback_group=sensors)
        self.create_subscription(Bool, "~/activate", self._on_activate, 10)
        # Latched publishers (TRANSIENT_LOCAL) and plain ones are each matched only by their own kind.
        self.create_subscription(Bool, "~/estop", self._on_estop, latched)
        self.create_subscription(Bool, "~/estop", self._on_estop, 10)
        self.create_subscription(String, "~/task_description", self._on_task, 10)
        self.joint_pub = self.create_publisher(JointState, "~/joint_commands", 10)
        self.twist_pub = self.create_publisher(Twist, "~/cmd_vel", 10)
        self.status_pub = self.create_publisher(String, "~/status", 10)
        self.create_timer(1.0 / cfg.command_rate_hz, self._on_command_tick,
                          callback_group=MutuallyExclusiveCallbackGroup())
        self.create_timer(1.0, self._publish_status)

    def _image_type(self):
        return Image if self.config.image_msg_type == "raw" else CompressedImage

    # -- inputs: store only ------------------------------------------------------------------
    def _on_joint_state(self, msg: JointState) -> None:
        self.inputs.store_state(state_updates_from_joint_state(msg.name, msg.position, self.config.joint_names))

    def _on_base_velocity(self, msg: Twist) -> None:
        v = (msg.linear.x, msg.linear.y, msg.linear.z, msg.angular.x, msg.angular.y, msg.angular.z)
        self.inputs.update_state_dims(dict(enumerate(v)))

    def _on_state_array(self, msg: Float32MultiArray) -> None:
        if len(msg.data) == self.config.action_dim:
            self.inputs.store_state(dict(enumerate(msg.data)))
        else:
            self.get_logger().warning(f"state array of {len(msg.data)} values ignored; expected "
                                      f"{self.config.action_dim}", throttle_duration_sec=5.0)

    def _on_task(self, msg: String) -> None:
        self.inputs.task = msg.data
        self.get_logger().info(f"task: {msg.data!r}")

    # -- state machine -------------------------------------------------------------------------
    def _on_activate(self, msg: Bool) -> None:
        before = self.machine.state
        left_active = self.machine.activate(msg.data)
        if self.machine.state is ClientState.CONNECTING and before is not ClientState.CONNECTING:
            self.scheduler.reset()
            self.worker.reset_failures()
            self._previous = None
            self._holding = False
        self._after_transition(left_active, f"activate:{str(msg.data).lower()}", before)

    def _on_estop(self, msg: Bool) -> None:
        before = self.machine.state
        hold = self.machine.estop(msg.data)
        self._after_transition(hold, f"estop:{str(msg.data).lower()}", before)

    def _on_inference_error(self, left: ClientState, message: str) -> None:
        self.get_logger().error(f"ERROR state: {message}")
        self._after_transition(left is ClientState.ACTIVE, "inference failures", left)

    def _after_transition(self, hold: bool, cause: str, before: ClientState) -> None:
        if hold:
            with self._output_lock:
                self.scheduler.reset()
                self._publish_hold()
        if self.machine.state is not before:
            self.get_logger().info(f"{before.value} -> {self.machine.state.value} ({cause})")

    # -- the 100 Hz loop ------------------------------------------------------------------------
    def _on_command_tick(self) -> None:
        with self._output_lock:
            self._command_tick()

    def _command_tick(self) -> None:
        now = time.monotonic()
        if self._last_tick is not None:
            self.command_period_ms.add((now - self._last_tick) * 1000.0)
        self._last_tick = now
        if self.machine.state is not ClientState.ACTIVE:
            return
        command = self.scheduler.command(now)
        if command is None:  # queue dry or watchdog: hold once, then wait for a fresh chunk
            if not self._holding:
                self._holding = True
                self._publish_hold()
            return
        self._holding = False
        if self._previous is None:
            measured = self.inputs.measured_state()
            self._previous = hold_command(measured if measured is not None else command)
        result = self.safety.apply(command, self._previous)
        self._previous = result.command
        self._publish(result.command)
        self.commands_published += 1

    def _publish_hold(self) -> None:
        """Last measured joints, zero base velocity (or the last command when nothing was measured)."""
        measured = self.inputs.measured_state()
        reference = measured if measured is not None else self._previous
        if reference is None:
            return
        hold = hold_command(reference)
        self._previous = None
        self._publish(hold)
        self.holds_published += 1

    def _publish(self, command: np.ndarray) -> None:
        joints = JointState()
        joints.header.stamp = self.get_clock().now().to_msg()
        joints.name = list(self.config.joint_names[JOINT_DIMS])
        joints.position = [float(v) for v in command[JOINT_DIMS]]
        twist = Twist()
        (twist.linear.x, twist.linear.y, twist.linear.z,
         twist.angular.x, twist.angular.y, twist.angular.z) = (float(v) for v in command[BASE_DIMS])
        self.joint_pub.publish(joints)
        self.twist_pub.publish(twist)

    # -- status --------------------------------------------------------------------------------
    def status(self) -> dict:
        w = self.worker
        rtt = w.round_trip_ms.snapshot()
        period = self.command_period_ms.snapshot()
        return {
            "state": self.machine.state.value,
            "task": self.inputs.task,
            "server_address": self.config.address,
            "server_protocol": self.config.server_protocol,
            "requests_ok": w.requests_ok,
            "requests_failed": w.requests_failed,
            "round_trip_p50_ms": rtt["p50"],
            "round_trip_p95_ms": rtt["p95"],
            "server_inference_ms": round(w.server_inference_ms.last, 3),
            "chunks_received": self.scheduler.chunks_received,
            "chunks_rejected": w.chunks_rejected,
            "queue_depth_steps": round(self.scheduler.remaining_steps(), 2),
            "stale_observations_skipped": w.stale_skipped,
            "stale_inputs": w.stale_inputs,
            "consecutive_failures": w.consecutive_failures,
            "last_error": w.last_error,
            "commands_published": self.commands_published,
            "holds_published": self.holds_published,
            "command_period_p50_ms": period["p50"],
            "command_period_p99_ms": period["p99"],
            "safety_rejected_nonfinite": self.safety.rejected_nonfinite,
            "safety_clamped_ticks": self.safety.clamped_ticks,
            "stages_ms": w.stages.summary(),
        }

    def _publish_status(self) -> None:
        self.status_pub.publish(String(data=json.dumps(self.status())))

    def close(self) -> None:
        if self.worker is not None:
            if self.machine.state is ClientState.ACTIVE:
                self._publish_hold()
            self.worker.stop()
            self.get_logger().info("client profile (ms):\n" + self.worker.stages.format_table())
            self.worker = None


def main(args=None) -> int:
    return run_node(GrootClient, args)


if __name__ == "__main__":
    sys.exit(main())

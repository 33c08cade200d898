"""groot_client: cameras and state in, safe joint commands out at 100 Hz.

Callbacks only store the latest messages; a background thread (InferenceWorker) does all
conversion, encoding and networking; the 100 Hz timer hands the scheduler's step to the
MotionGate, which decides every command (policy, hold, stop) and calls back `_publish`.
The node itself decides no motion: it wires topics to the ROS-free core and publishes.
"""

from __future__ import annotations

import json
import sys
import threading
import time

import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Twist
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.clock import ClockChange, JumpThreshold
from rclpy.duration import Duration as RosDuration
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Bool, Float32MultiArray, String
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from alfie_gr00t.client.inputs import LatestInputs, header_stamp_from_cdr
from alfie_gr00t.client.state_machine import ClientState, ClientStateMachine
from alfie_gr00t.client.worker import InferenceWorker
from alfie_gr00t.client.config import ClientConfig
from alfie_gr00t.nodes.debug_topics import DebugTopics
from alfie_gr00t.nodes.diagnostics import ClientDiagnostics, attach_diagnostics
from alfie_gr00t.nodes.recorder import SessionRecorder
from alfie_gr00t.client.latency import RefillPolicy
from alfie_gr00t.layout import BASE_DIMS, JOINT_DIMS
from alfie_gr00t.nodes.params import declare_config
from alfie_gr00t.nodes.runner import log_info, run_node
from alfie_gr00t.client.normalization import Normalizer
from alfie_gr00t.client.robot_state import MeasuredState, describe_problems, required_dims
from alfie_gr00t.client.safety import ActivationRefused, Command, CommandKind, MotionGate
from alfie_gr00t.client.scheduler import ActionScheduler, SchedulerConfig
from alfie_gr00t.stats import RollingStats

# Best effort matches reliable and best-effort drivers alike.
_STATE_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
_LATCHED_QOS = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)


class GrootClient(Node):
    def __init__(self, **node_kwargs):
        super().__init__("groot_client", **node_kwargs)
        self.config: ClientConfig = declare_config(self, ClientConfig)
        self.machine = ClientStateMachine(on_change=self._log_transition)
        self.measured = MeasuredState(self.config.joint_names, required_dims(self.config.state_msg_type),
                                      clock=self.now)
        self.inputs = LatestInputs(self.config.camera_names, self.measured, self.config.task_description,
                                   clock=self.now)
        self.worker: InferenceWorker | None = None
        self.command_period_ms = RollingStats(window=2000)
        self._last_tick: float | None = None
        self._latched_estop = None
        self._activation_error = ""
        self._budget_warned = "ok"
        # Transitions that arm or disarm the gate come from the executor (activate, e-stop, clock jumps)
        # and from the inference thread (failures); one at a time, so a late failure cannot disarm a
        # newer activation.
        self._transitions = threading.RLock()
        self.recorder: SessionRecorder | None = None  # record_dir set: one MCAP session per activation
        self._session_open = False
        self.debug: DebugTopics | None = None
        self._tick_thread: int | None = None  # the thread inside the tick's gate.step (its commands are reported there)

    def now(self) -> float:
        """The client's clock: the node's ROS clock (sim time under use_sim_time), in seconds."""
        return self.get_clock().now().nanoseconds * 1e-9

    def start(self) -> None:
        """Build the pipeline, then wire topics and timers."""
        cfg = self.config
        normalizer = Normalizer.from_stats_file(cfg.stats_file, cfg.action_dim) if cfg.stats_file \
            else Normalizer.identity(cfg.action_dim)
        self.scheduler = ActionScheduler(SchedulerConfig(
            action_step_hz=cfg.action_step_hz, action_horizon=cfg.action_horizon, crossfade_steps=cfg.crossfade_steps,
            ema_alpha=cfg.ema_alpha, watchdog_timeout_s=cfg.watchdog_timeout_s, action_dim=cfg.action_dim),
            clock=self.now)
        self.gate = MotionGate(cfg.motion_limits(), self.measured, cfg.max_observation_age_ms / 1000.0,
                               output=self._publish, clock=self.now)
        self.refill = RefillPolicy(cfg.refill_config())
        image_type = self._image_type()
        self.worker = InferenceWorker(cfg, self.inputs, self.scheduler, self.machine, normalizer, self.refill,
                                      on_error=self._on_inference_error, clock=self.now,
                                      frame_decoder=lambda data: deserialize_message(data, image_type),
                                      log=self._log)
        if cfg.record_dir:
            self.recorder = SessionRecorder(cfg.record_dir, max_bytes=int(cfg.record_max_mb * 1024 * 1024),
                                            max_files=cfg.record_max_files, log=self.get_logger().info,
                                            clock_ns=lambda: self.get_clock().now().nanoseconds)
        self._create_interfaces()
        self.worker.observer = self.debug
        self._clock_jumps = self.get_clock().create_jump_callback(
            JumpThreshold(min_forward=None, min_backward=RosDuration(seconds=-0.1), on_clock_change=True),
            post_callback=self._on_clock_jump)
        self.worker.start()
        curve = f", CurveZMQ, server key {cfg.curve_server_key}" if cfg.curve_secret_key else ""
        self.get_logger().info(f"client ready: server {cfg.address} ({cfg.server_protocol}{curve}), output "
                               f"{cfg.output_mode}, state IDLE; call ~/set_active true (or publish true on ~/activate) to start")

    def _create_interfaces(self) -> None:
        cfg = self.config
        sensors = ReentrantCallbackGroup()
        image_type = self._image_type()
        for name, topic in zip(cfg.camera_names, cfg.camera_topics):
            # raw=True: keep the serialized bytes; only the frames actually sent get deserialized.
            self.create_subscription(image_type, topic, lambda data, n=name: self.inputs.store_frame(
                n, data, header_stamp_from_cdr(data)), qos_profile_sensor_data, callback_group=sensors, raw=True)
        if cfg.state_msg_type == "joint_state":
            self.create_subscription(JointState, cfg.state_topic, self._on_joint_state, _STATE_QOS,
                                     callback_group=sensors)
            self.create_subscription(Twist, cfg.base_velocity_topic, self._on_base_velocity, _STATE_QOS,
                                     callback_group=sensors)
        else:
            self.create_subscription(Float32MultiArray, cfg.state_topic, self._on_state_array, _STATE_QOS,
                                     callback_group=sensors)
        self.create_subscription(Bool, "~/activate", self._on_activate, 10)
        # Volatile and reliable: matches plain (`ros2 topic pub`) and latched publishers alike, with no
        # QoS warning. A latched e-stop sent before we started is fetched by a transient-local
        # subscription that exists only while a latched publisher does (see _watch_latched_estop).
        self.create_subscription(Bool, "~/estop", self._on_estop, 10)
        self.create_subscription(String, "~/task_description", self._on_task, 10)
        # The same commands as services that answer with what happened (a one-shot topic publish can be
        # lost while discovery is still matching; a service call waits for the server and gets a reply).
        self.create_service(SetBool, "~/set_active", self._on_set_active_service)
        self.create_service(Trigger, "~/stop", self._on_stop_service)
        self.create_service(SetBool, "~/estop", self._on_estop_service)
        self.joint_pub = self.create_publisher(JointState, "~/joint_commands", 10)
        self.twist_pub = self.create_publisher(Twist, "~/cmd_vel", 10)
        self.trajectory_pub = self.create_publisher(JointTrajectory, "~/joint_trajectory", 10)
        self.status_pub = self.create_publisher(String, "~/status", 10)
        self.create_timer(1.0 / cfg.command_rate_hz, self._on_command_tick,
                          callback_group=MutuallyExclusiveCallbackGroup())
        if cfg.output_mode != "joint_state":
            self.create_timer(1.0 / cfg.trajectory_rate_hz, self._publish_trajectory)
        self.create_timer(1.0, self._publish_status)
        self.create_timer(0.5, self._watch_latched_estop)
        self._watch_latched_estop()
        attach_diagnostics(self, self.status, ClientDiagnostics(self.get_name()), on_publish=self._record)
        self.debug = DebugTopics(self, cfg, record=self._record, recording=lambda: self._session_open)
        self._topics = {name: self.resolve_topic_name(name) for name in (
            cfg.state_topic, cfg.base_velocity_topic, "~/task_description")}
        if self.recorder is not None:
            self.create_timer(0.1, self._watch_session)

    def _image_type(self):
        return Image if self.config.image_msg_type == "raw" else CompressedImage

    def _log(self, level: str, message: str) -> None:
        """The worker's log lines, through the ROS logger (/rosout). One call site per severity:
        rclpy refuses to change a call site's severity."""
        if level == "warning":
            self.get_logger().warning(message, throttle_duration_sec=2.0)
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
        """Activation (-> CONNECTING): a new session file, closing any still open."""
        if self.recorder is None:
            return
        name = time.strftime("groot_%Y%m%d_%H%M%S") + f"_a{self.machine.epoch}"
        try:
            path = self.recorder.start_session(name)
        except Exception as exc:  # noqa: BLE001 - a full or read-only disk must not stop the robot
            self.get_logger().error(f"recording not started: {exc}")
            return
        self._session_open = True
        self.get_logger().info(f"recording this activation to {path}")

    def _watch_session(self) -> None:
        """End the session once ACTIVE is left and the gate is silent (the hold fully published)."""
        if self._session_open and not self.machine.wants_inference and not self.gate.engaged:
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

    def _watch_latched_estop(self) -> None:
        """Keep a transient-local ~/estop subscription exactly while a latched publisher exists."""
        topic = self.resolve_topic_name("~/estop")
        latched = any(info.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
                      for info in self.get_publishers_info_by_topic(topic))
        if latched and self._latched_estop is None:
            self._latched_estop = self.create_subscription(Bool, "~/estop", self._on_estop, _LATCHED_QOS)
        elif not latched and self._latched_estop is not None:
            self.destroy_subscription(self._latched_estop)
            self._latched_estop = None

    # -- state machine -------------------------------------------------------------------------
    def _log_transition(self, old: ClientState, new: ClientState, cause: str) -> None:
        if new is ClientState.ERROR:
            self.get_logger().error(f"{old.value} -> {new.value} ({cause})")
        else:
            self.get_logger().info(f"{old.value} -> {new.value} ({cause})")

    def _on_activate(self, msg: Bool) -> None:
        with self._transitions:
            self._activate(msg.data)

    def _activate(self, on: bool) -> tuple[bool, str]:
        """activate:true/false (topic or ~/set_active): (success, what happened)."""
        before = self.machine.state
        if on and before in (ClientState.IDLE, ClientState.ERROR):
            try:
                self.gate.arm()
            except ActivationRefused as exc:
                self._activation_error = str(exc)
                self.worker.last_error = str(exc)
                self.get_logger().error(str(exc))
                self.machine.refuse("activation refused")
                return False, f"refused: robot state not usable: {describe_problems(exc.problems)}"
            self._activation_error = ""
            self.scheduler.reset()
            self.worker.reset_failures()
        if self.machine.activate(on) or (not on and self.gate.armed):
            self.scheduler.reset()
            self.gate.hold("activate:false")
        if on and before is not ClientState.CONNECTING and self.machine.state is ClientState.CONNECTING:
            self._start_session()
        return _activation_outcome(on, before, self.machine.state)

    def _on_estop(self, msg: Bool) -> None:
        with self._transitions:
            self._estop(msg.data)

    def _estop(self, on: bool) -> tuple[bool, str]:
        """estop:true/false (topic, ~/stop or ~/estop): (success, what happened)."""
        before = self.machine.state
        if self.machine.estop(on):
            self.scheduler.reset()
            self.gate.stop("estop")
        if on:
            if before is ClientState.E_STOP:
                return True, "already in E_STOP"
            return True, (f"E_STOP latched (was {before.value}): zero base velocity published; "
                          "release with ~/estop false")
        if before is ClientState.E_STOP:
            return True, f"E_STOP released: {self.machine.state.value}; activate again to move"
        return True, f"not in E_STOP ({before.value}): nothing to release"

    def _on_set_active_service(self, request, response):
        with self._transitions:
            response.success, response.message = self._activate(request.data)
        self.get_logger().info(f"~/set_active {str(request.data).lower()}: {response.message}")
        return response

    def _on_stop_service(self, request, response):
        with self._transitions:
            response.success, response.message = self._estop(True)
        self.get_logger().info(f"~/stop: {response.message}")
        return response

    def _on_estop_service(self, request, response):
        with self._transitions:
            response.success, response.message = self._estop(request.data)
        self.get_logger().info(f"~/estop {str(request.data).lower()}: {response.message}")
        return response

    def _on_inference_error(self, left: ClientState, message: str, epoch: int) -> None:
        """From the inference thread, after it moved the client to ERROR for activation `epoch`."""
        with self._transitions:
            if self.worker is None or self.machine.epoch != epoch:
                return  # shutting down, or a newer activation owns the gate now
            self.worker.last_error = message[:500]
            if left is ClientState.ACTIVE:
                self.scheduler.reset()
            self.gate.hold("inference failures")

    def _on_clock_jump(self, jump) -> None:
        """The ROS clock went back (sim time reset, `ros2 bag play --loop`) or its source changed: the
        queued steps, the measured stamps and the latency figures belong to another time line. Stop
        policy motion softly and require a fresh activation."""
        changed = jump.clock_change in (ClockChange.ROS_TIME_ACTIVATED, ClockChange.ROS_TIME_DEACTIVATED)
        if not changed and jump.delta.nanoseconds >= 0:
            return
        cause = "the ROS time source changed" if changed else \
            f"the ROS clock jumped back {-jump.delta.nanoseconds / 1e9:.3f} s"
        self.get_logger().warning(f"{cause}: holding; publish true on ~/activate to resume")
        with self._transitions:
            if self.machine.fail(None, cause) is not None and self.worker is not None:
                self.worker.last_error = cause
            self.scheduler.reset()
            if self.gate.engaged:
                self.gate.hold(cause)

    # -- the 100 Hz loop ------------------------------------------------------------------------
    def _on_command_tick(self) -> None:
        now = time.monotonic()
        if self._last_tick is not None:
            self.command_period_ms.add((now - self._last_tick) * 1000.0)
        self._last_tick = now
        active = self.machine.state is ClientState.ACTIVE
        target = self.scheduler.command() if active else None
        self._tick_thread = threading.get_ident()
        try:
            command = self.gate.step(target)
        finally:
            self._tick_thread = None
        debug = self.debug
        if debug is not None and debug.gate_wanted():
            debug.gate_tick(target, command, self.get_clock().now().nanoseconds)

    def _publish(self, command: Command) -> None:
        """The gate's output: every command leaves through here, nowhere else."""
        cfg = self.config
        debug = self.debug
        if (command.kind is not CommandKind.PLAN and self._tick_thread != threading.get_ident()
                and debug is not None and debug.gate_wanted()):
            # a hold or stop decided outside the tick (activate:false, e-stop, failures, shutdown)
            debug.gate_tick(None, command, self.get_clock().now().nanoseconds)
        if command.kind is CommandKind.PLAN:
            dt = 1.0 / cfg.action_step_hz
            plan = self._trajectory(command.path[:, JOINT_DIMS], dt)
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

    def _publish_trajectory(self) -> None:
        """joint_trajectory mode: the rest of the schedule, limited and emitted by the gate."""
        if self.machine.state is not ClientState.ACTIVE:
            return
        dt = 1.0 / self.config.action_step_hz
        now = self.now()
        steps = int(np.ceil(self.scheduler.remaining_steps(now)))
        planned = self.scheduler.preview([now + (k + 1) * dt for k in range(steps)])
        if planned is not None:
            self.gate.plan(planned, dt)

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

    def _check_budget(self) -> None:
        budget = self.refill.budget()
        if budget != self._budget_warned:
            self._budget_warned = budget
            if budget != "ok":
                self.get_logger().warning(self._budget_text(budget))

    def _budget_text(self, budget: str) -> str:
        expected = self.refill.expected_latency_s() * 1000.0
        duration = self.scheduler.chunk_duration_s * 1000.0
        if budget == "too_slow":
            return (f"policy slower than its chunk: expected latency {expected:.0f} ms + margin "
                    f"{self.config.latency_margin_ms:.0f} ms >= chunk duration {duration:.0f} ms; running "
                    f"synchronously: each chunk plays in full, then the robot holds about "
                    f"{max(0.0, expected - self.config.latency_margin_ms):.0f} ms while the next is computed")
        if budget == "seams_hold":
            return (f"latency {expected:.0f} ms >= half the chunk duration ({duration / 2:.0f} ms of {duration:.0f} "
                    "ms): with one request in flight the queue runs dry at some seams, where the robot holds")
        return ""

    # -- status --------------------------------------------------------------------------------
    def status(self) -> dict:
        w, gate = self.worker, self.gate
        rtt = w.round_trip_ms.snapshot()
        latency = w.latency_ms.snapshot()
        period = self.command_period_ms.snapshot()
        reading = self.measured.reading()
        problems = reading.problems(self.now(), self.config.max_observation_age_ms / 1000.0)
        budget = self.refill.budget()
        return {
            "state": self.machine.state.value,
            "task": self.inputs.task,
            "server_address": self.config.address,
            "server_protocol": self.config.server_protocol,
            "output_mode": self.config.output_mode,
            "requests_ok": w.requests_ok,
            "requests_failed": w.requests_failed,
            "requests_late": w.requests_late,
            "round_trip_p50_ms": rtt["p50"],
            "round_trip_p95_ms": rtt["p95"],
            "latency_p50_ms": latency["p50"],
            "latency_p95_ms": latency["p95"],
            "expected_latency_ms": round(self.refill.expected_latency_s() * 1000.0, 1),
            "request_timeout_ms": round(self.refill.timeout_ms(), 1),
            "latency_budget": budget,
            "chunk_duration_ms": round(self.scheduler.chunk_duration_s * 1000.0, 1),
            "plan_time_s": round(self.scheduler.plan_time(), 3),
            "pings_ok": w.pings_ok,
            "rtc": w.rtc_status(),
            "policy_too_slow": self._budget_text(budget) if budget == "too_slow" else False,
            "server_inference_ms": round(w.server_inference_ms.last, 3),
            "chunks_received": self.scheduler.chunks_received,
            "chunks_rejected": w.chunks_rejected,
            "steps_skipped_last_chunk": w.last_steps_skipped,
            "queue_depth_steps": round(self.scheduler.remaining_steps(), 2),
            "stale_observations_skipped": w.stale_skipped,
            "stale_inputs": w.stale_inputs,
            "missing_joints": problems.get("missing", []),
            "invalid_joints": problems.get("invalid", []),
            "stale_joints": problems.get("stale", []),
            "unknown_joint_names": sorted(self.measured.unknown_names)[:21],
            "consecutive_failures": w.consecutive_failures,
            "last_error": w.last_error,
            "activation_error": self._activation_error,
            "commands_published": gate.policy_commands,
            "holds_published": gate.holds_started,
            "hold_commands": gate.hold_commands,
            "last_hold_reason": gate.last_hold_reason,
            "command_period_p50_ms": period["p50"],
            "command_period_p99_ms": period["p99"],
            "safety_rejected_nonfinite": gate.rejected_nonfinite,
            "safety_limited_ticks": gate.limited_ticks,
            "safety_waiting_for_state": gate.waiting_for_state,
            "stages_ms": w.stages.summary(),
            "recording": self.recorder.stats() if self.recorder is not None else dict(_NOT_RECORDING),
        }

    def _publish_status(self) -> None:
        self._check_budget()  # 1 Hz is soon enough for a warning; kept off the 100 Hz tick
        msg = String(data=json.dumps(self.status()))
        self.status_pub.publish(msg)
        self._record(self.status_pub.topic_name, msg)


    def close(self) -> None:
        """Shutdown: a stop (zero base velocity at once) while the context is still valid, then the
        worker; the profile table only when something ran."""
        if self.worker is None:
            return
        if self.gate.engaged and self.context.ok():
            self.gate.stop("shutdown")
        if self.recorder is not None:
            self._session_open = False
            self.recorder.close()  # the session so far, summary written (bounded wait)
        self.worker.stop()
        if self.worker.stages.summary():
            log_info(self, "client profile (ms):\n" + self.worker.stages.format_table())
        self.worker = None


_NOT_RECORDING = {"recording": False, "path": "", "written": 0, "dropped": 0, "bytes": 0, "files": 0,
                  "last_error": ""}


def _activation_outcome(on: bool, before: ClientState, after: ClientState) -> tuple[bool, str]:
    """What an activate:true/false did, from the states before and after it (refusals by the gate are
    answered where they happen)."""
    if on:
        if before is ClientState.E_STOP:
            return False, "refused: in E_STOP (latched); release it first with ~/estop false"
        if before in (ClientState.CONNECTING, ClientState.ACTIVE):
            return True, f"already active ({before.value})"
        if after in (ClientState.CONNECTING, ClientState.ACTIVE):
            return True, f"activated: {after.value}, policy motion starts with the first chunk"
        return False, f"refused: state {after.value}"
    if before is ClientState.E_STOP:
        return True, "not active: E_STOP stays latched; release it with ~/estop false"
    if before is ClientState.IDLE:
        return True, "already IDLE"
    held = "; holding where the robot is" if before in (ClientState.CONNECTING, ClientState.ACTIVE) else ""
    return True, f"deactivated: {after.value} (was {before.value}){held}"


def _stamp_seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def main(args=None) -> int:
    return run_node(GrootClient, args)


if __name__ == "__main__":
    sys.exit(main())

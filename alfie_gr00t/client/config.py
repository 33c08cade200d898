"""groot_client's parameters (ClientConfig), validated at construction."""

from __future__ import annotations

from dataclasses import dataclass

from alfie_gr00t import layout
from alfie_gr00t.settings import check_choices, param, require, require_curve_pair
from alfie_gr00t.wire.curve import CurveClientKeys, load_client_keys
from alfie_gr00t.wire.transport import endpoint_address


@dataclass(frozen=True)
class ClientConfig:
    """groot_client's parameters, each declared once (settings.param: default, meaning, choices)."""

    transport: str = param("ipc", "`ipc` or `tcp`", ("ipc", "tcp"))
    ipc_path: str = param("/tmp/groot_inference.sock", "server IPC socket file")
    server_host: str = param("127.0.0.1", "server TCP host")
    server_port: int = param(5555, "server TCP port")
    server_protocol: str = param("alfie", "`alfie` (JPEG, this package's server) or `gr00t` (an upstream "
                                          "Isaac-GR00T PolicyServer)", ("alfie", "gr00t"))
    api_token: str = param("", "sent with every request when set")
    curve_secret_key: str = param("", "CurveZMQ (`tcp` only): this robot's secret certificate, `NAME.key_secret` "
                                      "from `groot_keys client DIR` (mode 0600/0400). Set together with "
                                      "`curve_server_key`")
    curve_server_key: str = param("", "CurveZMQ: the server's PUBLIC certificate (`server.key`), pinned: only the "
                                      "holder of the matching secret can answer")
    camera_names: tuple[str, ...] = param(layout.CAMERA_NAMES, "the four image keys")
    camera_topics: tuple[str, ...] = param(
        tuple(f"/alfie/cameras/{n}/image_raw" for n in layout.CAMERA_NAMES), "one topic per camera, same order")
    image_msg_type: str = param("raw", "`raw` (`sensor_msgs/Image`) or `compressed` "
                                       "(`sensor_msgs/CompressedImage`)", ("raw", "compressed"))
    image_encoding: str = param("jpeg", "`jpeg` or `raw` (uncompressed RGB, for on-device IPC)", ("jpeg", "raw"))
    image_width: int = param(layout.IMAGE_WIDTH, "model input width")
    image_height: int = param(layout.IMAGE_HEIGHT, "model input height")
    jpeg_quality: int = param(90, "JPEG quality 1-100")
    encode_threads: int = param(4, "parallel conversion/encode threads")
    state_topic: str = param("/alfie/joint_states", "state topic")
    state_msg_type: str = param("joint_state", "`joint_state` (by name) or `float32_array` (21 floats)",
                                               ("joint_state", "float32_array"))
    base_velocity_topic: str = param(
        "/alfie/base_velocity", "`geometry_msgs/Twist` feeding state dims 0-5 in `joint_state` mode")
    joint_names: tuple[str, ...] = param(layout.JOINT_NAMES, "21 names in layout order")
    joint_lower_limits: tuple[float, ...] = param(layout.LOWER_LIMITS, "21 lower limits (dims 0-5: base velocity)")
    joint_upper_limits: tuple[float, ...] = param(layout.UPPER_LIMITS, "21 upper limits")
    joint_velocity_limits: tuple[float, ...] = param(
        layout.JOINT_VELOCITY_LIMITS, "rad/s for the 15 joint dims (6–20) in layout order; grippers faster")
    base_acceleration_limits: tuple[float, ...] = param(
        layout.BASE_ACCELERATION_LIMITS, "m/s² (dims 0–2) and rad/s² (3–5); also the soft-hold deceleration")
    chunk_reject_margin: float = param(0.2, "a chunk beyond the limits by more than this is rejected, not clamped")
    command_rate_hz: float = param(100.0, "command loop rate")
    action_step_hz: float = param(15.0, "rate the chunk's steps play at (training rate)")
    action_horizon: int = param(layout.ACTION_HORIZON, "steps of a chunk used")
    action_dim: int = param(layout.ACTION_DIM, "values per step")
    refill_threshold_steps: float = param(0.0, "0: latency-aware refill (default); > 0: request when fewer steps "
                                               "remain")
    min_refill_steps: float = param(8.0, "re-plan at least when this many steps are left, even at low latency")
    replan_every_steps: float = param(4.0, "against a server that advertises real-time chunking: a request every "
                                           "this many executed steps, spliced without a crossfade; 0 = off; off "
                                           "for a policy slower than its chunk "
                                           "([latency.md](latency.md#replanning-with-real-time-chunking))")
    splice_tolerance: float = param(0.01, "a reply's frozen steps within this (rad, m/s) of the prefix sent are "
                                          "spliced; further off: crossfaded and counted")
    latency_margin_ms: float = param(60.0, "added to the expected latency when deciding to request")
    send_action_prefix: bool = param(True, "send the still-executing prefix and expected delay (real-time "
                                           "chunking hint)")
    crossfade_steps: int = param(3, "old/new chunk blend length (steps)")
    ema_alpha: float = param(1.0, "EMA on the output (1 = off)")
    target_fps: float = param(15.0, "upper bound on requests per second")
    inference_timeout_ms: int = param(10000, "the longest a request waits: cap of the adaptive timeout (2 × "
                                             "measured latency + margin), and the first request's timeout while "
                                             "nothing is known about the server's latency (first contact is a 1 s "
                                             "`ping`); the socket is recreated after a timeout")
    max_consecutive_failures: int = param(5, "failures in a row before ERROR")
    watchdog_timeout_s: float = param(2.0, "backstop: no fresh chunk for this long: hold (chunks run dry on their "
                                           "own after 1.07 s)")
    max_observation_age_ms: float = param(250.0, "older camera/state: the observation is not sent")
    task_description: str = param("find the can and pick it up", "language instruction")
    stats_file: str = param("", "LeRobot stats (`meta/stats.json`, `stats.jsonl` or a dataset dir); empty = identity")
    output_mode: str = param("joint_state", "`joint_state` (`~/joint_commands`), `joint_trajectory` "
                                            "(`~/joint_trajectory` for a `joint_trajectory_controller`), or "
                                            "`both`; `cmd_vel` always", ("joint_state", "joint_trajectory", "both"))
    trajectory_rate_hz: float = param(15.0, "how often `~/joint_trajectory` is published")
    record_dir: str = param("", "record one rosbag2 bag (MCAP storage) per activation into this directory "
                                "([recording.md](recording.md)); empty = off")
    record_max_mb: float = param(2048.0, "a session file ends at this size; later messages are dropped and "
                                         "counted until the next activation")
    record_max_files: int = param(50, "the oldest sessions (bag directories, older `*.mcap` files) in "
                                      "`record_dir` are deleted beyond this many (0 = no cap)")
    record_split_mb: float = param(0.0, "a session's storage file ends past this size and the next one "
                                        "(`<name>_1.mcap`, ...) starts, all listed in its `metadata.yaml`, as "
                                        "`ros2 bag record --max-bag-size` splits; 0 = one file")
    deadman_topic: str = param("", "heartbeat topic, any message type: while set, the robot moves only while "
                                   "fresh messages arrive there, and activation is refused without one "
                                   "([safety.md](safety.md)); empty = off")
    deadman_timeout_ms: float = param(500.0, "silence on `deadman_topic` longer than this holds the robot through "
                                             "the gate")
    command_thread_priority: int = param(50, "SCHED_FIFO priority (1–99) asked for the 100 Hz command thread "
                                             "(its period p99 with every core busy: 11.5 ms, 13.5 ms without); "
                                             "refused without the right (logged, status `command_thread`); 0 = "
                                             "normal scheduling "
                                            "([robot-jetson.md](robot-jetson.md#real-time-priority))")

    def __post_init__(self):
        check_choices(self)
        require(len(self.camera_topics) == len(self.camera_names), "camera_topics needs one topic per camera name")
        for name in ("joint_names", "joint_lower_limits", "joint_upper_limits"):
            require(len(getattr(self, name)) == self.action_dim,
                     f"{name} needs {self.action_dim} entries, got {len(getattr(self, name))}")
        require(all(lo <= hi for lo, hi in zip(self.joint_lower_limits, self.joint_upper_limits)),
                 "every joint_lower_limits entry must be <= its joint_upper_limits entry")
        for name in ("command_rate_hz", "action_step_hz", "target_fps", "watchdog_timeout_s",
                     "max_observation_age_ms", "chunk_reject_margin", "trajectory_rate_hz"):
            require(getattr(self, name) > 0, f"{name} must be positive, got {getattr(self, name)}")
        require(self.max_consecutive_failures > 0, "max_consecutive_failures must be positive")
        require(self.record_max_mb > 0, f"record_max_mb must be positive, got {self.record_max_mb}")
        require(self.deadman_timeout_ms > 0, f"deadman_timeout_ms must be positive, got {self.deadman_timeout_ms}")
        require(0 <= self.command_thread_priority <= 99,
                f"command_thread_priority must be 0 (off) or a SCHED_FIFO priority 1..99, got {self.command_thread_priority}")
        require(self.record_split_mb >= 0, f"record_split_mb must be >= 0 (0 = one file), got {self.record_split_mb}")
        require(self.record_max_files >= 0, f"record_max_files must be >= 0 (0 = no cap), got {self.record_max_files}")
        require(self.splice_tolerance >= 0, f"splice_tolerance must be >= 0, got {self.splice_tolerance}")
        require(1 <= self.jpeg_quality <= 100, f"jpeg_quality must be 1..100, got {self.jpeg_quality}")
        require(0.0 < self.ema_alpha <= 1.0, f"ema_alpha must be in (0, 1], got {self.ema_alpha}")
        require(0 < self.action_horizon and 0 <= self.crossfade_steps < self.action_horizon,
                 f"action_horizon > 0 and 0 <= crossfade_steps < action_horizon, got {self.crossfade_steps}")
        require(self.command_rate_hz >= self.action_step_hz,
                 f"command_rate_hz ({self.command_rate_hz}) must be at least action_step_hz ({self.action_step_hz})")
        require(self.watchdog_timeout_s * 1000.0 > self.latency_margin_ms,
                 f"watchdog_timeout_s ({self.watchdog_timeout_s}) must exceed latency_margin_ms ({self.latency_margin_ms})")
        self.refill_config()  # each part validates itself: latency/refill, motion limits
        self.motion_limits()
        endpoint_address(self.transport, self.ipc_path, self.server_host, self.server_port)
        require_curve_pair(self.transport, "this client's secret certificate and the server's public one",
                           curve_secret_key=self.curve_secret_key, curve_server_key=self.curve_server_key)

    def curve_keys(self) -> CurveClientKeys | None:
        """The loaded, permission-checked Curve keys (reads the files: call at start), or None without Curve."""
        return load_client_keys(self.curve_secret_key, self.curve_server_key) if self.curve_secret_key else None

    def refill_config(self):
        from alfie_gr00t.client.latency import RefillConfig

        # replanning splices on the prefix a request carries: none sent, no replanning
        return RefillConfig(self.action_step_hz, self.action_horizon, self.refill_threshold_steps,
                            self.min_refill_steps, self.latency_margin_ms, self.inference_timeout_ms,
                            self.replan_every_steps if self.send_action_prefix else 0.0)

    def motion_limits(self):
        from alfie_gr00t.client.safety import MotionLimits

        return MotionLimits.from_config(self)

    @property
    def address(self) -> str:
        return endpoint_address(self.transport, self.ipc_path, self.server_host, self.server_port)

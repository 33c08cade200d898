"""groot_client's parameters (ClientConfig), validated at construction."""

from __future__ import annotations

from dataclasses import dataclass

from alfie_gr00t import layout
from alfie_gr00t.settings import check_choice, require, require_curve_pair
from alfie_gr00t.wire.curve import CurveClientKeys, load_client_keys
from alfie_gr00t.wire.transport import endpoint_address


@dataclass(frozen=True)
class ClientConfig:
    transport: str = "ipc"
    ipc_path: str = "/tmp/groot_inference.sock"
    server_host: str = "127.0.0.1"
    server_port: int = 5555
    server_protocol: str = "alfie"
    api_token: str = ""
    curve_secret_key: str = ""  # CurveZMQ (tcp only): this robot's secret certificate (groot_keys client DIR)
    curve_server_key: str = ""  # the server's PUBLIC certificate (server.key), pinned
    camera_names: tuple[str, ...] = layout.CAMERA_NAMES
    camera_topics: tuple[str, ...] = tuple(f"/alfie/cameras/{n}/image_raw" for n in layout.CAMERA_NAMES)
    image_msg_type: str = "raw"
    image_encoding: str = "jpeg"
    image_width: int = layout.IMAGE_WIDTH
    image_height: int = layout.IMAGE_HEIGHT
    jpeg_quality: int = 90
    encode_threads: int = 4
    state_topic: str = "/alfie/joint_states"
    state_msg_type: str = "joint_state"
    base_velocity_topic: str = "/alfie/base_velocity"
    joint_names: tuple[str, ...] = layout.JOINT_NAMES
    joint_lower_limits: tuple[float, ...] = layout.LOWER_LIMITS
    joint_upper_limits: tuple[float, ...] = layout.UPPER_LIMITS
    joint_velocity_limits: tuple[float, ...] = layout.JOINT_VELOCITY_LIMITS
    base_acceleration_limits: tuple[float, ...] = layout.BASE_ACCELERATION_LIMITS
    chunk_reject_margin: float = 0.2
    command_rate_hz: float = 100.0
    action_step_hz: float = 15.0
    action_horizon: int = layout.ACTION_HORIZON
    action_dim: int = layout.ACTION_DIM
    refill_threshold_steps: float = 0.0
    min_refill_steps: float = 8.0
    replan_every_steps: float = 4.0  # against a server that inpaints: a request every this many executed steps
    splice_tolerance: float = 0.01  # a reply's frozen steps within this of the prefix sent are spliced
    latency_margin_ms: float = 60.0
    send_action_prefix: bool = True
    crossfade_steps: int = 3
    ema_alpha: float = 1.0
    target_fps: float = 15.0
    inference_timeout_ms: int = 10000
    max_consecutive_failures: int = 5
    watchdog_timeout_s: float = 2.0
    max_observation_age_ms: float = 250.0
    task_description: str = "find the can and pick it up"
    stats_file: str = ""
    output_mode: str = "joint_state"
    trajectory_rate_hz: float = 15.0
    record_dir: str = ""  # session recording: one rosbag2 bag (MCAP) per activation in this directory; "" = off
    record_max_mb: float = 2048.0  # a session file ends at this size (dropping until the next activation)
    record_max_files: int = 50  # the oldest sessions in record_dir are deleted beyond this many (0 = no cap)
    record_split_mb: float = 0.0  # a session's storage file ends past this size, the next one starts; 0 = one file
    deadman_topic: str = ""  # heartbeat topic (any message type): move only while it is fresh; "" = off
    deadman_timeout_ms: float = 500.0  # silence on deadman_topic beyond this holds the robot
    command_thread_priority: int = 0  # SCHED_FIFO priority (1-99) for the 100 Hz command thread; 0 = normal

    def __post_init__(self):
        check_choice("transport", self.transport, ("ipc", "tcp"))
        check_choice("output_mode", self.output_mode, ("joint_state", "joint_trajectory", "both"))
        check_choice("server_protocol", self.server_protocol, ("alfie", "gr00t"))
        check_choice("image_msg_type", self.image_msg_type, ("raw", "compressed"))
        check_choice("image_encoding", self.image_encoding, ("jpeg", "raw"))
        check_choice("state_msg_type", self.state_msg_type, ("joint_state", "float32_array"))
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

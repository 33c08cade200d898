"""Node configurations as validated dataclasses: the one place parameters are declared.

Field names are the ROS parameter names and field defaults are the parameter defaults
(`config/*.yaml` repeats them; a test keeps the two equal). Nodes declare one ROS
parameter per field and build the dataclass from the values, so validation runs before
anything starts.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from alfie_gr00t import layout
from alfie_gr00t.engines.base import EngineConfig
from alfie_gr00t.protocol import RequestLimits
from alfie_gr00t.transport import endpoint_address, is_loopback_host

_GROUP_NAMES = tuple(g.name for g in layout.LAYOUT_GROUPS)
_GROUP_SIZES = tuple(g.size for g in layout.LAYOUT_GROUPS)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    _require(value in choices, f"{name} must be one of {choices}, got {value!r}")


@dataclass(frozen=True)
class ServerConfig:
    transport: str = "ipc"
    ipc_path: str = "/tmp/groot_inference.sock"
    ipc_mode: str = "0660"
    bind_host: str = "127.0.0.1"
    bind_port: int = 5555
    model_checkpoint: str = ""
    use_tensorrt: bool = False
    tensorrt_engine_path: str = ""  # GR00T DiT engine; "" = the dit*.engine beside model_checkpoint
    mock_mode: bool = False
    mock_delay_ms: float = 0.0
    mock_jitter_ms: float = 0.0
    mock_policy: str = "hold"
    device: str = "cuda:0"
    embodiment_tag: str = "new_embodiment"
    denoising_steps: int = 4
    warmup_runs: int = 3
    action_horizon: int = layout.ACTION_HORIZON
    action_dim: int = layout.ACTION_DIM
    camera_names: tuple[str, ...] = layout.CAMERA_NAMES
    video_keys: tuple[str, ...] = layout.CAMERA_NAMES
    state_group_names: tuple[str, ...] = _GROUP_NAMES
    state_group_sizes: tuple[int, ...] = _GROUP_SIZES
    language_key: str = "task"
    image_width: int = layout.IMAGE_WIDTH
    image_height: int = layout.IMAGE_HEIGHT
    decode_threads: int = 4
    max_message_bytes: int = 16 << 20  # 8 raw observations (8.6 MB) fit with margin; README: message size limit
    max_image_side: int = 2048
    max_language_chars: int = 1024
    max_batch_size: int = 8
    api_token: str = ""
    allow_remote_kill: bool = False
    engine: str = "auto"
    triton_url: str = "127.0.0.1:8001"
    triton_model: str = "groot_policy"
    triton_model_version: str = ""
    triton_timeout_ms: float = 1000.0

    def __post_init__(self):
        _check_choice("transport", self.transport, ("ipc", "tcp"))
        _check_choice("mock_policy", self.mock_policy, ("hold", "trajectory"))
        _check_choice("engine", self.engine, ("auto", "triton"))
        _require(self.triton_timeout_ms > 0, f"triton_timeout_ms must be positive, got {self.triton_timeout_ms}")
        _require(self.mock_delay_ms >= 0 and self.mock_jitter_ms >= 0, "mock_delay_ms and mock_jitter_ms must be >= 0")
        _require(len(self.camera_names) == len(set(self.camera_names)) > 0, "camera_names must be unique and non-empty")
        _require(len(self.video_keys) == len(self.camera_names), "video_keys needs one key per camera name")
        groups = layout.groups_from_sizes(self.state_group_names, self.state_group_sizes)
        _require(groups[-1].stop == self.action_dim,
                 f"state_group_sizes sum to {groups[-1].stop}, action_dim is {self.action_dim}")
        _require(self.action_horizon > 0 and self.action_dim > 0, "action_horizon and action_dim must be positive")
        _require(self.image_width > 0 and self.image_height > 0, "image size must be positive")
        _require(self.warmup_runs >= 0 and self.decode_threads >= 1, "warmup_runs >= 0 and decode_threads >= 1")
        int(self.ipc_mode, 8)  # raises ValueError for a mode that is not octal
        RequestLimits(self.max_message_bytes, self.max_image_side, self.max_language_chars, self.max_batch_size)
        endpoint_address(self.transport, self.ipc_path, self.bind_host, self.bind_port)

    @property
    def address(self) -> str:
        return endpoint_address(self.transport, self.ipc_path, self.bind_host, self.bind_port)

    def exposure_warning(self) -> str | None:
        """A warning when TCP listens beyond loopback with no api_token (anyone reachable can drive the robot)."""
        if self.transport == "tcp" and not is_loopback_host(self.bind_host) and not self.api_token:
            return (f"TCP bound to {self.bind_host} without api_token: anyone who can reach port {self.bind_port} "
                    "can request actions. Set api_token for remote use.")
        return None

    @property
    def limits(self) -> RequestLimits:
        return RequestLimits(self.max_message_bytes, self.max_image_side, self.max_language_chars, self.max_batch_size)

    @property
    def groups(self) -> tuple[layout.LayoutGroup, ...]:
        return layout.groups_from_sizes(self.state_group_names, self.state_group_sizes)

    def engine_config(self) -> EngineConfig:
        return EngineConfig(
            tensorrt_engine_path=self.tensorrt_engine_path,
            mock_mode=self.mock_mode, model_checkpoint=self.model_checkpoint, use_tensorrt=self.use_tensorrt,
            device=self.device, action_horizon=self.action_horizon, action_dim=self.action_dim,
            image_width=self.image_width, image_height=self.image_height, camera_names=self.camera_names,
            embodiment_tag=self.embodiment_tag, denoising_steps=self.denoising_steps,
            mock_delay_ms=self.mock_delay_ms, mock_jitter_ms=self.mock_jitter_ms, mock_policy=self.mock_policy,
            video_keys=self.video_keys, state_groups=self.groups,
            language_key=self.language_key,
            engine=self.engine, triton_url=self.triton_url, triton_model=self.triton_model,
            triton_model_version=self.triton_model_version, triton_timeout_ms=self.triton_timeout_ms,
        )


@dataclass(frozen=True)
class ClientConfig:
    transport: str = "ipc"
    ipc_path: str = "/tmp/groot_inference.sock"
    server_host: str = "127.0.0.1"
    server_port: int = 5555
    server_protocol: str = "alfie"
    api_token: str = ""
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
    latency_margin_ms: float = 60.0
    send_action_prefix: bool = True
    crossfade_steps: int = 3
    ema_alpha: float = 1.0
    target_fps: float = 15.0
    inference_timeout_ms: int = 2000
    max_consecutive_failures: int = 5
    watchdog_timeout_s: float = 2.0
    max_observation_age_ms: float = 250.0
    task_description: str = "find the can and pick it up"
    stats_file: str = ""
    output_mode: str = "joint_state"
    trajectory_rate_hz: float = 15.0

    def __post_init__(self):
        _check_choice("transport", self.transport, ("ipc", "tcp"))
        _check_choice("output_mode", self.output_mode, ("joint_state", "joint_trajectory", "both"))
        _check_choice("server_protocol", self.server_protocol, ("alfie", "gr00t"))
        _check_choice("image_msg_type", self.image_msg_type, ("raw", "compressed"))
        _check_choice("image_encoding", self.image_encoding, ("jpeg", "raw"))
        _check_choice("state_msg_type", self.state_msg_type, ("joint_state", "float32_array"))
        _require(len(self.camera_topics) == len(self.camera_names), "camera_topics needs one topic per camera name")
        for name in ("joint_names", "joint_lower_limits", "joint_upper_limits"):
            _require(len(getattr(self, name)) == self.action_dim,
                     f"{name} needs {self.action_dim} entries, got {len(getattr(self, name))}")
        _require(all(lo <= hi for lo, hi in zip(self.joint_lower_limits, self.joint_upper_limits)),
                 "every joint_lower_limits entry must be <= its joint_upper_limits entry")
        for name in ("command_rate_hz", "action_step_hz", "target_fps", "watchdog_timeout_s",
                     "max_observation_age_ms", "chunk_reject_margin", "trajectory_rate_hz"):
            _require(getattr(self, name) > 0, f"{name} must be positive, got {getattr(self, name)}")
        _require(self.max_consecutive_failures > 0, "max_consecutive_failures must be positive")
        _require(1 <= self.jpeg_quality <= 100, f"jpeg_quality must be 1..100, got {self.jpeg_quality}")
        _require(0.0 < self.ema_alpha <= 1.0, f"ema_alpha must be in (0, 1], got {self.ema_alpha}")
        _require(0 < self.action_horizon and 0 <= self.crossfade_steps < self.action_horizon,
                 f"action_horizon > 0 and 0 <= crossfade_steps < action_horizon, got {self.crossfade_steps}")
        _require(self.command_rate_hz >= self.action_step_hz,
                 f"command_rate_hz ({self.command_rate_hz}) must be at least action_step_hz ({self.action_step_hz})")
        _require(self.watchdog_timeout_s * 1000.0 > self.latency_margin_ms,
                 f"watchdog_timeout_s ({self.watchdog_timeout_s}) must exceed latency_margin_ms ({self.latency_margin_ms})")
        self.refill_config()  # each part validates itself: latency/refill, motion limits
        self.motion_limits()
        endpoint_address(self.transport, self.ipc_path, self.server_host, self.server_port)

    def refill_config(self):
        from alfie_gr00t.latency import RefillConfig

        return RefillConfig(self.action_step_hz, self.action_horizon, self.refill_threshold_steps,
                            self.min_refill_steps, self.latency_margin_ms, self.inference_timeout_ms)

    def motion_limits(self):
        from alfie_gr00t.safety import MotionLimits

        return MotionLimits.from_config(self)

    @property
    def address(self) -> str:
        return endpoint_address(self.transport, self.ipc_path, self.server_host, self.server_port)


def config_from_values(config_cls, values: dict):
    """Build a config from parameter values (lists become tuples); unknown names are an error."""
    known = {f.name: f for f in fields(config_cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"unknown {config_cls.__name__} parameters: {unknown}")
    converted = {name: tuple(v) if isinstance(v, list) else v for name, v in values.items()}
    return config_cls(**converted)


def defaults_as_parameters(config_cls) -> dict:
    """{name: default} with tuples as lists, the form ROS parameters and YAML use."""
    result = {}
    for f in fields(config_cls):
        value = f.default
        result[f.name] = list(value) if isinstance(value, tuple) else value
    return result

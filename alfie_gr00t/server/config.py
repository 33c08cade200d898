"""groot_server's parameters (ServerConfig), validated at construction."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from alfie_gr00t import layout
from alfie_gr00t.engines.base import EngineConfig
from alfie_gr00t.settings import check_choice, require, require_curve_pair
from alfie_gr00t.wire.protocol import RequestLimits
from alfie_gr00t.wire.curve import CurveServerKeys, load_server_keys
from alfie_gr00t.wire.transport import endpoint_address, is_loopback_host

_GROUP_NAMES = tuple(g.name for g in layout.LAYOUT_GROUPS)
_GROUP_SIZES = tuple(g.size for g in layout.LAYOUT_GROUPS)


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
    dit_engine_path: str = ""  # GR00T DiT file, its suffix picks the backend: .engine/.plan/.trt TensorRT, .onnx ONNX Runtime
    mock_mode: bool = False
    mock_delay_ms: float = 0.0
    mock_jitter_ms: float = 0.0
    mock_policy: str = "hold"
    device: str = "cuda:0"
    embodiment_tag: str = "new_embodiment"
    denoising_steps: int = 4
    rtc: bool = True  # real-time chunking: inpaint a request's action_prefix (docs/rtc.md)
    rtc_ramp_rate: float = 1.0  # soft-mask decay over the prefix after its frozen steps; 1 = the RTC paper's
    warmup_runs: int = 3
    action_horizon: int = layout.ACTION_HORIZON
    action_dim: int = layout.ACTION_DIM
    camera_names: tuple[str, ...] = layout.CAMERA_NAMES
    # Isaac-GR00T layout: a value left at its default adopts the checkpoint's (checkpoint.md)
    video_keys: tuple[str, ...] = layout.CAMERA_NAMES  # == camera_names: each camera feeds the key of its name
    state_group_names: tuple[str, ...] = _GROUP_NAMES
    state_group_sizes: tuple[int, ...] = _GROUP_SIZES
    language_key: str = "task"  # "task" = the checkpoint's own key; anything else must equal it
    image_width: int = layout.IMAGE_WIDTH
    image_height: int = layout.IMAGE_HEIGHT
    decode_threads: int = 4
    max_message_bytes: int = 16 << 20  # 8 raw observations (8.6 MB) fit with margin; README: message size limit
    max_image_side: int = 2048
    max_language_chars: int = 1024
    max_batch_size: int = 8
    api_token: str = ""
    curve_secret_key: str = ""  # CurveZMQ (tcp only): this server's secret certificate (groot_keys server DIR)
    curve_allowed_clients: str = ""  # directory of allowed client public certificates (*.key); empty dir = nobody
    allow_remote_kill: bool = False
    engine: str = "auto"
    triton_url: str = "127.0.0.1:8001"
    triton_model: str = "groot_policy"
    triton_model_version: str = ""
    triton_timeout_ms: float = 1000.0

    def __post_init__(self):
        check_choice("transport", self.transport, ("ipc", "tcp"))
        check_choice("mock_policy", self.mock_policy, ("hold", "trajectory"))
        check_choice("engine", self.engine, ("auto", "triton"))
        require(self.triton_timeout_ms > 0, f"triton_timeout_ms must be positive, got {self.triton_timeout_ms}")
        require(self.rtc_ramp_rate > 0 and self.rtc_ramp_rate < 50,
                f"rtc_ramp_rate must be in (0, 50), got {self.rtc_ramp_rate}")
        require(self.mock_delay_ms >= 0 and self.mock_jitter_ms >= 0, "mock_delay_ms and mock_jitter_ms must be >= 0")
        require(len(self.camera_names) == len(set(self.camera_names)) > 0, "camera_names must be unique and non-empty")
        require(len(self.video_keys) == len(self.camera_names), "video_keys needs one key per camera name")
        groups = layout.groups_from_sizes(self.state_group_names, self.state_group_sizes)
        require(groups[-1].stop == self.action_dim,
                 f"state_group_sizes sum to {groups[-1].stop}, action_dim is {self.action_dim}")
        require(self.action_horizon > 0 and self.action_dim > 0, "action_horizon and action_dim must be positive")
        require(self.image_width > 0 and self.image_height > 0, "image size must be positive")
        require(self.warmup_runs >= 0 and self.decode_threads >= 1, "warmup_runs >= 0 and decode_threads >= 1")
        int(self.ipc_mode, 8)  # raises ValueError for a mode that is not octal
        RequestLimits(self.max_message_bytes, self.max_image_side, self.max_language_chars, self.max_batch_size)
        endpoint_address(self.transport, self.ipc_path, self.bind_host, self.bind_port)
        require_curve_pair(self.transport, "an empty curve_allowed_clients directory refuses every client",
                           curve_secret_key=self.curve_secret_key, curve_allowed_clients=self.curve_allowed_clients)

    @property
    def curve(self) -> bool:
        return bool(self.curve_secret_key)

    def curve_keys(self) -> CurveServerKeys | None:
        """The loaded, permission-checked Curve keys (reads the files: call at start), or None without Curve."""
        return load_server_keys(self.curve_secret_key, self.curve_allowed_clients) if self.curve else None

    @property
    def address(self) -> str:
        return endpoint_address(self.transport, self.ipc_path, self.bind_host, self.bind_port)

    def exposure_warning(self) -> str | None:
        """A warning when TCP listens beyond loopback with no api_token (anyone reachable can drive the robot)."""
        if (self.transport == "tcp" and not is_loopback_host(self.bind_host) and not self.api_token
                and not self.curve):
            return (f"TCP bound to {self.bind_host} without api_token: anyone who can reach port {self.bind_port} "
                    "can request actions. Set curve_secret_key/curve_allowed_clients (CurveZMQ) or api_token "
                    "for remote use.")
        return None

    @property
    def limits(self) -> RequestLimits:
        return RequestLimits(self.max_message_bytes, self.max_image_side, self.max_language_chars, self.max_batch_size)

    @property
    def groups(self) -> tuple[layout.LayoutGroup, ...]:
        return layout.groups_from_sizes(self.state_group_names, self.state_group_sizes)

    def with_layout(self, model_layout) -> "ServerConfig":
        """This config serving an engine's layout (`engine.layout`: language_key, video_keys, groups),
        e.g. the one a checkpoint's modality config decided; validated again."""
        groups = tuple(model_layout.groups)
        return dataclasses.replace(
            self, language_key=model_layout.language_key, video_keys=tuple(model_layout.video_keys),
            state_group_names=tuple(g.name for g in groups), state_group_sizes=tuple(g.size for g in groups))

    def engine_config(self) -> EngineConfig:
        return EngineConfig(
            tensorrt_engine_path=self.tensorrt_engine_path, dit_engine_path=self.dit_engine_path,
            mock_mode=self.mock_mode, model_checkpoint=self.model_checkpoint, use_tensorrt=self.use_tensorrt,
            device=self.device, action_horizon=self.action_horizon, action_dim=self.action_dim,
            image_width=self.image_width, image_height=self.image_height, camera_names=self.camera_names,
            embodiment_tag=self.embodiment_tag, denoising_steps=self.denoising_steps,
            rtc=self.rtc, rtc_ramp_rate=self.rtc_ramp_rate,
            mock_delay_ms=self.mock_delay_ms, mock_jitter_ms=self.mock_jitter_ms, mock_policy=self.mock_policy,
            video_keys=self.video_keys, state_groups=self.groups,
            language_key=self.language_key,
            engine=self.engine, triton_url=self.triton_url, triton_model=self.triton_model,
            triton_model_version=self.triton_model_version, triton_timeout_ms=self.triton_timeout_ms,
        )

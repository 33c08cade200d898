"""groot_server's parameters (ServerConfig), validated at construction."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from alfie_gr00t import layout
from alfie_gr00t.engines.base import EngineConfig, EngineSettings
from alfie_gr00t.settings import check_choices, param, require, require_curve_pair, shared_values
from alfie_gr00t.wire.protocol import RequestLimits
from alfie_gr00t.wire.curve import CurveServerKeys, load_server_keys
from alfie_gr00t.wire.transport import endpoint_address, is_loopback_host

_GROUP_NAMES = tuple(g.name for g in layout.LAYOUT_GROUPS)
_GROUP_SIZES = tuple(g.size for g in layout.LAYOUT_GROUPS)


@dataclass(frozen=True)
class ServerConfig(EngineSettings):
    """groot_server's parameters: the engine's (EngineSettings) and the server's own, each declared once."""

    transport: str = param("ipc", "`ipc` (on-device) or `tcp` (remote)", ("ipc", "tcp"))
    ipc_path: str = param("/tmp/groot_inference.sock", "IPC socket file")
    ipc_mode: str = param("0660", "IPC socket file mode (octal string)")
    bind_host: str = param("127.0.0.1", "TCP bind address (`0.0.0.0` for remote use; set `api_token` then)")
    bind_port: int = param(5555, "TCP port")
    warmup_runs: int = param(3, "engine runs at start (timed, logged)")
    # Isaac-GR00T layout: a value left at its default adopts the checkpoint's (checkpoint.md)
    state_group_names: tuple[str, ...] = param(
        _GROUP_NAMES, "Isaac-GR00T state/action keys in layout order; both group parameters at their defaults = "
        "adopt an Isaac-GR00T checkpoint's groups and sizes, set = must match them")
    state_group_sizes: tuple[int, ...] = param(
        _GROUP_SIZES, "their sizes (sum = action_dim); checked against the checkpoint's `statistics.json`")
    decode_threads: int = param(4, "parallel JPEG decode threads")
    max_message_bytes: int = param(16 << 20, "ZeroMQ `MAXMSGSIZE`: larger messages are dropped, and logged "
                                             "([message size limit](wire.md#message-size-limit))")
    max_image_side: int = param(2048, "largest declared image width/height (checked in the JPEG header before "
                                      "decoding)")
    max_language_chars: int = param(1024, "longest instruction")
    max_batch_size: int = param(8, "largest Isaac-GR00T batch")
    api_token: str = param("", "when set, every request must carry it (both protocols)")
    curve_secret_key: str = param("", "CurveZMQ (`tcp` only): this server's secret certificate, "
                                      "`server.key_secret` from `groot_keys server DIR` (mode 0600/0400, else "
                                      "refused at start). Set together with `curve_allowed_clients` "
                                      "([remote-gpu.md](remote-gpu.md#curvezmq-encrypted-and-authenticated))")
    curve_allowed_clients: str = param("", "CurveZMQ: directory of the allowed clients' public certificates "
                                           "(`*.key`), read at start; an empty directory refuses everyone; a "
                                           "refused key is logged in Z85. Not writable by group/others")
    allow_remote_kill: bool = param(False, "honour Isaac-GR00T `kill`")

    def __post_init__(self):
        super().__post_init__()  # the engine's parameters
        check_choices(self)
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
        return EngineConfig(**shared_values(self, EngineConfig), state_groups=self.groups)

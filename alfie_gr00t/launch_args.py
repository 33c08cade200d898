"""Launch arguments -> typed node parameters, shared by the launch file and the bringup.

Both entry points take the same `name:=value` strings; converting them here (booleans as
booleans, ports as integers) keeps `ros2 launch` and `python -m alfie_gr00t.bringup` equal.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

LAUNCH_ARGUMENTS = {
    "mock_mode": ("false", "serve the mock engine (no GPU, no model)"),
    "launch_server": ("true", "start groot_server here; false to use a remote server"),
    "transport": ("ipc", "ipc (on-device) or tcp (remote)"),
    "ipc_path": ("/tmp/groot_inference.sock", "IPC socket file"),
    "server_host": ("127.0.0.1", "TCP host: the client connects to it; a local server binds it"),
    "server_port": ("5555", "TCP port"),
    "model_checkpoint": ("", "policy file (.engine/.plan/.onnx) or Isaac-GR00T checkpoint directory"),
    "use_tensorrt": ("false", "build/use a TensorRT plan for an .onnx checkpoint"),
    "task_description": ("find the can and pick it up", "language instruction sent with every request"),
    "target_fps": ("15.0", "upper bound on inference requests per second"),
    "use_sim_robot": ("false", "start the synthetic robot (cameras + state, follows commands)"),
}

_BOOL = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def to_bool(name: str, text: str) -> bool:
    try:
        return _BOOL[str(text).strip().lower()]
    except KeyError:
        raise ValueError(f"{name} must be true or false, got {text!r}") from None


def _to_number(name: str, text: str, kind):
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"{name} must be {'an integer' if kind is int else 'a number'}, got {text!r}") from None


@dataclass(frozen=True)
class LaunchPlan:
    launch_server: bool
    use_sim_robot: bool
    server_params: dict
    client_params: dict


def plan_from_arguments(values: dict[str, str]) -> LaunchPlan:
    """Typed parameter overrides for each node from the launch arguments (defaults filled in)."""
    unknown = sorted(set(values) - set(LAUNCH_ARGUMENTS))
    if unknown:
        raise ValueError(f"unknown launch arguments {unknown}; known: {sorted(LAUNCH_ARGUMENTS)}")
    args = {name: values.get(name, default) for name, (default, _) in LAUNCH_ARGUMENTS.items()}
    port = _to_number("server_port", args["server_port"], int)
    transport = args["transport"]
    server = {
        "transport": transport, "ipc_path": args["ipc_path"], "bind_port": port,
        "mock_mode": to_bool("mock_mode", args["mock_mode"]),
        "model_checkpoint": args["model_checkpoint"],
        "use_tensorrt": to_bool("use_tensorrt", args["use_tensorrt"]),
    }
    if transport == "tcp":
        server["bind_host"] = args["server_host"]
    client = {
        "transport": transport, "ipc_path": args["ipc_path"], "server_host": args["server_host"],
        "server_port": port, "task_description": args["task_description"],
        "target_fps": _to_number("target_fps", args["target_fps"], float),
    }
    return LaunchPlan(to_bool("launch_server", args["launch_server"]), to_bool("use_sim_robot", args["use_sim_robot"]),
                      server, client)


def config_path(name: str) -> str:
    """An installed `share/alfie_gr00t/config/<name>`, else the source checkout's `config/<name>`."""
    try:
        from ament_index_python.packages import get_package_share_directory

        path = os.path.join(get_package_share_directory("alfie_gr00t"), "config", name)
        if os.path.exists(path):
            return path
    except (ImportError, LookupError, ValueError, OSError):
        pass
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "config", name)

"""Launch arguments -> typed node parameters, shared by the launch file and the bringup.

Both entry points take the same `name:=value` strings and go through `plan_from_arguments`:

- an argument left empty (the default of every parameter argument) sets nothing, so the
  installed `config/*.yaml` decides; only what the user passes overrides it;
- values are typed from the config dataclasses (booleans as booleans, ports as integers)
  and choices are checked before any node starts;
- an unknown name fails with the list of known arguments (a typo such as `mock_mod:=true`
  must not start a robot with the YAML's values);
- `api_token` names where the secret is, never the secret itself: `env:NAME` (an
  environment variable) or `file:PATH` / a path (first line of a file).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields

from alfie_gr00t.client.config import ClientConfig
from alfie_gr00t.server.config import ServerConfig
from alfie_gr00t.settings import choices_of, help_of

SERVER, CLIENT, SIM = "server", "client", "sim_robot"


@dataclass(frozen=True)
class LaunchArgument:
    default: str
    description: str
    targets: tuple[tuple[str, str], ...] = ()  # (node, parameter) pairs it sets; () = launch-only
    choices: tuple[str, ...] = ()


_FROM_YAML = "empty = from config/groot_{}.yaml"
CONFIGS = {SERVER: ServerConfig, CLIENT: ClientConfig}


def plain(markdown: str) -> str:
    """Help text for a terminal: links keep their text, code loses its backticks."""
    return re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", markdown).replace("`", "")


def parameter(node: str, name: str) -> LaunchArgument:
    """An argument that sets one parameter: its meaning and choices are the parameter's (its config field)."""
    config_cls = CONFIGS[node]
    return LaunchArgument("", f"{plain(help_of(config_cls, name))}; {_FROM_YAML.format(node)}", ((node, name),),
                          choices_of(config_cls, name))


ARGUMENTS: dict[str, LaunchArgument] = {
    "launch_server": LaunchArgument("true", "start groot_server here; false to use a remote server"),
    "use_sim_robot": LaunchArgument("false", "start the synthetic robot (cameras + state, follows commands)"),
    "mock_mode": parameter(SERVER, "mock_mode"),
    "mock_policy": parameter(SERVER, "mock_policy"),
    "mock_delay_ms": parameter(SERVER, "mock_delay_ms"),
    "mock_jitter_ms": parameter(SERVER, "mock_jitter_ms"),
    "model_checkpoint": parameter(SERVER, "model_checkpoint"),
    "use_tensorrt": parameter(SERVER, "use_tensorrt"),
    "dit_engine_path": parameter(SERVER, "dit_engine_path"),
    "device": parameter(SERVER, "device"),
    "embodiment_tag": parameter(SERVER, "embodiment_tag"),
    "language_key": parameter(SERVER, "language_key"),
    "denoising_steps": parameter(SERVER, "denoising_steps"),
    "transport": LaunchArgument("", "ipc (on-device) or tcp (remote), both nodes; empty = from the YAMLs",
                                ((SERVER, "transport"), (CLIENT, "transport")), choices_of(ServerConfig, "transport")),
    "ipc_path": LaunchArgument("", "IPC socket file, both nodes; empty = from the YAMLs",
                               ((SERVER, "ipc_path"), (CLIENT, "ipc_path"))),
    "server_host": LaunchArgument("", "TCP host: the client connects to it, a local server binds it; "
                                  "empty = from the YAMLs", ((CLIENT, "server_host"), (SERVER, "bind_host"))),
    "server_port": LaunchArgument("", "TCP port, both nodes; empty = from the YAMLs",
                                  ((CLIENT, "server_port"), (SERVER, "bind_port"))),
    "api_token": LaunchArgument("", "where the shared token is: env:NAME or file:PATH (never the token itself), "
                                "both nodes; empty = from the YAMLs",
                                ((SERVER, "api_token"), (CLIENT, "api_token"))),
    "server_curve_secret_key": parameter(SERVER, "curve_secret_key"),
    "curve_allowed_clients": parameter(SERVER, "curve_allowed_clients"),
    "client_curve_secret_key": parameter(CLIENT, "curve_secret_key"),
    "curve_server_key": parameter(CLIENT, "curve_server_key"),
    "task_description": parameter(CLIENT, "task_description"),
    "target_fps": parameter(CLIENT, "target_fps"),
    "output_mode": parameter(CLIENT, "output_mode"),
    "record_dir": parameter(CLIENT, "record_dir"),
    "deadman_topic": parameter(CLIENT, "deadman_topic"),
    "deadman_timeout_ms": parameter(CLIENT, "deadman_timeout_ms"),
    "command_thread_priority": parameter(CLIENT, "command_thread_priority"),
    "use_sim_time": LaunchArgument("", "use /clock (a simulator's) in every node; empty = false",
                                   ((SERVER, "use_sim_time"), (CLIENT, "use_sim_time"), (SIM, "use_sim_time"))),
    "strict_arguments": LaunchArgument("true", "fail on unknown name:=value; false when a parent launch file "
                                       "includes this one (its own arguments are visible here too)"),
}

# Entries launch and launch_ros themselves keep in the launch configurations (PushRosNamespace,
# SetParameter, SetRemap; the process prefix and tty settings every ExecuteProcess reads): not
# arguments of this file.
_LAUNCH_INTERNAL = frozenset({"ros_namespace", "global_params", "ros_remaps",
                              "launch-prefix", "launch-prefix-filter", "emulate_tty"})

_BOOL = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
_TYPES = {SERVER: {f.name: type(f.default) for f in fields(ServerConfig)},
          CLIENT: {f.name: type(f.default) for f in fields(ClientConfig)}}


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


def resolve_api_token(reference: str, environ=None) -> str:
    """`env:NAME` -> $NAME; `file:PATH` or a path -> the file's first line. Never the token itself.

    A token typed on the command line ends up in the shell history, `ps` and the launch log;
    a name or a path does not.
    """
    environ = os.environ if environ is None else environ
    ref = reference.strip()
    if ref.startswith("env:"):
        name = ref[4:]
        value = environ.get(name, "").strip()
        if not value:
            raise ValueError(f"api_token:=env:{name}: environment variable {name} is not set or empty")
        return value
    if ref.startswith("file:") or ref.startswith(("/", "~", "./", "../")):
        path = os.path.expanduser(ref[5:] if ref.startswith("file:") else ref)
        try:
            with open(path, encoding="utf-8") as f:
                value = f.readline().strip()
        except OSError as exc:
            raise ValueError(f"api_token: cannot read {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ValueError(f"api_token: {path} is not UTF-8 text (saved as UTF-16?)") from None
        if not value:
            raise ValueError(f"api_token: {path} is empty")
        return value
    raise ValueError("api_token takes env:NAME (an environment variable) or file:PATH (a file holding the token), "
                     "not the token itself: a token on the command line shows up in `ps` and the shell history")


def _typed(name: str, text: str, node: str, param: str):
    if param == "use_sim_time":
        return to_bool(name, text)
    kind = _TYPES[node][param]
    if kind is bool:
        return to_bool(name, text)
    if kind in (int, float):
        return _to_number(name, text, kind)
    return text


@dataclass(frozen=True)
class LaunchPlan:
    launch_server: bool
    use_sim_robot: bool
    server_params: dict
    client_params: dict
    sim_params: dict


def check_names(values, extra_known=()) -> None:
    """Unknown argument names -> ValueError listing the known ones (unless strict_arguments is false:
    a parent launch file that includes this one shares its own arguments with it)."""
    if not to_bool("strict_arguments", values.get("strict_arguments", ARGUMENTS["strict_arguments"].default)):
        return
    known = set(ARGUMENTS) | set(extra_known)
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown launch argument(s) {', '.join(unknown)}; known: {', '.join(sorted(known))} "
                         "(including this file from another launch file? pass strict_arguments:=false)")


def arguments_from_launch_configurations(configurations) -> dict[str, str]:
    """Every `name:=value` in a launch context (declared defaults and user arguments), minus launch_ros's own."""
    return {name: value for name, value in dict(configurations).items()
            if name not in _LAUNCH_INTERNAL and isinstance(value, str)}


def plan_from_arguments(values: dict[str, str], extra_known=(), environ=None) -> LaunchPlan:
    """Typed parameter overrides for each node; empty or absent arguments override nothing."""
    check_names(values, extra_known)
    params = {SERVER: {}, CLIENT: {}, SIM: {}}
    for name, argument in ARGUMENTS.items():
        text = str(values.get(name, argument.default))
        if not argument.targets or text == "":
            continue
        if argument.choices and text not in argument.choices:
            raise ValueError(f"{name} must be one of {', '.join(argument.choices)}, got {text!r}")
        if name == "api_token":
            token = resolve_api_token(text, environ)
            for node, param in argument.targets:
                params[node][param] = token
            continue
        for node, param in argument.targets:
            params[node][param] = _typed(name, text, node, param)
    launch_server = to_bool("launch_server", values.get("launch_server", ARGUMENTS["launch_server"].default))
    use_sim_robot = to_bool("use_sim_robot", values.get("use_sim_robot", ARGUMENTS["use_sim_robot"].default))
    return LaunchPlan(launch_server, use_sim_robot, params[SERVER], params[CLIENT], params[SIM])


def config_path(name: str) -> str:
    """An installed `share/alfie_gr00t/config/<name>`, else the source checkout's `config/<name>`."""
    try:
        from ament_index_python.packages import get_package_share_directory

        path = os.path.join(get_package_share_directory("alfie_gr00t"), "config", name)
        if os.path.exists(path):
            return path
    except (ImportError, LookupError, ValueError, OSError):
        pass
    # this file is <checkout>/alfie_gr00t/nodes/launch_args.py: the checkout's config/ is three levels up
    checkout = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.path.join(checkout, "config", name)

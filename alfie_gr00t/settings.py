"""Configuration helpers shared by every node's config dataclass.

Field names are the ROS parameter names and field defaults are the parameter defaults
(`config/*.yaml` repeats them; a test keeps the two equal). Nodes declare one ROS
parameter per field and build the dataclass from the values, so validation runs before
anything starts.
"""

from __future__ import annotations

from dataclasses import fields


def require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    require(value in choices, f"{name} must be one of {choices}, got {value!r}")


def require_curve_pair(transport: str, why: str, **keys: str) -> None:
    """Two CurveZMQ key parameters: both set or neither (`why` says what each is), and only on TCP."""
    names, values = list(keys), list(keys.values())
    require(all(values) or not any(values),
            f"{' and '.join(names)} go together ({why}), got " + ", ".join(f"{n}={v!r}" for n, v in keys.items()))
    require(not any(values) or transport == "tcp",
            f"{'/'.join(names)} need transport tcp: IPC is protected by the socket file's permissions "
            "(ipc_mode), not by CurveZMQ")


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

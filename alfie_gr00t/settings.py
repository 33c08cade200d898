"""Configuration helpers shared by every node's config dataclass.

Field names are the ROS parameter names, and each field says everything about its parameter in one
place (`param`): the type (its annotation), the default, what it means and, for a string with a fixed
set of values, its choices. From there come the YAML check (`config/*.yaml` repeats the defaults; a
test keeps them equal), the launch arguments' choices and help, the parameter descriptions the nodes
declare, and docs/parameters.md's tables (a test keeps them equal). Nodes declare one ROS parameter
per field and build the dataclass from the values, so validation runs before anything starts.
"""

from __future__ import annotations

import dataclasses
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


def param(default, help: str, choices: tuple[str, ...] = ()):
    """A config field: its default, what it means (markdown, as docs/parameters.md shows it) and, for a
    string parameter with a fixed set of values, its choices (checked by `check_choices`)."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": tuple(choices)})


def same_as(config_cls, name: str):
    """A field that repeats another config's parameter: the same default, help and choices."""
    source = config_cls.__dataclass_fields__[name]
    return dataclasses.field(default=source.default, metadata=source.metadata)


def help_of(config_cls, name: str) -> str:
    return config_cls.__dataclass_fields__[name].metadata.get("help", "")


def choices_of(config_cls, name: str) -> tuple[str, ...]:
    return config_cls.__dataclass_fields__[name].metadata.get("choices", ())


def check_choices(config) -> None:
    """Every field declared with choices holds one of them."""
    for f in fields(config):
        if f.metadata.get("choices"):
            check_choice(f.name, getattr(config, f.name), f.metadata["choices"])


def shared_values(source, target_cls) -> dict:
    """{name: value} of `source` for every field `target_cls` has too: how a nested config is built
    from its node's config without listing the fields again."""
    return {f.name: getattr(source, f.name) for f in fields(target_cls) if f.init and hasattr(source, f.name)}


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

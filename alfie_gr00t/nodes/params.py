"""Declare a config dataclass's fields as ROS parameters and read them back validated."""

from __future__ import annotations

from dataclasses import fields

from rclpy.node import Node

from alfie_gr00t.settings import config_from_values, defaults_as_parameters


def declare_config(node: Node, config_cls):
    """One parameter per field (defaults from the dataclass); returns the validated config."""
    defaults = defaults_as_parameters(config_cls)
    for name, default in defaults.items():
        node.declare_parameter(name, default)
    values = {f.name: node.get_parameter(f.name).value for f in fields(config_cls)}
    return config_from_values(config_cls, values)

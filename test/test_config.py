"""Configs: validation at construction, and YAML defaults equal the code defaults."""

import os

import pytest
import yaml

from alfie_gr00t.client.config import ClientConfig
from alfie_gr00t.server.config import ServerConfig
from alfie_gr00t.settings import config_from_values, defaults_as_parameters

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("cls, name", [(ServerConfig, "groot_server"), (ClientConfig, "groot_client")])
def test_yaml_matches_code_defaults(cls, name):
    with open(os.path.join(ROOT, "config", f"{name}.yaml")) as f:
        params = yaml.safe_load(f)[f"/**/{name}"]["ros__parameters"]
    assert params == defaults_as_parameters(cls)


@pytest.mark.parametrize("cls, values, fragment", [
    (ServerConfig, {"transport": "udp"}, "transport"),
    (ServerConfig, {"state_group_sizes": [6, 6, 6, 2]}, "sum to 20"),
    (ServerConfig, {"ipc_mode": "rw"}, "invalid literal"),
    (ServerConfig, {"max_message_bytes": 0}, "positive"),
    (ClientConfig, {"joint_names": ["a"]}, "joint_names needs 21"),
    (ClientConfig, {"camera_topics": ["/a"]}, "one topic per camera"),
    (ClientConfig, {"server_protocol": "grpc"}, "server_protocol"),
    (ClientConfig, {"jpeg_quality": 0}, "jpeg_quality"),
    (ClientConfig, {"nonsense": 1}, "unknown"),
])
def test_invalid_values_are_refused(cls, values, fragment):
    with pytest.raises(ValueError, match=fragment):
        config_from_values(cls, values)


def test_lists_become_tuples():
    config = config_from_values(ClientConfig, {"camera_names": ["a", "b"], "camera_topics": ["/a", "/b"]})
    assert config.camera_names == ("a", "b")


@pytest.mark.parametrize("values, warns", [
    ({"transport": "tcp", "bind_host": "0.0.0.0"}, True),
    ({"transport": "tcp", "bind_host": "*"}, True),
    ({"transport": "tcp", "bind_host": "0.0.0.0", "api_token": "t"}, False),
    ({"transport": "tcp", "bind_host": "127.0.0.1"}, False),
    ({"transport": "ipc"}, False),
])
def test_warning_when_tcp_listens_beyond_loopback_without_token(values, warns):
    warning = config_from_values(ServerConfig, values).exposure_warning()
    assert (warning is not None) == warns
    if warns:
        assert "without api_token" in warning


def test_default_ipc_socket_mode_is_0660():
    assert int(ServerConfig().ipc_mode, 8) == 0o660


def test_defaults_work_from_1_to_600_ms_without_tuning():
    config = ClientConfig()
    assert config.refill_threshold_steps == 0.0  # latency-aware refill
    assert config.inference_timeout_ms >= 1000  # a cap the adaptive timeout grows into, not a 1 ms-mock value
    assert config.watchdog_timeout_s > config.action_horizon / config.action_step_hz


@pytest.mark.parametrize("values, fragment", [
    ({"command_rate_hz": 10.0}, "at least action_step_hz"),
    ({"latency_margin_ms": 2000.0}, "latency_margin_ms"),
    ({"inference_timeout_ms": 100}, "inference_timeout_ms must be at least"),
    ({"crossfade_steps": 16}, "crossfade_steps"),
    ({"joint_velocity_limits": [1.5] * 14}, "joint_velocity_limits needs 15"),
    ({"base_acceleration_limits": [0.5, 0.5, 0.5, 1.5, 1.5, -1.0]}, "positive"),
    ({"output_mode": "trajectory"}, "output_mode"),
])
def test_impossible_client_combinations_are_refused(values, fragment):
    with pytest.raises(ValueError, match=fragment):
        config_from_values(ClientConfig, values)


@pytest.mark.parametrize("cls, heading", [(ServerConfig, "### groot_server"), (ClientConfig, "### groot_client")])
def test_readme_parameter_tables_list_every_parameter(cls, heading):
    """The README's tables stay true: one row per config field, no row for a removed one."""
    import re
    from dataclasses import fields

    with open(os.path.join(ROOT, "docs", "parameters.md"), encoding="utf-8") as f:
        text = f.read()
    start = text.index(heading)
    table = text[start:text.index("\n\n", text.index("|---|", start))]
    rows = re.findall(r"^\| `(\w+)` \|", table, re.M)
    assert sorted(rows) == sorted(f.name for f in fields(cls))

"""Configs: validation at construction, and YAML defaults equal the code defaults."""

import os

import pytest
import yaml

from alfie_gr00t.config import ClientConfig, ServerConfig, config_from_values, defaults_as_parameters

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


def test_refill_point_must_come_before_the_watchdog():
    with pytest.raises(ValueError, match="watchdog_timeout_s"):
        config_from_values(ClientConfig, {"refill_threshold_steps": 8.0})  # 0.533 s + 0.1 s > 0.5 s
    assert ClientConfig().refill_threshold_steps == 12.0

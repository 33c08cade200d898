"""Launch arguments respect the YAML, unknown names fail, values are typed.

Everything runs through the code the launch file runs: `arguments_from_launch_configurations`
on what a launch context holds, then `plan_from_arguments`; the launch file itself is run
against stand-in `launch`/`launch_ros` modules (not on PyPI), and against the real ones
where a ROS 2 install provides them.
"""

import os
import types

import pytest
import rclpy
from rclpy.parameter import Parameter

from alfie_gr00t.nodes import launch_args
from alfie_gr00t.nodes.launch_args import ARGUMENTS, arguments_from_launch_configurations, plan_from_arguments
from alfie_gr00t.nodes.groot_client import GrootClient
from alfie_gr00t.nodes.groot_server import GrootServer

from support.ros_helpers import next_domain_id
from support.launch_file import launch_context, load_launch_file, stub_launch_modules
from support.ros_helpers import REPO

def plan(**user):
    return plan_from_arguments(arguments_from_launch_configurations(launch_context(**user)))


def test_defaults_override_nothing():
    p = plan()
    assert p.server_params == {} and p.client_params == {} and p.sim_params == {}
    assert p.launch_server is True and p.use_sim_robot is False
    assert plan_from_arguments({}) == p


def test_only_what_the_user_passes_overrides():
    p = plan(model_checkpoint="/models/a.onnx", target_fps="10")
    assert p.server_params == {"model_checkpoint": "/models/a.onnx"}
    assert p.client_params == {"target_fps": 10.0}


def test_values_are_typed_from_the_config_dataclasses():
    p = plan(mock_mode="true", server_port="6000", target_fps="10", transport="tcp", server_host="127.0.0.1",
             use_tensorrt="False", launch_server="false", mock_delay_ms="25", mock_jitter_ms="5",
             mock_policy="trajectory", output_mode="joint_trajectory", use_sim_time="true")
    s, c = p.server_params, p.client_params
    assert s["mock_mode"] is True and s["use_tensorrt"] is False
    assert s["bind_port"] == 6000 and isinstance(s["bind_port"], int) and s["bind_host"] == "127.0.0.1"
    assert s["mock_delay_ms"] == 25.0 and isinstance(s["mock_delay_ms"], float) and s["mock_jitter_ms"] == 5.0
    assert s["mock_policy"] == "trajectory" and s["transport"] == "tcp"
    assert c["server_port"] == 6000 and isinstance(c["server_port"], int) and c["target_fps"] == 10.0
    assert c["output_mode"] == "joint_trajectory" and c["transport"] == "tcp"
    assert s["use_sim_time"] is c["use_sim_time"] is p.sim_params["use_sim_time"] is True
    assert p.launch_server is False


def test_checkpoint_try_out_arguments_reach_the_server_typed():
    """device, embodiment_tag, language_key and denoising_steps (a CPU try-out of a checkpoint)."""
    p = plan(model_checkpoint="/models/alfie", device="cpu", embodiment_tag="new_embodiment",
             language_key="annotation.human.task_description", denoising_steps="2")
    assert p.server_params == {"model_checkpoint": "/models/alfie", "device": "cpu",
                               "embodiment_tag": "new_embodiment",
                               "language_key": "annotation.human.task_description", "denoising_steps": 2}
    assert p.client_params == {}
    with pytest.raises(ValueError, match="denoising_steps must be an integer, got 'four'"):
        plan(denoising_steps="four")


def test_bringup_takes_the_try_out_arguments():
    from alfie_gr00t.tools.bringup import BRINGUP_ARGUMENTS, parse_arguments

    launch, own = parse_arguments(["device:=cpu", "language_key:=task", "embodiment_tag:=gr1",
                                   "denoising_steps:=4", "duration:=1"])
    p = plan_from_arguments(launch, extra_known=BRINGUP_ARGUMENTS)
    assert p.server_params == {"device": "cpu", "language_key": "task", "embodiment_tag": "gr1",
                               "denoising_steps": 4}
    assert own["duration"] == "1"


def test_ipc_path_reaches_both_nodes():
    p = plan(ipc_path="/tmp/x.sock")
    assert p.server_params["ipc_path"] == p.client_params["ipc_path"] == "/tmp/x.sock"
    assert "bind_host" not in p.server_params


@pytest.mark.parametrize("user, fragment", [
    ({"mock_mode": "maybe"}, "mock_mode must be true or false"),
    ({"server_port": "http"}, "server_port must be an integer"),
    ({"target_fps": "fast"}, "target_fps must be a number"),
    ({"mock_policy": "dance"}, "mock_policy must be one of hold, trajectory"),
    ({"output_mode": "torque"}, "output_mode must be one of joint_state, joint_trajectory, both"),
    ({"transport": "udp"}, "transport must be one of ipc, tcp"),
    ({"use_sim_time": "sometimes"}, "use_sim_time must be true or false"),
])
def test_bad_values_fail(user, fragment):
    with pytest.raises(ValueError, match=fragment):
        plan(**user)


def test_unknown_argument_fails_with_the_known_list():
    with pytest.raises(ValueError) as info:
        plan(mock_mod="true")
    message = str(info.value)
    assert "unknown launch argument(s) mock_mod" in message
    for name in ARGUMENTS:
        assert name in message


def test_api_token_comes_from_the_environment_or_a_file(tmp_path, monkeypatch):
    monkeypatch.setenv("ALFIE_TEST_TOKEN", "s3cret")
    p = plan(api_token="env:ALFIE_TEST_TOKEN")
    assert p.server_params["api_token"] == p.client_params["api_token"] == "s3cret"
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    assert plan(api_token=str(token_file)).client_params["api_token"] == "from-file"
    assert plan(api_token=f"file:{token_file}").server_params["api_token"] == "from-file"
    with pytest.raises(ValueError, match="not the token itself"):
        plan(api_token="s3cret")
    monkeypatch.delenv("ALFIE_TEST_TOKEN")
    with pytest.raises(ValueError, match="ALFIE_TEST_TOKEN is not set"):
        plan(api_token="env:ALFIE_TEST_TOKEN")
    with pytest.raises(ValueError, match="cannot read"):
        plan(api_token=f"file:{tmp_path / 'missing'}")


def test_every_argument_targets_real_parameters():
    from dataclasses import fields

    from alfie_gr00t.client.config import ClientConfig
    from alfie_gr00t.server.config import ServerConfig

    known = {"server": {f.name for f in fields(ServerConfig)} | {"use_sim_time"},
             "client": {f.name for f in fields(ClientConfig)} | {"use_sim_time"},
             "sim_robot": {"use_sim_time"}}
    for name, argument in ARGUMENTS.items():
        for node, param in argument.targets:
            assert param in known[node], (name, node, param)


def _write_yaml(path, node, values):
    lines = [f"/**/{node}:", "  ros__parameters:"] + [f"    {k}: {v}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_yaml_wins_over_defaults_on_real_nodes(tmp_path):
    """The bringup's path: params files at init, then the plan's overrides on real rclpy nodes."""
    server_yaml = _write_yaml(tmp_path / "server.yaml", "groot_server",
                              {"bind_port": 6123, "mock_mode": "true", "mock_delay_ms": 7.5,
                               "ipc_path": '"/tmp/y.sock"'})
    client_yaml = _write_yaml(tmp_path / "client.yaml", "groot_client",
                              {"target_fps": 7.0, "task_description": '"from yaml"', "server_port": 6123})
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=next_domain_id(),
               args=["--ros-args", "--params-file", server_yaml, "--params-file", client_yaml])
    try:
        def nodes(p):
            server = GrootServer(namespace="alfie", context=context,
                                 parameter_overrides=[Parameter(k, value=v) for k, v in p.server_params.items()])
            client = GrootClient(namespace="alfie", context=context,
                                 parameter_overrides=[Parameter(k, value=v) for k, v in p.client_params.items()])
            configs = server.config, client.config
            server.destroy_node()
            client.destroy_node()
            return configs

        server, client = nodes(plan())
        assert server.bind_port == 6123 and server.mock_mode is True and server.mock_delay_ms == 7.5
        assert server.ipc_path == "/tmp/y.sock"
        assert client.target_fps == 7.0 and client.task_description == "from yaml"
        server, client = nodes(plan(server_port="7000", target_fps="3", mock_mode="false"))
        assert server.bind_port == client.server_port == 7000 and client.target_fps == 3.0
        assert server.mock_mode is False and server.mock_delay_ms == 7.5  # the rest still from the YAML
    finally:
        context.try_shutdown()


# -- the launch file itself ----------------------------------------------------------------------

def test_launch_file_with_stand_in_launch_modules(monkeypatch):
    stub_launch_modules(monkeypatch)
    module = load_launch_file()
    description = module.generate_launch_description()
    declared = [e for e in description.args[0] if type(e).__name__ == "DeclareLaunchArgument"]
    assert [d.args[0] for d in declared] == list(ARGUMENTS)
    assert all(d.kwargs["default_value"] == ARGUMENTS[d.args[0]].default for d in declared)

    context = types.SimpleNamespace(launch_configurations=launch_context())
    server, client = module._nodes(context)
    assert [n.kwargs["name"] for n in (server, client)] == ["groot_server", "groot_client"]
    # nothing passed: the installed YAML alone (no empty override dict for launch_ros to write out)
    assert len(server.kwargs["parameters"]) == 1 and server.kwargs["parameters"][0].endswith("groot_server.yaml")
    assert len(client.kwargs["parameters"]) == 1 and client.kwargs["parameters"][0].endswith("groot_client.yaml")
    assert all(n.kwargs["namespace"] == "alfie" for n in (server, client))

    context = types.SimpleNamespace(launch_configurations=launch_context(
        mock_mode="true", use_sim_robot="true", server_port="6001", use_sim_time="true"))
    server, client, robot = module._nodes(context)
    assert server.kwargs["parameters"][1] == {"mock_mode": True, "bind_port": 6001, "use_sim_time": True}
    assert client.kwargs["parameters"][1] == {"server_port": 6001, "use_sim_time": True}
    assert robot.kwargs["name"] == "groot_sim_robot" and robot.kwargs["parameters"] == [{"use_sim_time": True}]

    with pytest.raises(ValueError, match="unknown launch argument.*mock_mod.*known:"):
        module._nodes(types.SimpleNamespace(launch_configurations=launch_context(mock_mod="true")))


def test_launch_file_with_real_launch_ros():
    pytest.importorskip("launch_ros", reason="launch_ros is not on PyPI; needs a ROS 2 Jazzy install")
    from launch import LaunchContext

    module = load_launch_file()
    description = module.generate_launch_description()
    assert len(description.entities) == len(ARGUMENTS) + 1
    context = LaunchContext()
    context.launch_configurations.update(launch_context(mock_mode="true", use_sim_robot="true", server_port="6001"))
    nodes = module._nodes(context)
    assert [n._Node__node_name for n in nodes] == ["groot_server", "groot_client", "groot_sim_robot"]
    assert all(n._Node__node_namespace == "alfie" for n in nodes)
    assert nodes[0]._Node__parameters[1] == {"mock_mode": True, "bind_port": 6001}
    context.launch_configurations["mock_mod"] = "true"
    with pytest.raises(ValueError, match="mock_mod"):
        module._nodes(context)


def test_known_arguments_table_in_readme_matches():
    """The README's launch-argument table lists exactly the arguments the launch file declares."""
    with open(os.path.join(REPO, "docs", "parameters.md"), encoding="utf-8") as f:
        text = f.read()
    section = text.split("### Launch arguments", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1].strip().strip("`") for line in section.splitlines()
            if line.startswith("| `")]
    assert rows == list(ARGUMENTS)

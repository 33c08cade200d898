"""Issue 4: launch arguments, the launch description and the single-process bringup."""

import os
import re
import subprocess
import sys

import pytest

from alfie_gr00t import launch_args
from alfie_gr00t.bringup import parse_arguments

from conftest import next_domain_id
from ros_helpers import REPO, node_env


def test_launch_arguments_are_typed():
    plan = launch_args.plan_from_arguments({"mock_mode": "true", "server_port": "6000", "target_fps": "10",
                                            "transport": "tcp", "server_host": "127.0.0.1",
                                            "use_tensorrt": "False", "launch_server": "false"})
    assert plan.server_params["mock_mode"] is True and plan.server_params["use_tensorrt"] is False
    assert plan.server_params["bind_port"] == 6000 and isinstance(plan.server_params["bind_port"], int)
    assert plan.server_params["bind_host"] == "127.0.0.1"
    assert plan.client_params["server_port"] == 6000 and plan.client_params["target_fps"] == 10.0
    assert plan.launch_server is False and plan.use_sim_robot is False


def test_defaults_and_ipc_share_one_address():
    plan = launch_args.plan_from_arguments({"ipc_path": "/tmp/x.sock"})
    assert plan.server_params["ipc_path"] == plan.client_params["ipc_path"] == "/tmp/x.sock"
    assert plan.launch_server is True and plan.server_params["mock_mode"] is False
    assert "bind_host" not in plan.server_params


@pytest.mark.parametrize("values, fragment", [({"mock_mode": "maybe"}, "true or false"),
                                              ({"server_port": "http"}, "integer"),
                                              ({"bogus": "1"}, "unknown launch arguments")])
def test_bad_launch_arguments(values, fragment):
    with pytest.raises(ValueError, match=fragment):
        launch_args.plan_from_arguments(values)


def test_bringup_argument_parsing():
    launch, own = parse_arguments(["mock_mode:=true", "duration:=3", "auto_activate:=false"])
    assert launch == {"mock_mode": "true"} and own["duration"] == "3" and own["auto_activate"] == "false"
    with pytest.raises(ValueError, match="name:=value"):
        parse_arguments(["mock_mode=true"])


def test_config_files_are_found_in_the_source_checkout():
    assert os.path.exists(launch_args.config_path("groot_server.yaml"))
    assert os.path.exists(launch_args.config_path("groot_client.yaml"))


def test_launch_description_has_nodes_namespaces_and_typed_overrides():
    pytest.importorskip("launch_ros", reason="launch_ros is not on PyPI; needs a ROS 2 Jazzy install")
    import importlib.util

    from launch import LaunchContext

    spec = importlib.util.spec_from_file_location("groot_launch", os.path.join(REPO, "launch",
                                                                               "groot_inference.launch.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    context = LaunchContext()
    for name, (default, _) in launch_args.LAUNCH_ARGUMENTS.items():
        context.launch_configurations[name] = default
    context.launch_configurations.update(mock_mode="true", use_sim_robot="true", server_port="6001")
    nodes = module._nodes(context)
    names = [n._Node__node_name for n in nodes]
    assert names == ["groot_server", "groot_client", "groot_sim_robot"]
    assert all(n._Node__node_namespace == "alfie" for n in nodes)
    server_overrides = nodes[0]._Node__parameters[1]
    assert server_overrides["mock_mode"] is True and server_overrides["bind_port"] == 6001
    assert len(description.entities) == len(launch_args.LAUNCH_ARGUMENTS) + 1


def test_bringup_runs_the_closed_loop(ipc_dir):
    ipc_path = os.path.join(ipc_dir, "bringup.sock")
    proc = subprocess.run(
        [sys.executable, "-m", "alfie_gr00t.bringup", "mock_mode:=true", "use_sim_robot:=true", "duration:=4",
         f"ipc_path:={ipc_path}"],
        env=node_env(next_domain_id()), capture_output=True, text=True, timeout=90)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    served = int(re.search(r"server : (\d+) requests served, (\d+) errors", out).group(1))
    client = re.search(r"client : state (\w+), (\d+) ok / (\d+) failed, (\d+) chunks, (\d+) commands", out)
    status = re.search(r"status : (\d+) server and (\d+) client status messages \(valid JSON\), (\d+) invalid", out)
    assert served > 0 and client.group(1) == "ACTIVE"
    assert int(client.group(4)) > 0 and int(client.group(5)) > 0
    assert int(status.group(1)) > 0 and int(status.group(2)) > 0 and int(status.group(3)) == 0
    assert re.search(r"\[\s*\d+\.\d+s\] \| server: \d+ req", out), "no per-second status line"
    assert not os.path.exists(ipc_path)


def test_bringup_reports_bad_arguments():
    proc = subprocess.run([sys.executable, "-m", "alfie_gr00t.bringup", "mock_mode:=perhaps"],
                          env=node_env(next_domain_id()), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "mock_mode must be true or false" in proc.stderr

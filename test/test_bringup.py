"""The single-process bringup (launch-argument rules: test_launch_args.py)."""

import os
import re
import subprocess
import sys

import pytest

from alfie_gr00t.nodes import launch_args
from alfie_gr00t.tools.bringup import parse_arguments

from support.ros_helpers import next_domain_id
from support.ros_helpers import node_env


def test_bringup_argument_parsing():
    launch, own = parse_arguments(["mock_mode:=true", "duration:=3", "auto_activate:=false"])
    assert launch == {"mock_mode": "true"} and own["duration"] == "3" and own["auto_activate"] == "false"
    with pytest.raises(ValueError, match="name:=value"):
        parse_arguments(["mock_mode=true"])


def test_config_files_are_found_in_the_source_checkout():
    assert os.path.exists(launch_args.config_path("groot_server.yaml"))
    assert os.path.exists(launch_args.config_path("groot_client.yaml"))


def test_config_files_are_found_without_an_installed_package(monkeypatch):
    """A source checkout run with PYTHONPATH=. and no colcon install (no ament index entry): the
    fallback must name the checkout's config/, not alfie_gr00t/config/."""
    import ament_index_python.packages as packages

    def not_installed(name):
        raise packages.PackageNotFoundError(name)

    monkeypatch.setattr(packages, "get_package_share_directory", not_installed)
    checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for name in ("groot_server.yaml", "groot_client.yaml"):
        path = launch_args.config_path(name)
        assert path == os.path.join(checkout, "config", name) and os.path.exists(path), path


def test_bringup_runs_the_closed_loop(ipc_dir):
    ipc_path = os.path.join(ipc_dir, "bringup.sock")
    proc = subprocess.run(
        [sys.executable, "-m", "alfie_gr00t.tools.bringup", "mock_mode:=true", "use_sim_robot:=true", "duration:=4",
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
    proc = subprocess.run([sys.executable, "-m", "alfie_gr00t.tools.bringup", "mock_mode:=perhaps"],
                          env=node_env(next_domain_id()), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "mock_mode must be true or false" in proc.stderr


def test_bringup_rejects_unknown_arguments_with_the_known_list():
    proc = subprocess.run([sys.executable, "-m", "alfie_gr00t.tools.bringup", "mock_mod:=true"],
                          env=node_env(next_domain_id()), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "unknown launch argument(s) mock_mod" in proc.stderr
    assert "mock_mode" in proc.stderr and "duration" in proc.stderr and "auto_activate" in proc.stderr

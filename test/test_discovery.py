"""One discovery helper for every distro, used by the tests, the Makefile, the demo and the
benchmarks; the ROS-free selection of `make test`'s Python 3.10 leg."""

import os
import subprocess
import sys

import pytest

from alfie_gr00t import discovery

import conftest
from support.ros_helpers import REPO, node_env


@pytest.mark.parametrize("distro, expected", [
    ("humble", {"ROS_LOCALHOST_ONLY": "1"}),
    ("Humble", {"ROS_LOCALHOST_ONLY": "1"}),
    ("galactic", {"ROS_LOCALHOST_ONLY": "1"}),
    ("iron", {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}),
    ("jazzy", {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}),
    ("kilted", {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}),
    ("rolling", {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}),
])
def test_each_distro_gets_only_its_own_variable(distro, expected):
    assert discovery.localhost_only_env(distro) == expected
    env = {"ROS_DISTRO": distro, "ROS_LOCALHOST_ONLY": "0", "ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET", "X": "y"}
    assert discovery.confine_to_localhost(env) is env
    assert env == dict(expected, ROS_DISTRO=distro, X="y"), "the other distro's variable is removed"
    assert discovery.is_confined(env)


def test_unset_distro_is_jazzy_from_pypi():
    assert discovery.distro({}) == "jazzy"
    assert discovery.confine_to_localhost({}) == {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    assert not discovery.is_confined({"ROS_LOCALHOST_ONLY": "1"}), "Jazzy's range variable is the one that counts"
    assert discovery.is_confined({"ROS_DISTRO": "humble", "ROS_LOCALHOST_ONLY": "1"})


def test_tests_and_their_node_processes_are_confined():
    assert discovery.is_confined(os.environ), "conftest confines discovery before rclpy is imported"
    assert discovery.is_confined(node_env(7))
    humble = dict(os.environ, ROS_DISTRO="humble", ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    env = discovery.confine_to_localhost(humble)
    assert env["ROS_LOCALHOST_ONLY"] == "1" and "ROS_AUTOMATIC_DISCOVERY_RANGE" not in env


@pytest.mark.parametrize("distro", ["humble", "jazzy", ""])
def test_makefile_sets_what_the_helper_sets(distro):
    env = dict(os.environ, ROS_DISTRO=distro, ROS_LOCALHOST_ONLY="1", ROS_AUTOMATIC_DISCOVERY_RANGE="SUBNET")
    out = subprocess.run(["make", "-s", "--no-print-directory", "discovery-env"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=30, check=True).stdout.split()
    made = {k: v for k, v in (item.split("=", 1) for item in out) if v}
    assert made == discovery.localhost_only_env(distro or None if distro else "jazzy")


def test_nothing_sets_the_jazzy_variable_by_hand():
    """Every entry point goes through the helper (a Humble run would otherwise stay on the network)."""
    offenders = []
    for top in ("alfie_gr00t", "test", "launch"):
        for root, _, names in os.walk(os.path.join(REPO, top)):
            for name in names:
                path = os.path.join(root, name)
                if not name.endswith(".py") or path.endswith(os.path.join("alfie_gr00t", "discovery.py")) \
                        or name == os.path.basename(__file__):
                    continue
                with open(path, encoding="utf-8") as f:
                    text = f.read()
                if 'ROS_AUTOMATIC_DISCOVERY_RANGE"] =' in text or 'ROS_AUTOMATIC_DISCOVERY_RANGE="' in text:
                    offenders.append(os.path.relpath(path, REPO))
    assert not offenders, f"set discovery with alfie_gr00t.discovery.confine_to_localhost(): {offenders}"


def test_ros_free_selection_follows_imports_through_helpers_and_the_package(tmp_path):
    """ALFIE_ROS_FREE=1: a module is skipped when loading it imports ROS, directly, through a test helper
    or through the package; lazy (in-function) and optional (try/except ImportError) imports do not count."""
    here = os.path.dirname(os.path.abspath(__file__))
    chain = conftest.ros_import_chain(os.path.join(here, "test_services.py"))
    assert chain is not None and chain[-1] in conftest.ROS_MODULES
    assert conftest.ros_import_chain(os.path.join(here, "test_discovery.py")) is None, \
        "ros_helpers imports rclpy only inside params()"
    assert conftest.ros_import_chain(os.path.join(REPO, "alfie_gr00t", "nodes", "groot_client.py"))[0] in \
        ("rclpy", "builtin_interfaces", "geometry_msgs")
    assert conftest.ros_import_chain(os.path.join(REPO, "alfie_gr00t", "client", "safety.py")) is None
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    import rclpy\ntry:\n    import launch_ros\nexcept ImportError:\n    pass\n")
    assert conftest.ros_import_chain(str(probe)) is None
    probe2 = tmp_path / "probe2.py"
    probe2.write_text("import os\nif os.environ:\n    from alfie_gr00t.nodes import runner\n")
    assert conftest.ros_import_chain(str(probe2)) == ("alfie_gr00t.nodes.runner", "rclpy")


def test_ros_free_run_skips_with_the_reason_and_runs_the_rest(tmp_path):
    """A real pytest run in ROS-free mode over two modules: one ROS, one not."""
    (tmp_path / "test_ros.py").write_text("import rclpy\n\ndef test_a():\n    assert False\n")
    (tmp_path / "test_plain.py").write_text("def test_b():\n    assert 1 + 1 == 2\n")
    # this directory's conftest, loaded as a plugin (-p conftest), decides the selection
    env = dict(os.environ, ALFIE_ROS_FREE="1",
               PYTHONPATH=os.pathsep.join([REPO, os.path.dirname(os.path.abspath(__file__))]))
    env.pop("PYTEST_ADDOPTS", None)  # colcon's options (its --junit-xml path above all) are the outer run's
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "conftest", "-rs",
                          str(tmp_path)],
                         env=env, capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 passed, 1 skipped" in out.stdout
    assert "test_ros.py: ROS-free run (ALFIE_ROS_FREE=1) skips it: imports rclpy" in out.stdout
    env["ALFIE_ROS_FREE"] = "0"
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "conftest",
                          str(tmp_path)],
                         env=env, capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
    # without the variable nothing is skipped: test_ros.py fails (with rclpy) or cannot be imported (without)
    assert out.returncode in (1, 2) and "skipped" not in out.stdout and "test_ros.py" in out.stdout, out.stdout

"""The Fast DDS profiles we ship parse (Fast DDS reports an XML error on stderr and carries on with its
defaults, so a broken file would silently undo the setting), and the client applies its readers'
profile only where nobody chose a profile or another middleware."""

import os
import subprocess
import sys

import pytest

from support.ros_helpers import REPO
from alfie_gr00t.nodes.stop_path import use_client_dds_profile

_PROBE = """
import rclpy
from std_msgs.msg import Bool
rclpy.init()
node = rclpy.create_node("profile_probe")
node.create_subscription(Bool, "profile_probe", lambda m: None, 10)
node.create_publisher(Bool, "profile_probe", 10)
print("participant up")
node.destroy_node()
rclpy.shutdown()
"""


@pytest.mark.parametrize("name", ["fastdds_client.xml", "fastdds_robot.xml"])
def test_shipped_profile_parses(name):
    env = dict(os.environ, FASTRTPS_DEFAULT_PROFILES_FILE=os.path.join(REPO, "config", name))
    env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    env.pop("RMW_IMPLEMENTATION", None)
    done = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "participant up" in done.stdout
    assert "XMLPARSER" not in done.stderr and "Error" not in done.stderr, done.stderr


def test_client_sets_its_readers_profile_when_none_is_set():
    env = {}
    path = use_client_dds_profile(env)
    assert path.endswith(os.path.join("config", "fastdds_client.xml")) and os.path.isfile(path)
    assert env == {"FASTRTPS_DEFAULT_PROFILES_FILE": path}


@pytest.mark.parametrize("env", [
    {"FASTRTPS_DEFAULT_PROFILES_FILE": "/robot/profile.xml"},
    {"FASTDDS_DEFAULT_PROFILES_FILE": "/robot/profile.xml"},
    {"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"},
])
def test_client_leaves_a_chosen_profile_or_middleware_alone(env):
    before = dict(env)
    assert use_client_dds_profile(env) == ""
    assert env == before

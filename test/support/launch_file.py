"""The launch file, loaded as `ros2 launch` would, with the real or stand-in `launch` modules, and the
launch configurations a `ros2 launch ... a:=b` leaves behind."""

import importlib.util
import os
import sys
import types

from alfie_gr00t.nodes.launch_args import ARGUMENTS

from support.ros_helpers import REPO

LAUNCH_FILE = os.path.join(REPO, "launch", "groot_inference.launch.py")


def launch_context(**user):
    """What `ros2 launch ... a:=b` leaves in context.launch_configurations: every declared
    default, the user's arguments, and launch_ros's own entries."""
    configurations = {name: a.default for name, a in ARGUMENTS.items()}
    configurations.update(user)
    configurations["ros_namespace"] = "/"  # set by PushRosNamespace when this file is included
    return configurations


class _Recorded:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


def stub_launch_modules(monkeypatch):
    """Minimal stand-ins for `launch` and `launch_ros`: each action records its arguments."""
    launch = types.ModuleType("launch")
    launch.LaunchDescription = type("LaunchDescription", (_Recorded,), {})
    actions = types.ModuleType("launch.actions")
    actions.DeclareLaunchArgument = type("DeclareLaunchArgument", (_Recorded,), {})
    actions.OpaqueFunction = type("OpaqueFunction", (_Recorded,), {})
    launch.actions = actions
    launch_ros = types.ModuleType("launch_ros")
    ros_actions = types.ModuleType("launch_ros.actions")
    ros_actions.Node = type("Node", (_Recorded,), {})
    launch_ros.actions = ros_actions
    for name, module in {"launch": launch, "launch.actions": actions, "launch_ros": launch_ros,
                         "launch_ros.actions": ros_actions}.items():
        monkeypatch.setitem(sys.modules, name, module)


def load_launch_file():
    spec = importlib.util.spec_from_file_location("groot_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

"""Every `ros2 ...` line in the bash blocks of README.md and docs/*.md works when pasted.

Where the `ros2` CLI is absent (the PyPI set-up), each line is checked the way the CLI
would use it: flags exist in Jazzy's `ros2 topic echo/pub`, the topic exists on the real
nodes with that type and direction, `--field` names a field of the type, the YAML payload
fills the message, launch arguments pass `plan_from_arguments`, `ros2 run` names our
executables and their parameters.
"""

import argparse
import importlib
import os
import re
import shlex

import pytest
import rclpy
import yaml

from alfie_gr00t.nodes import launch_args
from alfie_gr00t.client.config import ClientConfig
from alfie_gr00t.server.config import ServerConfig
from alfie_gr00t.nodes.groot_client import GrootClient
from alfie_gr00t.nodes.groot_server import GrootServer
from alfie_gr00t.nodes.sim_robot import SimRobot

from support.ros_helpers import next_domain_id
from support.ros_helpers import REPO, params

EXECUTABLES = {"groot_server": ServerConfig, "groot_client": ClientConfig, "groot_sim_robot": None,
               "groot_build_engine": None, "groot_bench": None}
# Packages other than ours a documented line may run (documented tools, not checked here).
EXTERNAL_PACKAGES = {"diagnostic_aggregator", "rqt_robot_monitor", "rqt_runtime_monitor", "controller_manager"}


def doc_files():
    """README.md and every docs/*.md, as paths relative to the repository root."""
    docs = sorted(n for n in os.listdir(os.path.join(REPO, "docs")) if n.endswith(".md"))
    return ["README.md"] + [f"docs/{n}" for n in docs]


def _read(name):
    with open(os.path.join(REPO, name), encoding="utf-8") as f:
        return f.read()


def file_commands(name):
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", _read(name), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["ros2"]:
                commands.append(words)
    return commands


# (file, words) for every `ros2` line of every page
COMMANDS = [(name, words) for name in doc_files() for words in file_commands(name)]
README_COMMANDS = [words for name, words in COMMANDS if name == "README.md"]


def _cases(select):
    return [pytest.param(words, id=f"{name}: {' '.join(words)}") for name, words in COMMANDS if select(words)]


def _echo_parser():
    # ros2cli (Jazzy) ros2topic/verb/echo.py
    p = argparse.ArgumentParser(prog="ros2 topic echo", exit_on_error=False)
    p.add_argument("topic_name")
    p.add_argument("message_type", nargs="?")
    for flag in ("--csv", "--full-length", "-f", "--no-arr", "--no-str", "--flow-style", "--no-lost-messages",
                 "--raw", "--once", "--include-message-info", "--no-daemon", "--use-sim-time", "-s"):
        p.add_argument(flag, action="store_true")
    for flag in ("--field", "--truncate-length", "-l", "--timeout", "--filter", "--spin-time", "--qos-profile",
                 "--qos-depth", "--qos-history", "--qos-reliability", "--qos-durability"):
        p.add_argument(flag)
    return p


def _pub_parser():
    # ros2cli (Jazzy) ros2topic/verb/pub.py
    p = argparse.ArgumentParser(prog="ros2 topic pub", exit_on_error=False)
    p.add_argument("topic_name")
    p.add_argument("message_type")
    p.add_argument("values", nargs="?", default="{}")
    for flag in ("--once", "-1", "--use-sim-time", "-s"):
        p.add_argument(flag, action="store_true")
    for flag in ("-r", "--rate", "-p", "--print", "-t", "--times", "-w", "--wait-matching-subscriptions",
                 "--keep-alive", "-n", "--node-name", "--qos-profile", "--qos-depth", "--qos-history",
                 "--qos-reliability", "--qos-durability", "--max-wait-time-secs"):
        p.add_argument(flag)
    return p


def _message_class(type_name):
    parts = type_name.split("/")
    assert len(parts) in (2, 3) and (len(parts) == 2 or parts[1] == "msg"), f"bad message type {type_name}"
    return getattr(importlib.import_module(f"{parts[0]}.msg"), parts[-1])


def _full_type(cls):
    return f"{cls.__module__.split('.')[0]}/msg/{cls.__name__}"


@pytest.fixture(scope="module")
def interfaces(tmp_path_factory):
    """{'pub'|'sub': {topic: {types}}} of the real server, client and sim robot in namespace alfie."""
    ipc_path = os.path.join(str(tmp_path_factory.mktemp("ipc")), "g.sock")
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=next_domain_id())
    nodes = []
    try:
        server = GrootServer(namespace="alfie", context=context,
                             parameter_overrides=params(mock_mode=True, ipc_path=ipc_path, warmup_runs=0))
        server.start()
        nodes.append(server)
        client = GrootClient(namespace="alfie", context=context, parameter_overrides=params(ipc_path=ipc_path))
        client.start()
        nodes.append(client)
        robot = SimRobot(namespace="alfie", context=context)
        robot.start()
        nodes.append(robot)
        found = {"pub": {}, "sub": {}}
        for node in nodes:
            for kind, query in (("pub", node.get_publisher_names_and_types_by_node),
                                ("sub", node.get_subscriber_names_and_types_by_node)):
                for topic, types in query(node.get_name(), node.get_namespace()):
                    found[kind].setdefault(topic, set()).update(types)
        yield found
    finally:
        for node in reversed(nodes):
            if hasattr(node, "close"):
                node.close()
            node.destroy_node()
        context.try_shutdown()


def _fill(msg, values, where):
    """Set fields like `ros2 topic pub` does (rosidl setters check the types)."""
    assert isinstance(values, dict), f"{where}: the payload must be a YAML map"
    for key, value in values.items():
        assert key in msg.get_fields_and_field_types(), f"{where}: {type(msg).__name__} has no field {key!r}"
        current = getattr(msg, key)
        if isinstance(value, dict):
            _fill(current, value, where)
        else:
            setattr(msg, key, value)


def test_readme_has_the_commands_a_user_needs():
    """The front page's quick start: launch, activate, echo both statuses and /diagnostics."""
    verbs = {tuple(c[1:3]) for c in README_COMMANDS}
    assert {("topic", "pub"), ("topic", "echo"), ("launch", "alfie_gr00t")} <= verbs
    echoed = {c[-2] if len(c) > 3 else "" for c in README_COMMANDS if c[1:3] == ["topic", "echo"]}
    assert {"/alfie/groot_server/status", "/alfie/groot_client/status", "/diagnostics"} <= echoed


def test_docs_commands_are_collected():
    """The docs are read too: their bash blocks hold ros2 lines of every kind checked below."""
    in_docs = {tuple(words[1:3]) for name, words in COMMANDS if name.startswith("docs/")}
    assert {("topic", "echo"), ("launch", "alfie_gr00t"), ("run", "alfie_gr00t")} <= in_docs


@pytest.mark.parametrize("words", _cases(lambda c: c[1:3] == ["topic", "echo"]))
def test_echo_commands(words, interfaces):
    args = _echo_parser().parse_args(words[3:])
    assert args.message_type, "name the type: without it echo needs the daemon to have seen the topic"
    cls = _message_class(args.message_type)
    published = interfaces["pub"].get(args.topic_name)
    assert published, f"no node publishes {args.topic_name}"
    assert _full_type(cls) in published, f"{args.topic_name} is {published}, not {args.message_type}"
    if args.field:
        msg = cls()
        for part in args.field.split("."):
            assert part in msg.get_fields_and_field_types(), f"{cls.__name__} has no field {part!r}"
            msg = getattr(msg, part)
    if cls.__name__ == "String" and args.topic_name.endswith("/status"):
        assert args.full_length or args.f, "the JSON status is longer than the 128-character default"


@pytest.mark.parametrize("words", _cases(lambda c: c[1:3] == ["topic", "pub"]))
def test_pub_commands(words, interfaces):
    args = _pub_parser().parse_args(words[3:])
    assert args.once or getattr(args, "1"), "the docs publish one message"
    assert args.w or args.wait_matching_subscriptions, "without -w the single message can go out before discovery"
    cls = _message_class(args.message_type)
    subscribed = interfaces["sub"].get(args.topic_name)
    assert subscribed, f"no node subscribes to {args.topic_name}"
    assert _full_type(cls) in subscribed, f"{args.topic_name} takes {subscribed}, not {args.message_type}"
    _fill(cls(), yaml.safe_load(args.values), " ".join(words))


@pytest.mark.parametrize("words", _cases(lambda c: c[1] == "launch"))
def test_launch_commands(words):
    assert words[2:4] == ["alfie_gr00t", "groot_inference.launch.py"]
    assert os.path.exists(os.path.join(REPO, "launch", words[3]))
    values = dict(w.split(":=", 1) for w in words[4:])
    values.pop("api_token", None)  # a reference to the user's secret; resolved on their machine
    launch_args.plan_from_arguments(values)


@pytest.mark.parametrize("words", _cases(lambda c: c[1] == "run"))
def test_run_commands(words):
    package, executable = words[2], words[3]
    if package in EXTERNAL_PACKAGES:
        return
    assert package == "alfie_gr00t" and executable in EXECUTABLES, words
    config = EXECUTABLES[executable]
    rest = words[4:]
    for i, word in enumerate(rest):
        if word == "-p" and config is not None:
            name = rest[i + 1].split(":=", 1)[0]
            assert name in config.__dataclass_fields__, f"{executable} has no parameter {name!r}"


def test_controller_yaml_names_the_client_joints():
    blocks = [yaml.safe_load(b) for name in doc_files() for b in re.findall(r"```yaml\n(.*?)```", _read(name), re.S)]
    controllers = [b for b in blocks if isinstance(b, dict) and "alfie_arm_head_controller" in b]
    assert controllers, "no joint_trajectory_controller YAML in README.md or docs/"
    spec = controllers[0]["alfie_arm_head_controller"]["ros__parameters"]
    assert spec["joints"] == list(ClientConfig().joint_names[6:])
    assert spec["command_interfaces"] == ["position"]
    manager = controllers[0]["controller_manager"]["ros__parameters"]
    assert manager["alfie_arm_head_controller"]["type"] == "joint_trajectory_controller/JointTrajectoryController"
    with open(os.path.join(REPO, "config", "groot_client.yaml"), encoding="utf-8") as f:
        names = yaml.safe_load(f)["/**/groot_client"]["ros__parameters"]["joint_names"]
    assert spec["joints"] == names[6:]

"""Helpers for tests that run real rclpy nodes and real node processes."""

import itertools
import json
import os
import subprocess
import sys
import time

from alfie_gr00t import discovery

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_domain_ids = itertools.count(1 + (os.getpid() * 7) % 90)


def next_domain_id() -> int:
    """A fresh ROS domain id per test (1..200), so parallel runs and tests never see each other."""
    return 1 + next(_domain_ids) % 200


def ros_free_run() -> bool:
    """`make test`'s Python 3.10 leg (ALFIE_ROS_FREE=1): only the tests that need no ROS run."""
    return os.environ.get("ALFIE_ROS_FREE", "") == "1"


def params(**values):
    from rclpy.parameter import Parameter  # here, so ROS-free tests can import the helpers

    return [Parameter(name, value=value) for name, value in values.items()]


class Collector:
    """Keeps every message of a topic (thread-safe enough for tests: list appends)."""

    def __init__(self, node, msg_type, topic, qos=10):
        self.messages = []
        self.stamps = []
        node.create_subscription(msg_type, topic, self._store, qos)

    def _store(self, msg):
        self.stamps.append(time.monotonic())
        self.messages.append(msg)

    def json(self):
        return [json.loads(m.data) for m in self.messages]


def wait_for(predicate, timeout=10.0, interval=0.02):
    """Poll `predicate` until truthy or timeout; returns its last value."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    return value


def node_env(domain_id):
    env = discovery.confine_to_localhost(dict(os.environ))
    env.update(ROS_DOMAIN_ID=str(domain_id), PYTHONUNBUFFERED="1",
               PYTHONPATH=REPO + os.pathsep + env.get("PYTHONPATH", ""))
    return env


def start_node_process(module, domain_id, ros_params: dict, extra_args=()):
    """`python -m alfie_gr00t.nodes.<module> --ros-args -p k:=v ...` as a real process."""
    args = [sys.executable, "-m", f"alfie_gr00t.nodes.{module}", *extra_args, "--ros-args"]
    for key, value in ros_params.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        args += ["-p", f"{key}:={value}"]
    return subprocess.Popen(args, env=node_env(domain_id), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)

"""The robot side of the client-node tests: a real `GrootClient` on real rclpy topics, a small test
robot that publishes four cameras, the joint state and the base twist and never moves (so every hold
the client publishes is recognisable: the measured joints with a zero twist), real `groot_server`
processes, and a scripted REP thread speaking our protocol that can be told to misbehave."""

from __future__ import annotations

import array
import contextlib
import math
import signal
import threading
import time

import msgpack
import numpy as np
import pytest
import rclpy
import zmq
from geometry_msgs.msg import Twist
from rclpy.qos import DurabilityPolicy, QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, String

from alfie_gr00t import layout
from alfie_gr00t.client.state_machine import ClientState
from alfie_gr00t.nodes.groot_client import GrootClient
from alfie_gr00t.nodes.runner import NodeSpinner
from alfie_gr00t.wire.transport import ipc_path_is_live

from support.ros_helpers import Collector, next_domain_id, params, start_node_process, wait_for

CLIENT_NS = "/groot_client"
ARM_HEAD_NAMES = list(layout.JOINT_NAMES[layout.JOINT_DIMS])
LOWER = np.asarray(layout.LOWER_LIMITS)
UPPER = np.asarray(layout.UPPER_LIMITS)
DECAY = np.exp(-np.arange(layout.ACTION_HORIZON) / 4.0)

# What the test robot measures: a posture inside the limits and a slow base motion. The scripted
# server's policy steps put every joint POLICY_OFFSET away from the measured posture (and the base
# at state * decay), so policy commands tell apart from holds: a hold ends exactly at the measured
# joints with a zero twist (it ramps there at the velocity limits, a few messages).
POSTURE = (0.3, 0.4, -0.5, 0.2, 0.1, 0.4, -0.3, 0.4, 0.5, 0.2, -0.1, 0.4, 0.2, -0.3, 0.05)
BASE_TWIST = (0.1, 0.0, 0.0, 0.0, 0.0, 0.2)
POLICY_OFFSET = 0.05
MEASURED = np.asarray(BASE_TWIST + POSTURE, dtype=np.float64)
HOLD_JOINTS = MEASURED[layout.JOINT_DIMS]

# Bounds that only catch hangs.
CONNECT_S = 15.0
ERROR_BOUND_S = 10.0
SETTLE_S = 0.5


# ----------------------------------------------------------------------------- the robot side


class Robot:
    """Publishes cameras + state from a thread, sends the client's control topics, collects its outputs."""

    def __init__(self, context, width=64, height=48, camera_hz=30.0, state_hz=60.0):
        self.node = rclpy.create_node("test_robot", context=context)
        node = self.node
        self.camera_pubs = {name: node.create_publisher(Image, f"/alfie/cameras/{name}/image_raw",
                                                        qos_profile_sensor_data)
                            for name in layout.CAMERA_NAMES}
        self.enabled = set(layout.CAMERA_NAMES)
        self.state_pub = node.create_publisher(JointState, "/alfie/joint_states", 10)
        self.twist_pub = node.create_publisher(Twist, "/alfie/base_velocity", 10)
        self.activate_pub = node.create_publisher(Bool, f"{CLIENT_NS}/activate", 10)
        self.estop_pub = node.create_publisher(
            Bool, f"{CLIENT_NS}/estop", QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self.task_pub = node.create_publisher(String, f"{CLIENT_NS}/task_description", 10)
        self.joints = Collector(node, JointState, f"{CLIENT_NS}/joint_commands")
        self.twists = Collector(node, Twist, f"{CLIENT_NS}/cmd_vel")
        self.status = Collector(node, String, f"{CLIENT_NS}/status")
        # One flat colour per camera (camera i: 30 * (i + 1)), so a server can tell which frame is which.
        self._images = {}
        for i, name in enumerate(layout.CAMERA_NAMES):
            msg = Image(height=height, width=width, encoding="rgb8", step=width * 3)
            msg.data = array.array("B", bytes([30 * (i + 1)]) * (width * height * 3))
            self._images[name] = msg
        # What the driver reports; tests change these while it runs (names, NaN, stalls).
        self.joint_names = list(ARM_HEAD_NAMES)
        self.posture = list(POSTURE)
        self.publish_state = True
        self._camera_every = max(1, round(state_hz / camera_hz))
        self._period = 1.0 / state_hz
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._publish_loop, name="test-robot", daemon=True)

    def _publish_loop(self) -> None:
        joints = JointState()
        twist = Twist()
        (twist.linear.x, twist.linear.y, twist.linear.z,
         twist.angular.x, twist.angular.y, twist.angular.z) = BASE_TWIST
        tick = 0
        next_time = time.monotonic()
        while not self._stop.is_set():
            stamp = self.node.get_clock().now().to_msg()
            if self.publish_state:
                self.twist_pub.publish(twist)
                joints.name = list(self.joint_names)
                joints.position = [float(v) for v in self.posture]
                joints.header.stamp = stamp
                self.state_pub.publish(joints)
            if tick % self._camera_every == 0:
                for name in list(self.enabled):
                    image = self._images[name]
                    image.header.stamp = stamp
                    self.camera_pubs[name].publish(image)
            tick += 1
            next_time += self._period
            self._stop.wait(max(0.0, next_time - time.monotonic()))

    def start(self) -> "Robot":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)

    def wait_connected(self, client_node, measured: bool = True) -> None:
        """Both directions discovered: the client hears our control topics, we hear its outputs."""
        def linked():
            return (self.activate_pub.get_subscription_count() >= 1
                    and self.estop_pub.get_subscription_count() >= 1
                    and self.task_pub.get_subscription_count() >= 1
                    and self.state_pub.get_subscription_count() >= 1
                    and all(p.get_subscription_count() >= 1 for p in self.camera_pubs.values())
                    and self.node.count_publishers(f"{CLIENT_NS}/joint_commands") >= 1
                    and self.node.count_publishers(f"{CLIENT_NS}/cmd_vel") >= 1)
        assert wait_for(linked, timeout=CONNECT_S), "client and test robot never discovered each other"
        # The client has fresh inputs (otherwise activation just waits; this keeps tests short).
        if measured:
            assert wait_for(lambda: client_node.measured.reading().missing() == [], timeout=CONNECT_S)
        else:
            assert wait_for(lambda: self.state_pub.get_subscription_count() >= 1 and time.sleep(0.3) is None,
                            timeout=CONNECT_S)

    def activate(self, on: bool = True) -> None:
        self.activate_pub.publish(Bool(data=on))

    def estop(self, on: bool) -> None:
        self.estop_pub.publish(Bool(data=on))

    # -- reading what the client published ------------------------------------------------
    def commands(self, start: int = 0) -> list:
        return list(self.joints.messages[start:])

    def policy_commands(self, start: int = 0) -> list:
        return [m for m in self.commands(start) if not is_hold(m)]


def is_hold(msg: JointState) -> bool:
    return np.allclose(msg.position, HOLD_JOINTS, rtol=0.0, atol=1e-6)


def is_zero_twist(msg: Twist) -> bool:
    return not any((msg.linear.x, msg.linear.y, msg.linear.z, msg.angular.x, msg.angular.y, msg.angular.z))


def make_client(context, ipc_path: str, **overrides) -> GrootClient:
    values = dict(ipc_path=ipc_path, image_width=64, image_height=56, encode_threads=1,
                  inference_timeout_ms=300, max_consecutive_failures=3)
    values.update(overrides)
    client = GrootClient(context=context, parameter_overrides=params(**values))
    client.start()
    return client


@contextlib.contextmanager
def client_and_robot(context, ipc_path: str, robot_setup=None, **overrides):
    """A started client and test robot, each spun on its own executor; torn down in order.
    `robot_setup(robot)` runs before the robot starts publishing (names, posture)."""
    client = make_client(context, ipc_path, **overrides)
    robot = Robot(context)
    if robot_setup is not None:
        robot_setup(robot)
    spinner = NodeSpinner([client, robot.node], context)
    try:
        with spinner:
            robot.start()
            try:
                robot.wait_connected(client, measured=robot_setup is None)
                yield client, robot
            finally:
                robot.stop()
    finally:
        client.close()
        client.destroy_node()
        robot.node.destroy_node()


def wait_state(client: GrootClient, state: ClientState, timeout: float = ERROR_BOUND_S) -> float:
    """Seconds until the client reaches `state` (fails past `timeout`)."""
    start = time.monotonic()
    assert wait_for(lambda: client.machine.state is state, timeout=timeout, interval=0.005), \
        f"client state {client.machine.state.value}, expected {state.value}; status {client.status()}"
    return time.monotonic() - start


def assert_quiet(robot: Robot, seconds: float = SETTLE_S) -> None:
    """The hold's ramp ends (joints at their velocity limit, the base at its deceleration: well under
    2 s here), then nothing more is published on ~/joint_commands for `seconds`."""
    def settled():
        count = len(robot.joints.messages)
        time.sleep(0.2)
        return len(robot.joints.messages) == count
    assert wait_for(settled, timeout=3.0, interval=0.0), "the hold never finished"
    before = len(robot.joints.messages)
    time.sleep(seconds)
    assert len(robot.joints.messages) == before, "joint commands kept flowing"


def assert_within_limits(msgs) -> None:
    for msg in msgs:
        position = np.asarray(msg.position)
        assert list(msg.name) == ARM_HEAD_NAMES
        assert np.all(np.isfinite(position))
        assert np.all(position >= LOWER[layout.JOINT_DIMS] - 1e-9), position
        assert np.all(position <= UPPER[layout.JOINT_DIMS] + 1e-9), position


# ----------------------------------------------------------------------------- policy servers


def start_server(ipc_path: str, **ros_params):
    """A real groot_server process. The `trajectory` mock moves the joints away from the test robot's
    posture, so policy commands tell apart from holds (the `hold` mock would command the posture)."""
    values = {"mock_mode": True, "ipc_path": ipc_path, "warmup_runs": 0, "mock_policy": "trajectory"}
    values.update(ros_params)
    return start_node_process("groot_server", next_domain_id(), values)


def wait_serving(ipc_path: str, proc, timeout: float = 20.0) -> None:
    """The process accepts connections on the path (a stale file left by a dead server does not count)."""
    ok = wait_for(lambda: ipc_path_is_live(ipc_path) or proc.poll() is not None, timeout=timeout, interval=0.05)
    if not ok or proc.poll() is not None:
        out = proc.stdout.read() if proc.poll() is not None else ""
        pytest.fail(f"server never came up on {ipc_path}: {out}")


def stop_server(proc) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=10)
        except Exception:
            proc.kill()
            proc.communicate(timeout=5)


class ScriptedServer:
    """Our protocol's REP side on a thread. `behaviour` picks the reply and can change at any time:
    mock (joints at the state + POLICY_OFFSET, base at state * exp(-i/4)), wrong_shape (20 numbers
    per step), nan,
    out_of_limit (head yaw far past its limit at every step). `delay_s` is the engine's time."""

    def __init__(self, address: str, behaviour: str = "mock", delay_s: float = 0.0):
        self.behaviour = behaviour
        self.delay_s = delay_s
        self.requests: list[dict] = []
        self.pings = 0
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.REP)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.bind(address)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="scripted-server", daemon=True)

    @property
    def languages(self) -> list[str]:
        return [r["language"] for r in list(self.requests)]

    def _reply(self, request: dict) -> bytes:
        state = np.asarray(request["state"], dtype=np.float64)
        actions = np.repeat(state[None, :] + POLICY_OFFSET, len(DECAY), axis=0)
        actions[:, layout.BASE_DIMS] = state[None, layout.BASE_DIMS] * DECAY[:, None]
        if self.behaviour == "wrong_shape":
            actions = actions[:, :20]
        elif self.behaviour == "nan":
            actions[3, 8] = math.nan
        elif self.behaviour == "out_of_limit":
            actions[:, 18] = 2.0  # head yaw: limit 0.5, plus the 0.2 reject margin
        return msgpack.packb({"actions": actions.tolist(), "inference_time_ms": 1.0, "status": "ok",
                              "frame_id": request["frame_id"]}, use_bin_type=True)

    def _serve(self) -> None:
        poller = zmq.Poller()
        poller.register(self._socket, zmq.POLLIN)
        while not self._stop.is_set():
            if not poller.poll(20):
                continue
            request = msgpack.unpackb(self._socket.recv(), raw=False)
            if "endpoint" in request:  # the client's first contact: Isaac-GR00T's ping, answered as upstream does
                self.pings += 1
                self._socket.send(msgpack.packb({"status": "ok", "message": "Server is running"}, use_bin_type=True))
                continue
            self.requests.append(request)
            if self.delay_s:
                time.sleep(self.delay_s)  # an engine taking this long, well within the client's timeout
            self._socket.send(self._reply(request))

    def __enter__(self) -> "ScriptedServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
        self._socket.close(0)
        self._context.term()

"""Fault injection against the real client node (reliability) and the client node basics.

The client is a real `GrootClient` on real rclpy topics (its own ROS domain per test); the
robot is a small in-test publisher (four 64x48 cameras, the joint state, the base twist)
that never moves, so every hold the client publishes is recognisable: the measured joints
with a zero twist. Policy servers are real `groot_server` processes (killed with SIGKILL,
restarted on the same IPC path) or a minimal in-test REP thread speaking our protocol that
can be told to misbehave.

No timing is asserted except loose upper bounds that catch hangs and a loose lower bound on
the command rate. Figures (time to ERROR, holds, rates) are printed: run with -s.
"""

from __future__ import annotations

import array
import contextlib
import math
import os
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

from conftest import next_domain_id
from ros_helpers import Collector, params, start_node_process, wait_for

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


# ============================================================================ fault injection


def test_server_sigkill_mid_request_then_restart_on_same_path(ros_context, ipc_path):
    # Requests back to back (target_fps above the engine's rate, refill at every step), so the
    # SIGKILL lands while one is in flight. Chunks last 1.6 s and the watchdog 3 s: the only
    # hold after the kill must come from entering ERROR.
    server = start_server(ipc_path, mock_delay_ms=60.0)
    try:
        with client_and_robot(ros_context, ipc_path, inference_timeout_ms=300, target_fps=50.0,
                              refill_threshold_steps=16.0, action_step_hz=10.0, watchdog_timeout_s=3.0) \
                as (client, robot):
            wait_serving(ipc_path, server)
            robot.activate(True)
            wait_state(client, ClientState.ACTIVE, CONNECT_S)
            assert wait_for(lambda: client.worker.requests_ok >= 5 and len(robot.policy_commands()) >= 20)
            before = client.status()
            first_after_kill = len(robot.joints.messages)

            server.send_signal(signal.SIGKILL)
            server.wait(timeout=5)
            time_to_error = wait_state(client, ClientState.ERROR, ERROR_BOUND_S)
            assert_quiet(robot)

            after = robot.commands(first_after_kill)
            holds = [m for m in after if is_hold(m)]
            assert len(holds) == 1, f"{len(holds)} holds after the kill"
            assert is_hold(after[-1]), "a policy command followed the hold"
            assert is_zero_twist(robot.twists.messages[-1])
            assert_within_limits(robot.commands())
            status = client.status()
            assert status["state"] == "ERROR"
            assert status["holds_published"] - before["holds_published"] == 1
            assert status["requests_failed"] - before["requests_failed"] >= 3
            assert "no reply" in status["last_error"]
            print(f"\nSIGKILL: ERROR after {time_to_error:.2f} s (adaptive timeout x 3 failures), "
                  f"{len(after) - 1} policy commands then 1 hold, "
                  f"{status['requests_failed'] - before['requests_failed']} requests failed")

            # The dead server left its socket file; a new one removes it and serves on the same path.
            assert os.path.exists(ipc_path) and not ipc_path_is_live(ipc_path)
            server = start_server(ipc_path)
            wait_serving(ipc_path, server)
            resumed_from = len(robot.joints.messages)
            ok_before = client.worker.requests_ok
            robot.activate(True)
            wait_state(client, ClientState.ACTIVE, CONNECT_S)
            assert wait_for(lambda: len(robot.policy_commands(resumed_from)) >= 50, timeout=CONNECT_S)
            assert client.worker.requests_ok > ok_before
            assert client.worker.consecutive_failures == 0
    finally:
        stop_server(server)


def test_engine_slower_than_timeout_holds_and_recreates_req_socket(ros_context, ipc_path):
    server = start_server(ipc_path, mock_delay_ms=400.0)
    try:
        with client_and_robot(ros_context, ipc_path, inference_timeout_ms=250) as (client, robot):
            wait_serving(ipc_path, server)
            robot.activate(True)
            time_to_error = wait_state(client, ClientState.ERROR, ERROR_BOUND_S)
            assert_quiet(robot)
            status = client.status()
            assert status["requests_ok"] == 0 and status["chunks_received"] == 0
            assert status["requests_failed"] == 3 and status["consecutive_failures"] == 3
            assert "no reply" in status["last_error"] and "250 ms" in status["last_error"]
            # Each timeout closed the REQ socket (linger 0) and the next request made a new one.
            assert client.worker._client.reconnects >= 3
            # Held: no policy command ever reached the robot.
            assert robot.policy_commands() == []
            assert all(is_zero_twist(t) for t in robot.twists.messages)
            # The same figures reach ~/status.
            published = wait_for(lambda: [s for s in robot.status.json() if s["requests_failed"] == 3],
                                 timeout=5.0)
            assert published and published[-1]["state"] == "ERROR"
            print(f"\nslow engine (400 ms vs 250 ms timeout): ERROR after {time_to_error:.2f} s, "
                  f"{status['requests_failed']} timeouts, {client.worker._client.reconnects} REQ sockets "
                  f"recreated, {len(robot.commands())} holds, 0 policy commands")

            # The engine is fast again (a new server on the same path): requests succeed at once.
            server.send_signal(signal.SIGKILL)
            server.wait(timeout=5)
            server = start_server(ipc_path)
            wait_serving(ipc_path, server)
            robot.activate(True)
            wait_state(client, ClientState.ACTIVE, CONNECT_S)
            assert wait_for(lambda: client.worker.requests_ok >= 3 and len(robot.policy_commands()) >= 20,
                            timeout=CONNECT_S)
            assert client.worker.consecutive_failures == 0
            assert_within_limits(robot.commands())
    finally:
        stop_server(server)


def test_bad_replies_are_rejected_counted_and_lead_to_error(ros_context, ipc_path):
    with ScriptedServer(f"ipc://{ipc_path}") as server, \
            client_and_robot(ros_context, ipc_path, max_consecutive_failures=3) as (client, robot):
        expected_error = {"wrong_shape": "21 numbers", "nan": "NaN", "out_of_limit": "chunk rejected"}
        for behaviour, message in expected_error.items():
            server.behaviour = behaviour
            before = client.status()
            requests_before = len(server.requests)
            robot.activate(True)
            assert wait_for(lambda: client.worker.requests_failed >= before["requests_failed"] + 3
                            and client.machine.state is ClientState.ERROR, timeout=ERROR_BOUND_S), \
                f"{behaviour}: {client.status()}"
            assert_quiet(robot, 0.3)
            status = client.status()
            assert status["requests_failed"] - before["requests_failed"] == 3, behaviour
            assert len(server.requests) - requests_before == 3, behaviour  # then it stopped asking
            assert status["requests_ok"] == 0 and status["chunks_received"] == 0
            rejected = status["chunks_rejected"] - before["chunks_rejected"]
            assert rejected == (3 if behaviour == "out_of_limit" else 0), behaviour
            assert message in status["last_error"], (behaviour, status["last_error"])
        # Nothing from any of those chunks reached the robot.
        assert robot.policy_commands() == []
        assert all(is_zero_twist(t) for t in robot.twists.messages)
        print(f"\nbad replies: 3 kinds x 3 rejected, {client.worker.chunks_rejected} counted as out of limits, "
              f"{len(robot.commands())} holds, 0 policy commands")


def test_camera_that_stops_publishing_stops_observations(ros_context, ipc_path):
    with ScriptedServer(f"ipc://{ipc_path}") as server, \
            client_and_robot(ros_context, ipc_path) as (client, robot):
        robot.activate(True)
        wait_state(client, ClientState.ACTIVE, CONNECT_S)
        assert wait_for(lambda: len(server.requests) >= 3 and len(robot.policy_commands()) >= 20)

        robot.enabled.discard("right_center")
        assert wait_for(lambda: client.worker.stale_inputs == ["right_center"], timeout=5.0), client.status()
        requests = len(server.requests)
        skipped = client.worker.stale_skipped
        time.sleep(0.6)
        assert len(server.requests) == requests, "observations were sent with a stale camera"
        assert client.worker.stale_skipped > skipped
        published = wait_for(lambda: [s for s in robot.status.json() if s["stale_inputs"] == ["right_center"]],
                             timeout=5.0)
        assert published and published[-1]["stale_observations_skipped"] > 0
        # The queue ran dry (watchdog): one hold, then silence; a stale camera is no failure.
        assert wait_for(lambda: is_hold(robot.joints.messages[-1]), timeout=5.0)
        assert_quiet(robot)
        assert client.machine.state is ClientState.ACTIVE
        assert client.worker.requests_failed == 0

        robot.enabled.add("right_center")
        resumed_from = len(robot.joints.messages)
        assert wait_for(lambda: len(server.requests) > requests and len(robot.policy_commands(resumed_from)) >= 20,
                        timeout=CONNECT_S)
        assert client.worker.stale_inputs == []
        print(f"\nstale camera: {len(server.requests)} requests, {client.worker.stale_skipped} stale "
              "observations skipped, robot held while stale")


# ============================================================================ client node basics


STATUS_KEYS = {
    "state", "task", "server_address", "server_protocol", "requests_ok", "requests_failed",
    "round_trip_p50_ms", "round_trip_p95_ms", "server_inference_ms", "chunks_received", "chunks_rejected",
    "queue_depth_steps", "stale_observations_skipped", "stale_inputs", "consecutive_failures", "last_error",
    "commands_published", "holds_published", "command_period_p50_ms", "command_period_p99_ms",
    "safety_rejected_nonfinite", "safety_limited_ticks", "stages_ms", "missing_joints", "invalid_joints",
    "latency_p95_ms", "expected_latency_ms", "request_timeout_ms", "latency_budget", "policy_too_slow",
}


def test_client_commands_estop_resume_task_and_status(ros_context, ipc_path):
    with ScriptedServer(f"ipc://{ipc_path}") as server, \
            client_and_robot(ros_context, ipc_path) as (client, robot):
        robot.activate(True)
        wait_state(client, ClientState.ACTIVE, CONNECT_S)
        assert wait_for(lambda: len(robot.policy_commands()) >= 10)

        # ~100 Hz of commands, arm and head joints by name, all within the limits.
        start, window = len(robot.joints.messages), 2.0
        time.sleep(window)
        rate = (len(robot.joints.messages) - start) / window
        assert rate > 50.0, f"{rate:.1f} Hz of joint commands"
        assert_within_limits(robot.commands())
        for twist in robot.twists.messages:
            base = np.array([twist.linear.x, twist.linear.y, twist.linear.z,
                             twist.angular.x, twist.angular.y, twist.angular.z])
            assert np.all(base >= LOWER[layout.BASE_DIMS]) and np.all(base <= UPPER[layout.BASE_DIMS])
        assert client.status()["commands_published"] > 0

        # A new task reaches the server with the next observations.
        robot.task_pub.publish(String(data="open the drawer"))
        assert wait_for(lambda: "open the drawer" in server.languages, timeout=5.0)
        assert server.languages[0] == "find the can and pick it up"
        assert client.status()["task"] == "open the drawer"

        # E-stop: one hold, then nothing; activate is ignored while latched.
        before = len(robot.joints.messages)
        sent = time.time()
        robot.estop(True)
        wait_state(client, ClientState.E_STOP, 5.0)
        assert_quiet(robot)
        after = robot.commands(before)
        assert after and is_hold(after[-1]) and sum(map(is_hold, after)) == 1
        hold = after[-1]
        hold_latency = hold.header.stamp.sec + hold.header.stamp.nanosec * 1e-9 - sent
        assert hold_latency < 1.0  # a loose bound: the hold is published when the e-stop arrives
        stamp = lambda m: (m.header.stamp.sec, m.header.stamp.nanosec)  # noqa: E731
        assert all(stamp(m) <= stamp(hold) for m in after)
        assert is_zero_twist(robot.twists.messages[-1])
        robot.activate(True)
        time.sleep(0.3)
        assert client.machine.state is ClientState.E_STOP
        assert len(robot.joints.messages) == before + len(after)

        # estop:false returns to IDLE (still silent); a fresh activate resumes.
        robot.estop(False)
        wait_state(client, ClientState.IDLE, 5.0)
        assert_quiet(robot, 0.3)
        resumed_from = len(robot.joints.messages)
        robot.activate(True)
        wait_state(client, ClientState.ACTIVE, CONNECT_S)
        assert wait_for(lambda: len(robot.policy_commands(resumed_from)) >= 20)
        assert_within_limits(robot.commands())

        statuses = wait_for(lambda: robot.status.json(), timeout=3.0)
        assert statuses
        missing = STATUS_KEYS - set(statuses[-1])
        assert not missing, f"status lacks {sorted(missing)}"
        assert statuses[-1]["server_address"] == f"ipc://{ipc_path}"
        assert statuses[-1]["server_protocol"] == "alfie"
        print(f"\nclient basics: {rate:.1f} Hz joint commands, e-stop hold stamped {hold_latency * 1000:.1f} ms "
              f"after the e-stop was sent, {len(server.requests)} requests")


def test_default_pacing_plays_without_holds_while_the_server_is_healthy(ros_context, ipc_path):
    # A 60 ms engine; every other parameter at its default.
    with ScriptedServer(f"ipc://{ipc_path}", delay_s=0.06) as server, \
            client_and_robot(ros_context, ipc_path, inference_timeout_ms=2000,
                             max_consecutive_failures=5) as (client, robot):
        robot.activate(True)
        wait_state(client, ClientState.ACTIVE, CONNECT_S)
        assert wait_for(lambda: len(robot.policy_commands()) >= 10)
        start = len(robot.joints.messages)
        time.sleep(2.0)
        holds = sum(map(is_hold, robot.commands(start)))
        print(f"\ndefault pacing, healthy 60 ms server: {holds} holds in 2 s, "
              f"{len(server.requests)} requests, {client.worker.requests_failed} failed")
        assert client.worker.requests_failed == 0
        assert holds == 0, f"{holds} holds in 2 s of normal operation"


def test_estop_from_a_default_qos_publisher_stops_the_robot(ros_context, ipc_path):
    with ScriptedServer(f"ipc://{ipc_path}"), client_and_robot(ros_context, ipc_path) as (client, robot):
        plain = robot.node.create_publisher(Bool, f"{CLIENT_NS}/estop", 10)  # what most nodes would write
        robot.activate(True)
        wait_state(client, ClientState.ACTIVE, CONNECT_S)
        wait_for(lambda: plain.get_subscription_count() >= 1, timeout=2.0)
        plain.publish(Bool(data=True))
        assert wait_for(lambda: client.machine.state is ClientState.E_STOP, timeout=2.0), \
            f"e-stop from a volatile publisher ignored; state {client.machine.state.value}"

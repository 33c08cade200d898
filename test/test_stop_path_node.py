"""The stop path of the real client node while its sensor callbacks are saturated.

A second process floods the client's camera and state subscriptions: four raw 640x480 cameras and
the joint state, published back to back as fast as it can (reliable, depth 5, as a camera driver
does). Meanwhile the test robot drives the client through every stop interface: `~/estop` and `~/stop`
services, `~/estop` topic, `~/set_active false` and `~/activate false`. Each stop must be handled
before the next tick: once the stop request has moved the state machine, at most the one tick that
was already inside the gate publishes a policy command, and from the stop's first command on the
joints only move back to where the robot is (an e-stop: zero base velocity at once, and only zero).
The gate's invariants hold on every command of the test. Ordering only: no durations are asserted.

The deadman: heartbeats of any message type (the client takes the type from the graph), activation
refused without one, a hold on silence, motion again with a fresh chunk once they return."""

from __future__ import annotations

import subprocess
import sys
import threading
from types import SimpleNamespace

import numpy as np
from std_msgs.msg import Bool, Header
from std_srvs.srv import SetBool, Trigger

from alfie_gr00t import layout
from alfie_gr00t.client.state_machine import ClientState

from support.client_harness import (CLIENT_NS, CONNECT_S, HOLD_JOINTS, POLICY_OFFSET, POSTURE, ScriptedServer,
                                    client_and_robot, wait_state)
from support.gate_checks import assert_gate_invariants
from support.ros_helpers import node_env, wait_for

CALL_TIMEOUT_S = 10.0
EPS = 1e-6

FLOOD = r"""
import array, signal, sys, time
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, JointState
from alfie_gr00t import discovery, layout
rclpy.init()
node = rclpy.create_node("sensor_flood")
qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
cameras = [node.create_publisher(Image, f"/alfie/cameras/{n}/image_raw", qos) for n in layout.CAMERA_NAMES]
state_pub = node.create_publisher(JointState, "/alfie/joint_states", qos)
images = [Image(height=480, width=640, encoding="rgb8", step=1920, data=array.array("B", bytes([40 * i]) * 921600))
          for i in range(4)]
state = JointState(name=list(layout.JOINT_NAMES[layout.JOINT_DIMS]), position=[float(v) for v in sys.argv[1].split(",")])
end, sets = time.monotonic() + float(sys.argv[2]), 0
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
try:
    while time.monotonic() < end:
        stamp = node.get_clock().now().to_msg()
        for pub, image in zip(cameras, images):
            image.header.stamp = stamp
            pub.publish(image)
        state.header.stamp = stamp
        state_pub.publish(state)
        sets += 1
finally:
    print(sets, flush=True)
"""


class Flood:
    """The sensor flood, a process of its own (a camera driver is one too)."""

    def __init__(self, domain_id: int, seconds: float = 300.0):
        self.proc = subprocess.Popen([sys.executable, "-c", FLOOD, ",".join(map(str, POSTURE)), str(seconds)],
                                     env=node_env(domain_id), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)

    def stop(self) -> str:
        self.proc.terminate()
        try:
            out, _ = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate(timeout=10)
        return out


class Recorder:
    """What the client publishes, in publication order (its publishers wrapped), and when a stop request
    moved the state machine (its transitions wrapped): one list, so the order is the order it happened in."""

    def __init__(self, client):
        self.events: list[tuple] = []
        self.joints = SimpleNamespace(messages=[])  # every message as published (the gate checks read these)
        self.twists = SimpleNamespace(messages=[])
        for pub, kind in ((client.joint_pub, "joints"), (client.twist_pub, "twist")):
            pub.publish = self._wrap(kind, pub.publish)
        machine = client.core.machine
        for name in ("estop", "activate"):
            original = getattr(machine, name)
            setattr(machine, name, lambda on, original=original, name=name: self._transition(name, on, original))

    def _wrap(self, kind: str, publish):
        def recorded(msg):
            self._published(kind, msg)
            return publish(msg)
        return recorded

    def _published(self, kind: str, msg) -> None:
        if kind == "joints":
            self.joints.messages.append(msg)
            self.events.append(("joints", np.asarray(msg.position, dtype=np.float64)))
        else:
            self.twists.messages.append(msg)
            self.events.append(("twist", np.array([msg.linear.x, msg.linear.y, msg.linear.z,
                                                   msg.angular.x, msg.angular.y, msg.angular.z])))

    def _transition(self, name: str, on: bool, original):
        if (name, on) in (("estop", True), ("activate", False)):
            self.events.append(("stopping", name))
        return original(on)

    def since_last_stop(self, kind: str) -> tuple[list, list]:
        """The values of `kind` published since the last stop request moved the state machine."""
        events = list(self.events)
        start = max(i for i, e in enumerate(events) if e[0] == "stopping")
        return [e[1] for e in events[start + 1:] if e[0] == kind]


def distance(joints: np.ndarray) -> float:
    return float(np.max(np.abs(joints - HOLD_JOINTS)))


def assert_handled_before_the_next_tick(recorder: Recorder, estop: bool) -> None:
    joints = recorder.since_last_stop("joints")
    assert joints, "nothing published after the stop"
    steady = [abs(distance(j) - POLICY_OFFSET) <= EPS for j in joints]
    first_stop = steady.index(False) if False in steady else len(steady)
    assert first_stop <= 1, f"{first_stop} policy commands after the stop request (one tick may be in flight)"
    ramp = [distance(j) for j in joints[first_stop:]]
    assert all(b <= a + EPS for a, b in zip(ramp, ramp[1:])), f"a joint moved away from the hold: {ramp}"
    assert ramp and ramp[-1] <= EPS, "the hold ends where the robot is"
    twists = recorder.since_last_stop("twist")
    base = [float(np.max(np.abs(t))) for t in twists[first_stop:]]
    if estop:
        assert base and all(b == 0.0 for b in base), f"e-stop: zero base velocity at once and only zero: {base}"
    else:
        assert all(b <= a + EPS for a, b in zip(base, base[1:])), f"the base sped up after the stop: {base}"


def call(client, request):
    future = client.call_async(request)
    assert wait_for(future.done, timeout=CALL_TIMEOUT_S), f"{client.srv_name}: no answer"
    return future.result()


def test_every_stop_is_handled_before_the_next_tick_while_sensors_flood(ros_context, ipc_path):
    flood = Flood(ros_context.get_domain_id())
    try:
        with ScriptedServer(f"ipc://{ipc_path}"), client_and_robot(ros_context, ipc_path) as (client, robot):
            node = robot.node
            recorder = Recorder(client)
            set_active = node.create_client(SetBool, f"{CLIENT_NS}/set_active")
            stop = node.create_client(Trigger, f"{CLIENT_NS}/stop")
            estop = node.create_client(SetBool, f"{CLIENT_NS}/estop")
            estop_topic = node.create_publisher(Bool, f"{CLIENT_NS}/estop", 10)
            for service in (set_active, stop, estop):
                assert service.wait_for_service(timeout_sec=CONNECT_S)
            assert wait_for(lambda: node.count_publishers(f"/alfie/cameras/{layout.CAMERA_NAMES[0]}/image_raw") >= 2
                            and estop_topic.get_subscription_count() >= 1, timeout=CONNECT_S), "flood not seen"
            stops = {
                "~/estop service": (True, lambda: call(estop, SetBool.Request(data=True)).success),
                "~/stop service": (True, lambda: call(stop, Trigger.Request()).success),
                "~/estop topic": (True, lambda: estop_topic.publish(Bool(data=True)) or True),
                "~/set_active false": (False, lambda: call(set_active, SetBool.Request(data=False)).success),
                "~/activate false topic": (False, lambda: robot.activate(False) or True),
            }
            for round_ in range(2):
                for name, (is_estop, request) in stops.items():
                    sent = len(recorder.joints.messages)
                    assert call(set_active, SetBool.Request(data=True)).success, name
                    wait_state(client, ClientState.ACTIVE, CONNECT_S)
                    assert wait_for(lambda: sum(abs(distance(np.asarray(m.position)) - POLICY_OFFSET) <= EPS
                                                for m in recorder.joints.messages[sent:]) >= 5, timeout=CONNECT_S)
                    assert request(), name
                    wait_state(client, ClientState.E_STOP if is_estop else ClientState.IDLE, CONNECT_S)
                    assert wait_for(lambda: not client.gate.engaged, timeout=CONNECT_S), name
                    assert_handled_before_the_next_tick(recorder, is_estop)
                    if is_estop:
                        assert call(estop, SetBool.Request(data=False)).success
            status = client.status()
            assert status["stop_requests"] >= 2 * len(stops)
            assert_gate_invariants(recorder)  # every command the client published
            assert robot.joints.messages and robot.twists.messages, "the robot heard the commands"
            print(f"\nstop handled in {status['last_stop_handled_ms']} ms (the last one, in-process), command "
                  f"period p99 {status['command_period_p99_ms']} ms, {status['command_deadlines_missed']} "
                  "deadlines missed")
    finally:
        print(f"flood: {flood.stop().strip() or '?'} sets of four 640x480 frames")


def test_deadman_any_message_type_gates_motion(ros_context, ipc_path):
    with ScriptedServer(f"ipc://{ipc_path}"), \
            client_and_robot(ros_context, ipc_path, deadman_topic="/teleop/deadman", deadman_timeout_ms=300.0) \
            as (client, robot):
        node = robot.node
        recorder = Recorder(client)
        set_active = node.create_client(SetBool, f"{CLIENT_NS}/set_active")
        assert set_active.wait_for_service(timeout_sec=CONNECT_S)
        response = call(set_active, SetBool.Request(data=True))
        assert not response.success and response.message == \
            "refused: no heartbeat on /teleop/deadman yet (deadman); publish heartbeats first"
        assert client.machine.state is ClientState.IDLE

        # A teleop node's heartbeat: std_msgs/Header here (any type works: it is taken from the graph).
        heartbeat = node.create_publisher(Header, "/teleop/deadman", 10)
        beating = threading.Event()
        beating.set()
        done = threading.Event()

        def beat():
            while not done.wait(0.05):
                if beating.is_set():
                    heartbeat.publish(Header(frame_id="teleop"))

        beater = threading.Thread(target=beat, daemon=True)
        beater.start()
        try:
            assert wait_for(lambda: client.status()["deadman_state"] == "fresh", timeout=CONNECT_S)
            assert client.stop_path.deadman_type == "std_msgs/msg/Header"
            assert call(set_active, SetBool.Request(data=True)).success
            wait_state(client, ClientState.ACTIVE, CONNECT_S)
            heard = len(recorder.joints.messages)
            assert wait_for(lambda: len(recorder.joints.messages) >= heard + 20, timeout=CONNECT_S)

            beating.clear()  # the operator lets go: silence
            assert wait_for(lambda: client.status()["deadman_holding"], timeout=CONNECT_S)
            status = client.status()
            assert status["state"] == "ACTIVE" and status["deadman_state"] == "silent"
            assert status["last_hold_reason"] == "deadman: no heartbeat"
            assert wait_for(lambda: not client.gate.engaged, timeout=CONNECT_S), "the hold never finished"
            quiet = len(recorder.joints.messages)
            assert wait_for(lambda: client.status()["requests_ok"] >= status["requests_ok"] + 2, timeout=CONNECT_S)
            assert len(recorder.joints.messages) == quiet, "the robot moved while the deadman was silent"
            assert np.allclose(recorder.joints.messages[-1].position, HOLD_JOINTS, atol=EPS)

            beating.set()  # heartbeats return: a fresh chunk of a new epoch, then motion
            assert wait_for(lambda: len(recorder.joints.messages) > quiet + 20, timeout=CONNECT_S)
            assert client.machine.state is ClientState.ACTIVE and not client.status()["deadman_holding"]
        finally:
            done.set()
            beater.join(2.0)
        assert_gate_invariants(recorder)


def test_heartbeat_types_resolve_from_graph_names():
    from alfie_gr00t.nodes.stop_path import message_class

    assert message_class("std_msgs/msg/Header") is Header
    assert message_class("std_msgs/msg/Bool") is Bool
    assert message_class("std_msgs/msg/NoSuchType") is None
    assert message_class("no_such_pkg/msg/Empty") is None
    assert message_class("std_srvs/srv/Trigger") is None  # a service type is no heartbeat

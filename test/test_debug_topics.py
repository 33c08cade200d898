"""The client's debug topics on real rclpy: built only while someone subscribes, and carrying exactly what
went over the wire (the JPEG bytes, the state and task a real ZeroMQ server received, the chunk it
answered), plus what the gate did per tick. The client is a real GrootClient; the server is the scripted
REP thread of support/client_harness.py (it keeps every request it received)."""

from __future__ import annotations

import time

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticStatus
from sensor_msgs.msg import CompressedImage, JointState
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory

from alfie_gr00t import layout
from alfie_gr00t.client.links import SentFrames
from alfie_gr00t.client.safety import Command, CommandKind
from alfie_gr00t.client.state_machine import ClientState
from alfie_gr00t.nodes import debug_topics
from alfie_gr00t.nodes.runner import NodeSpinner
from alfie_gr00t.wire import images, protocol
from support.ros_helpers import Collector, wait_for
from support.client_harness import CLIENT_NS, CONNECT_S, ScriptedServer, client_and_robot, wait_state

NAMES = list(layout.JOINT_NAMES)
DEBUG = f"{CLIENT_NS}/debug"


def _seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def _request_at(server, seconds: float) -> dict:
    """The request the server received for the observation captured at `seconds`."""
    found = [r for r in list(server.requests) if abs(r["timestamp"] - seconds) < 1e-6]
    assert len(found) == 1, f"{len(found)} requests captured at {seconds}"
    return found[0]


def _viewer(context):
    """A Foxglove-like subscriber of every debug topic, on a node (and executor) of its own."""
    node = rclpy.create_node("debug_viewer", context=context)
    topics = {c: Collector(node, CompressedImage, f"{DEBUG}/image/{c}") for c in layout.CAMERA_NAMES}
    topics.update(state=Collector(node, JointState, f"{DEBUG}/state"), task=Collector(node, String, f"{DEBUG}/task"),
                  chunk=Collector(node, JointTrajectory, f"{DEBUG}/chunk"),
                  scheduled=Collector(node, JointTrajectory, f"{DEBUG}/chunk_scheduled"),
                  gate=Collector(node, DiagnosticStatus, f"{DEBUG}/gate"))
    return node, topics


def _subscribers(client) -> int:
    return sum(p.get_subscription_count() for p in client.debug.publishers)


def test_debug_topics_are_built_only_while_subscribed_and_carry_what_was_sent(ros_context, ipc_path):
    with ScriptedServer(f"ipc://{ipc_path}") as server, client_and_robot(ros_context, ipc_path) as (client, robot):
        robot.activate(True)
        wait_state(client, ClientState.ACTIVE, CONNECT_S)
        assert wait_for(lambda: len(server.requests) >= 5 and len(robot.joints.messages) >= 50)
        # Nobody listens: no debug message was ever constructed (observations and ticks happened).
        assert _subscribers(client) == 0 and client.debug.builds == 0

        node, topics = _viewer(ros_context)
        spinner = NodeSpinner([node], ros_context).start()
        try:
            assert wait_for(lambda: _subscribers(client) == len(client.debug.publishers), timeout=CONNECT_S)
            assert wait_for(lambda: all(len(t.messages) >= 3 for t in topics.values()), timeout=CONNECT_S), \
                {k: len(t.messages) for k, t in topics.items()}
            for camera in layout.CAMERA_NAMES:
                for msg in topics[camera].messages[:3]:
                    request = _request_at(server, _seconds(msg.header.stamp))
                    assert msg.format == "jpeg" and msg.header.frame_id == camera
                    assert bytes(msg.data) == request["images"][camera]  # the exact bytes sent
                    assert images.jpeg_dimensions(bytes(msg.data)) == (64, 56)
            for msg in topics["state"].messages[:3]:
                request = _request_at(server, _seconds(msg.header.stamp))
                assert list(msg.name) == NAMES
                np.testing.assert_array_equal(np.asarray(msg.position), np.asarray(request["state"]))
            assert {m.data for m in topics["task"].messages} == set(server.languages)
            hz = client.config.action_step_hz
            for msg in topics["chunk"].messages[:3]:
                request = _request_at(server, _seconds(msg.header.stamp))
                reply = protocol.parse_action_response(server._reply(request), 16, 21).actions
                assert list(msg.joint_names) == NAMES and len(msg.points) == 16
                np.testing.assert_array_equal(np.array([p.positions for p in msg.points]), reply)
                assert [_seconds(p.time_from_start) for p in msg.points] == \
                    [_seconds(debug_topics.duration(k / hz)) for k in range(16)]
            chunks = {_seconds(m.header.stamp): np.array([p.positions for p in m.points])
                      for m in topics["chunk"].messages}
            for msg in topics["scheduled"].messages[:3]:
                kept = np.array([p.positions for p in msg.points])
                assert 1 <= len(kept) <= 16
                # the tail of one of the raw chunks, starting no earlier than its capture
                matches = [t for t, c in chunks.items() if np.array_equal(c[16 - len(kept):], kept)]
                assert matches and _seconds(msg.header.stamp) >= min(matches) - 1e-6
            gates = topics["gate"].messages
            assert all(g.name == "groot_client/gate" for g in gates)
            assert {dict((v.key, v.value) for v in g.values)["kind"] for g in gates} <= {"policy", "hold", "none"}
        finally:
            spinner.stop()
            node.destroy_node()
        # Unsubscribed again: building stops.
        assert wait_for(lambda: _subscribers(client) == 0, timeout=CONNECT_S)
        time.sleep(0.3)  # a build that had already checked the count may still finish
        built = client.debug.builds
        requests = len(server.requests)
        assert wait_for(lambda: len(server.requests) >= requests + 3)
        assert client.debug.builds == built, "debug messages built with nobody subscribed"


def test_gate_topic_names_the_joints_limited_during_the_activation_ramp(ros_context, ipc_path):
    """The scripted policy puts every joint 0.05 rad from where the robot stands; the gate lets a joint move
    1.5 rad/s x 10 ms per tick, so the first policy ticks are limited (WARN, joints named); then the
    policy's steps pass unchanged (OK); activate:false is a hold with its reason."""
    with ScriptedServer(f"ipc://{ipc_path}"), client_and_robot(ros_context, ipc_path) as (client, robot):
        gate = Collector(robot.node, DiagnosticStatus, f"{DEBUG}/gate")
        assert wait_for(lambda: client.debug.gate.get_subscription_count() == 1, timeout=CONNECT_S)
        robot.activate(True)
        wait_state(client, ClientState.ACTIVE, CONNECT_S)

        def values(msg):
            return dict((v.key, v.value) for v in msg.values)

        def policy():
            return [m for m in list(gate.messages) if values(m)["kind"] == "policy"]

        # After the ramp only head_roll stays limited: the robot stands at 0.05, the policy asks 0.05 + 0.05,
        # a hair above its 0.1 upper limit in floating point, and the gate keeps it at the limit.
        assert wait_for(lambda: any(values(m)["limited"] == "head_roll" for m in policy()), timeout=CONNECT_S)
        first = policy()[0]
        assert first.level == DiagnosticStatus.WARN
        limited = values(first)["limited"].split(",")
        assert "left_shoulder_pitch" in limited and "head_yaw" in limited and "base_linear_x" in limited, limited
        assert set(limited) <= set(NAMES)
        assert all(m.level == DiagnosticStatus.WARN for m in policy() if values(m)["limited"])
        before = len(gate.messages)
        robot.activate(False)
        wait_state(client, ClientState.IDLE, CONNECT_S)
        assert wait_for(lambda: any(values(m)["kind"] == "hold" for m in gate.messages[before:]), timeout=5.0)
        hold = next(m for m in gate.messages[before:] if values(m)["kind"] == "hold")
        assert hold.level == DiagnosticStatus.WARN and hold.message == "activate:false"


def test_builders_stamp_and_encode_as_the_contract_says():
    frames = SentFrames("rgb8", 4, 2, {"left_wide": np.arange(24, dtype=np.uint8).reshape(2, 4, 3)})
    image = debug_topics.image_message("left_wide", frames, 12.5)
    assert image.format == "rgb8; raw 4x2" and bytes(image.data) == bytes(range(24))
    assert (image.header.stamp.sec, image.header.stamp.nanosec) == (12, 500_000_000)
    jpeg = SentFrames("jpeg", 4, 2, {"left_wide": b"\xff\xd8abc"})
    assert bytes(debug_topics.image_message("left_wide", jpeg, 0.0).data) == b"\xff\xd8abc"
    steps = np.arange(3 * 21, dtype=np.float64).reshape(3, 21)
    traj = debug_topics.chunk_message(NAMES, steps, 3.0, 15.0)
    assert [list(p.positions) for p in traj.points] == steps.tolist()
    assert traj.points[2].time_from_start.nanosec == round(2 / 15 * 1e9)
    target = np.zeros(21)
    vector = target.copy()
    vector[7] = 0.01
    status = debug_topics.gate_message(NAMES, target, Command(CommandKind.POLICY, vector, True))
    assert status.level == DiagnosticStatus.WARN and status.values[1].value == NAMES[7]
    status = debug_topics.gate_message(NAMES, target, Command(CommandKind.POLICY, target.copy(), True))
    assert status.level == DiagnosticStatus.OK and status.values[1].value == ""
    stop = debug_topics.gate_message(NAMES, None, Command(CommandKind.STOP, target, True, "estop"))
    assert (stop.level, stop.message, stop.values[0].value) == (DiagnosticStatus.WARN, "estop", "stop")

"""The defects a real robot driver exposed, each reproduced against the real client node on real rclpy
topics (and real groot_server processes): joints missing by name, NaN readings, a stalled state
topic, a start outside the limits, an unexpected worker exception, a late reply, the hold mock.
Every JointState the client published is checked against the gate's invariants."""

from __future__ import annotations

import signal
import threading
import time

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

from alfie_gr00t.client.state_machine import ClientState

from support.client_harness import (ARM_HEAD_NAMES, CONNECT_S, ERROR_BOUND_S, POSTURE, ScriptedServer,
                                  assert_quiet, client_and_robot, is_zero_twist, start_server, stop_server,
                                  wait_serving, wait_state)
from alfie_gr00t.nodes.runner import NodeSpinner
from support.gate_checks import EPS, JOINT_STEP, assert_gate_invariants, joint_array, twist_array
from support.ros_helpers import Collector, start_node_process, wait_for

def test_joints_missing_by_name_refuse_activation_and_are_named(ros_context, ipc_path):
    def renamed(robot):  # a driver that calls the head joints head_*_joint
        robot.joint_names = [n + "_joint" if n.startswith("head_") else n for n in ARM_HEAD_NAMES]

    with ScriptedServer(f"ipc://{ipc_path}") as server, \
            client_and_robot(ros_context, ipc_path, robot_setup=renamed) as (client, robot):
        diagnostics = Collector(robot.node, DiagnosticArray, "/diagnostics")
        assert wait_for(lambda: client.measured.reading().missing() == ["head_yaw", "head_pitch", "head_roll"],
                        timeout=CONNECT_S), client.measured.reading().missing()
        robot.activate(True)
        wait_state(client, ClientState.ERROR, 5.0)
        time.sleep(0.3)
        status = client.status()
        assert status["missing_joints"] == ["head_yaw", "head_pitch", "head_roll"]
        assert "never measured: head_yaw, head_pitch, head_roll" in status["activation_error"]
        assert "head_yaw_joint" in status["unknown_joint_names"]
        assert robot.joints.messages == [] and server.requests == [], "the robot moved on assumed zeros"
        statuses = wait_for(lambda: [s for s in robot.status.json() if s["missing_joints"]], timeout=3.0)
        assert statuses and statuses[-1]["state"] == "ERROR"
        # the same on /diagnostics, where rqt_robot_monitor and Foxglove look: ERROR, joints named
        reports = wait_for(lambda: [s for m in diagnostics.messages for s in m.status
                                    if s.name.endswith("groot_client") and "head_pitch" in s.message], timeout=3.0)
        assert reports and reports[-1].level == DiagnosticStatus.ERROR


def test_nan_joint_while_active_and_in_estop_never_reaches_a_command(ros_context, ipc_path):
    with ScriptedServer(f"ipc://{ipc_path}") as server, client_and_robot(ros_context, ipc_path) as (client, robot):
        robot.activate(True)
        wait_state(client, ClientState.ACTIVE, CONNECT_S)
        assert wait_for(lambda: len(robot.joints.messages) >= 30)
        posture = list(POSTURE)
        posture[5] = float("nan")  # the left gripper reads NaN
        robot.posture = posture
        assert wait_for(lambda: client.status()["invalid_joints"] == ["left_gripper"], timeout=5.0)
        requests = len(server.requests)
        time.sleep(0.5)
        assert len(server.requests) <= requests + 1, "requests were sent with a NaN state"
        assert "left_gripper" in " ".join(client.worker.stale_inputs)
        robot.estop(True)
        wait_state(client, ClientState.E_STOP, 5.0)
        assert_quiet(robot, 0.3)
        assert is_zero_twist(robot.twists.messages[-1])
        assert_gate_invariants(robot)


def test_stalled_state_topic_during_a_moving_chunk_holds_the_last_command(ros_context, ipc_path):
    # The policy moves every joint 0.05 rad away from the (never moving) test robot's posture.
    with ScriptedServer(f"ipc://{ipc_path}") as server, client_and_robot(ros_context, ipc_path) as (client, robot):
        robot.activate(True)
        wait_state(client, ClientState.ACTIVE, CONNECT_S)
        assert wait_for(lambda: len(robot.joints.messages) >= 50)
        robot.publish_state = False  # the driver stalls
        assert_quiet(robot, 0.3)  # stale inputs: no requests, the queue runs dry, a hold, silence
        last = np.asarray(robot.joints.messages[-1].position)
        np.testing.assert_allclose(last, np.asarray(POSTURE) + 0.05, atol=1e-6)  # the last command, not stale
        assert client.status()["stale_joints"], client.status()
        assert_gate_invariants(robot)


def test_start_outside_the_limits_never_jumps_to_the_limit(ros_context, ipc_path):
    """Head pitch measured at 0.3 (limit 0.2); the policy asks for 0.35 (inside the reject margin).
    The old client commanded 0.2 in one tick; the gate keeps it where it is, never further out.
    (Moving back at the velocity limit when the policy asks for less: test_safety.py.)"""
    posture = list(POSTURE)
    posture[13] = 0.3

    def outside(robot):
        robot.posture = posture

    with ScriptedServer(f"ipc://{ipc_path}") as server, \
            client_and_robot(ros_context, ipc_path, robot_setup=outside) as (client, robot):
        assert wait_for(lambda: client.measured.reading().missing() == [], timeout=CONNECT_S)
        robot.activate(True)
        wait_state(client, ClientState.ACTIVE, CONNECT_S)
        assert wait_for(lambda: len(robot.joints.messages) >= 40)
        pitch = joint_array(robot.joints.messages)[:, 13]
        assert abs(pitch[0] - 0.3) <= JOINT_STEP[13] + EPS, f"first head pitch command {pitch[0]}"
        assert np.all(np.diff(pitch) <= EPS), "head pitch moved further out"
        assert_gate_invariants(robot, measured_start=np.asarray(posture))


def test_unexpected_exception_in_the_worker_is_a_failure_and_reactivation_works(ros_context, ipc_path):
    with ScriptedServer(f"ipc://{ipc_path}") as server, client_and_robot(ros_context, ipc_path) as (client, robot):
        decoder = client.worker._frame_decoder

        def broken(data):  # like cv_bridge meeting a 16UC1 frame: not one of the expected error types
            raise KeyError("16UC1")

        client.worker._frame_decoder = broken
        robot.activate(True)
        wait_state(client, ClientState.ERROR, ERROR_BOUND_S)
        status = client.status()
        assert status["requests_failed"] >= 3 and "KeyError" in status["last_error"]
        assert client.worker._thread.is_alive()
        client.worker._frame_decoder = decoder
        robot.activate(True)
        wait_state(client, ClientState.ACTIVE, CONNECT_S)
        assert wait_for(lambda: len(robot.joints.messages) >= 10)


def test_a_policy_slower_than_its_chunk_is_not_late_it_runs_synchronously(ros_context, ipc_path):
    """16 steps at 15 Hz last 1.07 s; the engine takes 1.2 s. The robot held still while it waited, so
    nothing of the reply had been executed: it plays from step 0 (docs/design.md#the-plan-clock), the client stays ACTIVE and
    says the policy is too slow. (Before, every such reply was refused as late and the client went to ERROR.)"""
    with ScriptedServer(f"ipc://{ipc_path}", delay_s=1.2), \
            client_and_robot(ros_context, ipc_path, inference_timeout_ms=10000, max_consecutive_failures=2) \
            as (client, robot):
        robot.activate(True)
        wait_state(client, ClientState.ACTIVE, 15.0)
        assert wait_for(lambda: client.status()["requests_ok"] >= 3, 15.0)
        status = client.status()
        assert client.machine.state is ClientState.ACTIVE
        assert status["requests_late"] == 0 and status["requests_failed"] == 0
        assert status["latency_budget"] == "too_slow"
        assert robot.joints.messages
        assert_gate_invariants(robot)


def test_hold_mock_holds_the_joints_where_they_are(ros_context, ipc_path):
    server = start_server(ipc_path, mock_policy="hold")
    try:
        with client_and_robot(ros_context, ipc_path) as (client, robot):
            wait_serving(ipc_path, server)
            robot.activate(True)
            wait_state(client, ClientState.ACTIVE, CONNECT_S)
            assert wait_for(lambda: len(robot.joints.messages) >= 100)
            joints = joint_array(robot.joints.messages)
            np.testing.assert_allclose(joints, np.tile(POSTURE, (len(joints), 1)), atol=1e-6)  # never toward 0
            twists = twist_array(robot.twists.messages)
            assert np.all(np.abs(twists) <= np.abs(np.array([0.1, 0, 0, 0, 0, 0.2])) + EPS)  # decaying velocity
    finally:
        stop_server(server)


def test_default_client_stays_active_without_holds_at_250_ms(ros_context, ipc_path):
    """A real server at Orin-like latency (250 +- 50 ms) and every client parameter at its default."""
    server = start_server(ipc_path, mock_delay_ms=250.0, mock_jitter_ms=50.0)
    try:
        with client_and_robot(ros_context, ipc_path, inference_timeout_ms=2000, max_consecutive_failures=5) \
                as (client, robot):
            wait_serving(ipc_path, server)
            robot.activate(True)
            wait_state(client, ClientState.ACTIVE, CONNECT_S)
            holds_before = client.gate.holds_started
            start = len(robot.joints.messages)
            time.sleep(10.0)
            status = client.status()
            sent = len(robot.joints.messages) - start
            print(f"\n250 +- 50 ms engine, default client: {sent} commands in 10 s, {status['requests_ok']} chunks, "
                  f"latency p95 {status['latency_p95_ms']} ms, timeout {status['request_timeout_ms']} ms, "
                  f"holds {client.gate.holds_started - holds_before}")
            assert client.machine.state is ClientState.ACTIVE
            assert status["requests_failed"] == 0, status["last_error"]
            assert client.gate.holds_started == holds_before, f"held at: {client.gate.last_hold_reason}"
            assert sent > 500  # ~1000 at 100 Hz; a loose bound against long silences
            assert status["latency_budget"] == "ok"
            assert_gate_invariants(robot)
    finally:
        stop_server(server)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_while_active_stops_the_base_and_exits_cleanly(ros_context, ipc_path, signum):
    """A real groot_client process, ACTIVE and driving the base; Ctrl-C / SIGTERM (and a second signal
    during cleanup): a zero twist arrives, the process exits 0 without a traceback."""
    from support.client_harness import Robot

    domain = ros_context.get_domain_id()
    with ScriptedServer(f"ipc://{ipc_path}"):
        robot = Robot(ros_context)
        proc = start_node_process("groot_client", domain, {
            "ipc_path": ipc_path, "image_width": 64, "image_height": 56, "encode_threads": 1})
        try:
            with NodeSpinner([robot.node], ros_context):
                robot.start()
                try:
                    assert wait_for(lambda: robot.activate_pub.get_subscription_count() >= 1
                                    and robot.node.count_publishers("/groot_client/cmd_vel") >= 1, timeout=CONNECT_S)
                    time.sleep(0.5)
                    robot.activate(True)
                    moving = lambda: any(not is_zero_twist(t) for t in robot.twists.messages)  # noqa: E731
                    assert wait_for(moving, timeout=CONNECT_S), "the client never drove the base"
                    proc.send_signal(signum)
                    time.sleep(0.05)
                    proc.send_signal(signum)  # impatient user: a second signal during cleanup
                    out, _ = proc.communicate(timeout=15)
                    time.sleep(0.3)
                finally:
                    robot.stop()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=5)
            robot.node.destroy_node()
    assert proc.returncode == 0, out
    assert "Traceback" not in out and "context is invalid" not in out, out
    assert is_zero_twist(robot.twists.messages[-1]), "the base was left driving"


def test_estop_latched_before_the_client_started_is_honoured(ros_context, ipc_path):
    """A safety supervisor latched estop:true (transient local) before the client came up: the client
    fetches it (its transient-local subscription exists while a latched publisher does) and stays put."""
    from support.client_harness import Robot, make_client

    robot = Robot(ros_context)
    robot.estop(True)  # latched, nobody listening yet
    client = make_client(ros_context, ipc_path)
    try:
        with NodeSpinner([client, robot.node], ros_context):
            assert wait_for(lambda: client.machine.state is ClientState.E_STOP, timeout=CONNECT_S), \
                client.machine.state
            robot.activate(True)
            time.sleep(0.3)
            assert client.machine.state is ClientState.E_STOP
            assert client.stop_path.latched_estop is not None
    finally:
        client.close()
        client.destroy_node()
        robot.node.destroy_node()


def test_sim_time_plays_and_a_clock_jump_back_stops_softly(ros_context, ipc_path):
    """use_sim_time: the client runs on /clock (a simulator at real speed, starting at t = 1000 s), then
    /clock jumps back 60 s (a bag replay looping): ERROR with the reason, and the base ramps to zero."""
    from rclpy.parameter import Parameter
    from rosgraph_msgs.msg import Clock

    from support.client_harness import Robot, make_client

    robot = Robot(ros_context)
    clock_pub = robot.node.create_publisher(Clock, "/clock", 10)
    offset = [1000.0 - time.monotonic()]
    stop = threading.Event()

    def tick_clock():
        while not stop.is_set():
            t = time.monotonic() + offset[0]
            clock_pub.publish(Clock(clock=Time(sec=int(t), nanosec=int((t % 1.0) * 1e9))))
            stop.wait(0.005)

    clock_thread = threading.Thread(target=tick_clock, daemon=True)
    with ScriptedServer(f"ipc://{ipc_path}"):
        client = make_client(ros_context, ipc_path)
        client.set_parameters([Parameter("use_sim_time", value=True)])
        try:
            with NodeSpinner([client, robot.node], ros_context):
                clock_thread.start()
                robot.start()
                assert wait_for(lambda: 990.0 < client.now() < 1100.0, timeout=CONNECT_S), client.now()
                # fresh on the sim clock: samples received before /clock took over are from another time line
                max_age = client.config.max_observation_age_ms / 1000.0
                assert wait_for(lambda: not client.measured.reading().problems(client.now(), max_age),
                                timeout=CONNECT_S)
                # the command topics live on the client's stop node (a participant of its own): matched too
                assert wait_for(lambda: robot.activate_pub.get_subscription_count() >= 1, timeout=CONNECT_S)
                robot.activate(True)
                wait_state(client, ClientState.ACTIVE, CONNECT_S)
                assert wait_for(lambda: len(robot.joints.messages) >= 30, timeout=CONNECT_S)
                offset[0] -= 60.0  # the bag loops: /clock jumps back a minute
                wait_state(client, ClientState.ERROR, 5.0)
                assert "jumped back" in client.status()["last_error"]
                assert wait_for(lambda: robot.twists.messages and is_zero_twist(robot.twists.messages[-1]),
                                timeout=5.0)
                assert_gate_invariants(robot)
        finally:
            stop.set()
            robot.stop()
            client.close()
            client.destroy_node()
            robot.node.destroy_node()

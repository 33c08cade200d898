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

import os
import signal
import time

import numpy as np
from std_msgs.msg import Bool, String

from alfie_gr00t import layout
from alfie_gr00t.client.state_machine import ClientState
from alfie_gr00t.wire.transport import ipc_path_is_live

from support.client_harness import (CLIENT_NS, CONNECT_S, ERROR_BOUND_S, LOWER, UPPER, ScriptedServer, assert_quiet,
                                    assert_within_limits, client_and_robot, is_hold, is_zero_twist, start_server,
                                    stop_server, wait_serving, wait_state)
from support.ros_helpers import wait_for

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

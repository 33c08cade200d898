"""A policy slower than its chunk runs synchronously (docs/design.md#when-the-policy-is-too-slow): real client node, real groot_server.

The server's mock engine takes 2.5 s per chunk (a CPU policy), the chunk lasts 16 / 15 Hz = 1.07 s,
and every client parameter that matters here is at its default. The client must go ACTIVE, play
each chunk from (about) step 0, hold while the next one is computed, report `too_slow` with both
numbers, warn on /diagnostics and never reach ERROR. Before plan-time alignment every reply was
refused as "late" (or timed out at the old 2 s cap) and the client went to ERROR.
"""

from __future__ import annotations

import time

from alfie_gr00t.client.config import ClientConfig
from alfie_gr00t.client.state_machine import ClientState
from alfie_gr00t.nodes.diagnostics import WARN, ClientDiagnostics

from support.client_harness import (CONNECT_S, ScriptedServer, client_and_robot, start_server, stop_server,
                                  wait_serving, wait_state)
from support.gate_checks import assert_gate_invariants
from support.ros_helpers import wait_for

DEFAULTS = ClientConfig()
DELAY_MS = 2500.0
CHUNKS = 3  # ~2.5 s to the first, then one per ~3.5 s: about 10 s of the test's ~15 s


def test_policy_slower_than_its_chunk_stays_active_and_runs_execute_hold_execute(ros_context, ipc_path):
    server = start_server(ipc_path, mock_delay_ms=DELAY_MS)
    try:
        with client_and_robot(ros_context, ipc_path, inference_timeout_ms=DEFAULTS.inference_timeout_ms,
                              max_consecutive_failures=DEFAULTS.max_consecutive_failures) as (client, robot):
            wait_serving(ipc_path, server)
            states = []
            robot.activate(True)
            wait_state(client, ClientState.ACTIVE, CONNECT_S)  # the first 2.5 s reply was not timed out

            def enough():
                states.append(client.machine.state)
                return client.scheduler.chunks_received >= CHUNKS
            assert wait_for(enough, timeout=CHUNKS * 4.0), client.status()
            time.sleep(0.5)  # into the hold after the last chunk
            status = client.status()
            states.append(client.machine.state)
            print(f"\n{DELAY_MS:.0f} ms engine, default client: {status['chunks_received']} chunks, "
                  f"{status['commands_published']} policy commands, {status['holds_published']} holds, "
                  f"expected latency {status['expected_latency_ms']} ms, chunk {status['chunk_duration_ms']} ms, "
                  f"timeout {status['request_timeout_ms']} ms, steps skipped {client.scheduler.steps_dropped_total}")
            assert set(states) == {ClientState.ACTIVE}, states
            assert status["requests_failed"] == 0 and status["requests_late"] == 0, status["last_error"]
            assert status["latency_budget"] == "too_slow"
            assert status["expected_latency_ms"] >= DELAY_MS
            assert status["chunk_duration_ms"] == round(16 / 15 * 1000, 1)
            assert str(round(status["expected_latency_ms"])) in status["policy_too_slow"]
            assert status["request_timeout_ms"] > 2 * DELAY_MS  # follows the measured latency
            # Synchronous: each chunk plays from (about) step 0: the request leaves with at most the
            # 60 ms margin left, plus the state's age, so at most one step per chunk was executed.
            assert client.scheduler.steps_dropped_total <= status["chunks_received"]
            assert client.scheduler.chunks_stale == 0
            # Execute, hold, execute: a gate hold between chunks, policy commands after it.
            assert status["holds_published"] >= CHUNKS - 1
            assert status["commands_published"] >= (CHUNKS - 1) * 90  # ~107 ticks per chunk at 100 Hz
            diagnostic = ClientDiagnostics("groot_client")(status)
            assert diagnostic.level == WARN and "too slow" in diagnostic.message, diagnostic.message
            assert str(round(status["chunk_duration_ms"])) in diagnostic.message
            assert_gate_invariants(robot)  # every published command, holds included
    finally:
        stop_server(server)


def test_a_server_that_answers_nothing_still_reaches_error_within_the_bound(ros_context, ipc_path):
    """Nothing listens on the path: the first contact's pings (1 s each) go unanswered; after
    max_consecutive_failures of them the client is in ERROR, well before one 10 s cap would pass."""
    with client_and_robot(ros_context, ipc_path, inference_timeout_ms=DEFAULTS.inference_timeout_ms,
                          max_consecutive_failures=3) as (client, robot):
        robot.activate(True)
        took = wait_state(client, ClientState.ERROR, 3 * 1.0 + 5.0)
        status = client.status()
        print(f"\nsilent server: ERROR after {took:.2f} s, last error {status['last_error']!r}")
        assert status["requests_failed"] == 3 and "ping" in status["last_error"]
        assert client.worker.pings_ok == 0
        assert robot.policy_commands() == []
        assert_gate_invariants(robot)


def test_a_server_that_answers_pings_but_no_chunk_reaches_error(ros_context, ipc_path):
    """Alive but stuck in inference: one cap-long wait, then short pings stuck behind it."""
    with ScriptedServer(f"ipc://{ipc_path}", delay_s=3.0) as server, \
            client_and_robot(ros_context, ipc_path, inference_timeout_ms=1500, max_consecutive_failures=3) \
            as (client, robot):
        robot.activate(True)
        took = wait_state(client, ClientState.ERROR, 1.5 + 2 * 1.5 + 5.0)
        status = client.status()
        print(f"\nstuck server: ERROR after {took:.2f} s, {server.pings} pings, last error {status['last_error']!r}")
        assert server.pings >= 1 and status["requests_ok"] == 0
        assert robot.policy_commands() == []
        assert_gate_invariants(robot)

"""/diagnostics. Builders (levels, names, key-values) as unit tests; the server
node's DiagnosticArray on real rclpy: OK while serving, WARN on refused requests, ERROR
when the engine fails."""

import msgpack
import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

from alfie_gr00t.nodes import diagnostics
from alfie_gr00t.wire import protocol
from alfie_gr00t.nodes.diagnostics import (ERROR, OK, WARN, ClientDiagnostics, ServerDiagnostics, client_diagnostics,
                                     server_diagnostics, to_diagnostic_array)
from alfie_gr00t.nodes.groot_server import GrootServer
from alfie_gr00t.nodes.runner import NodeSpinner
from alfie_gr00t.wire.transport import ReqClient

from support.ros_helpers import Collector, params, wait_for

SERVER = {"total_requests": 12, "average_inference_ms": 1.5, "last_inference_ms": 1.4, "mock_mode": True,
          "tensorrt": False, "bind_address": "ipc:///tmp/g.sock", "engine": "mock", "request_p50_ms": 2.0,
          "request_p95_ms": 3.0, "errors": 0, "last_error": "", "uptime_s": 4.0,
          "stages_ms": {"decode": {"p50": 1.0, "p95": 1.2, "mean": 1.05}}}
CLIENT = {"state": "ACTIVE", "server_address": "ipc:///tmp/g.sock", "requests_ok": 40, "requests_failed": 0,
          "round_trip_p50_ms": 2.5, "round_trip_p95_ms": 4.0, "queue_depth_steps": 9.5, "stale_inputs": [],
          "consecutive_failures": 0, "last_error": "", "holds_published": 0, "safety_rejected_nonfinite": 0,
          "chunks_rejected": 0, "commands_published": 900}


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


# -- server builder -----------------------------------------------------------------------------

def test_server_ok_names_and_values():
    d = server_diagnostics(SERVER, "groot_server")
    assert d.level == OK and d.name == "alfie_gr00t: groot_server" and d.hardware_id == "ipc:///tmp/g.sock"
    values = dict(d.values)
    assert values["total_requests"] == "12" and values["engine"] == "mock" and values["mock_mode"] == "true"
    assert values["request_p95_ms"] == "3" and values["stages_ms.decode.p95"] == "1.2"
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in d.values)
    assert "serving" in d.message


def test_server_levels():
    assert server_diagnostics({**SERVER, "errors": 3, "last_error": "bad jpeg"}).level == OK  # old errors
    recent = server_diagnostics({**SERVER, "errors": 3, "last_error": "bad jpeg"}, recent={"errors": 2})
    assert recent.level == WARN and "bad jpeg" in recent.message and dict(recent.values)["recent_errors"] == "2"
    slow = server_diagnostics({**SERVER, "request_p95_ms": 1500.0})
    assert slow.level == WARN and "p95" in slow.message
    assert server_diagnostics({**SERVER, "request_p95_ms": 400.0}, latency_warn_ms=300).level == WARN
    engine = server_diagnostics({**SERVER, "errors": 1, "last_error": "Model inference failed: RuntimeError: x"},
                                recent={"errors": 1})
    assert engine.level == ERROR and "engine 'mock' failed" in engine.message
    assert server_diagnostics({**SERVER, "serving": False}).level == ERROR


def test_server_history_counts_only_recent_errors():
    clock = FakeClock()
    builder = ServerDiagnostics("groot_server")
    builder.history.clock = clock
    assert builder({**SERVER, "errors": 5}).level == OK  # errors before we started watching are not "recent"
    clock.now += 1
    assert builder({**SERVER, "errors": 6, "last_error": "unauthorized"}).level == WARN
    clock.now += diagnostics.RECENT_WINDOW_S + 1
    builder({**SERVER, "errors": 6})
    clock.now += 1
    assert builder({**SERVER, "errors": 6}).level == OK


def test_missing_keys_are_tolerated():
    assert server_diagnostics({}).level == OK
    assert client_diagnostics({}).level == WARN  # unknown state
    assert client_diagnostics({"state": "IDLE"}).level == OK


# -- client builder -----------------------------------------------------------------------------

@pytest.mark.parametrize("status, level, fragment", [
    ({}, OK, "ACTIVE"),
    ({"state": "IDLE"}, OK, "IDLE"),
    ({"state": "CONNECTING", "state_age_s": 1.0}, OK, "CONNECTING"),
    ({"state": "CONNECTING", "state_age_s": 12.0}, WARN, "CONNECTING for 12 s"),
    ({"state": "ERROR", "last_error": "timeout"}, ERROR, "timeout"),
    ({"state": "E_STOP"}, WARN, "E_STOP latched"),
    ({"stale_inputs": ["left_wide"]}, WARN, "stale inputs: left_wide"),
    ({"policy_too_slow": True}, WARN, "policy too slow"),
    ({"missing_joints": ["head_roll"]}, WARN, "missing from the robot's state: head_roll"),
    ({"invalid_joints": ["left_gripper"]}, WARN, "invalid joint values: left_gripper"),
    ({"consecutive_failures": 2, "last_error": "timeout"}, WARN, "2 consecutive request failures"),
    ({"state": "IDLE", "stale_inputs": ["left_wide"]}, OK, "IDLE"),  # not sending: stale is expected
])
def test_client_levels(status, level, fragment):
    d = client_diagnostics({**CLIENT, **status}, "groot_client")
    assert d.level == level, d.message
    assert fragment in d.message
    assert d.name == "alfie_gr00t: groot_client" and d.hardware_id == "ipc:///tmp/g.sock"


def test_client_recent_counters():
    assert client_diagnostics(CLIENT, recent={"holds_published": 1}).level == WARN
    assert client_diagnostics({**CLIENT, "state": "IDLE"}, recent={"holds_published": 1}).level == OK
    assert client_diagnostics(CLIENT, recent={"safety_rejected_nonfinite": 3}).level == WARN
    assert client_diagnostics(CLIENT, recent={"chunks_rejected": 1}).level == WARN


def test_client_history_measures_time_in_state_and_holds():
    clock = FakeClock()
    builder = ClientDiagnostics("groot_client")
    builder.history.clock = clock
    assert builder({**CLIENT, "state": "CONNECTING"}).level == OK
    clock.now += diagnostics.CONNECTING_WARN_S + 1
    late = builder({**CLIENT, "state": "CONNECTING"})
    assert late.level == WARN and dict(late.values)["state_age_s"] == "6"
    assert builder({**CLIENT, "state": "ACTIVE"}).level == OK
    clock.now += 1
    assert builder({**CLIENT, "holds_published": 1}).level == WARN


def test_diagnostic_array_message():
    array = to_diagnostic_array([server_diagnostics(SERVER), client_diagnostics({**CLIENT, "state": "ERROR"})])
    assert isinstance(array, DiagnosticArray) and len(array.status) == 2
    server, client = array.status
    assert server.level == DiagnosticStatus.OK and client.level == DiagnosticStatus.ERROR
    assert server.name == "alfie_gr00t: groot_server" and server.hardware_id == "ipc:///tmp/g.sock"
    assert {kv.key: kv.value for kv in server.values}["engine"] == "mock"


# -- the server node on real rclpy ----------------------------------------------------------------

def _ours(collector):
    return [s for m in collector.messages for s in m.status if s.name == "alfie_gr00t: groot_server"]


def test_server_node_publishes_diagnostics(ros_context, ipc_path, jpeg_images):
    server = GrootServer(context=ros_context, parameter_overrides=params(mock_mode=True, ipc_path=ipc_path,
                                                                        warmup_runs=0))
    server.start()
    listener = rclpy.create_node("diag_listener", context=ros_context)
    diag = Collector(listener, DiagnosticArray, "/diagnostics")
    client = ReqClient(f"ipc://{ipc_path}", timeout_ms=5000)
    try:
        with NodeSpinner([server, listener], ros_context):
            reply = protocol.parse_action_response(
                client.request(protocol.encode_observation(1.0, 1, jpeg_images, [0.1] * 21, "pick")), 16, 21)
            assert reply.actions.shape == (16, 21)
            ok = wait_for(lambda: [s for s in _ours(diag) if {kv.key: kv.value for kv in s.values}
                                   .get("total_requests") == "1"], timeout=5)
            assert ok, "no diagnostics with the request counted"
            status = ok[-1]
            values = {kv.key: kv.value for kv in status.values}
            assert status.level == DiagnosticStatus.OK and status.hardware_id == f"ipc://{ipc_path}"
            assert values["engine"] == "mock" and values["serving"] == "true" and "request_p95_ms" in values

            count = len(diag.messages)
            client.request(b"not msgpack")  # refused: an error reply, the server keeps serving
            warn = wait_for(lambda: [s for s in _ours(diag)[count:] if s.level == DiagnosticStatus.WARN], timeout=5)
            assert warn and "request error" in warn[-1].message

            def broken(batch):
                raise RuntimeError("CUDA out of memory")

            server.service.engine.infer = broken
            count = len(diag.messages)
            failed = client.request(protocol.encode_observation(2.0, 2, jpeg_images, [0.1] * 21, "pick"))
            assert msgpack.unpackb(failed)["status"] == "error"
            error = wait_for(lambda: [s for s in _ours(diag)[count:] if s.level == DiagnosticStatus.ERROR], timeout=5)
            assert error and "CUDA out of memory" in error[-1].message
    finally:
        client.close()
        server.close()
        server.destroy_node()
        listener.destroy_node()


def test_node_status_json_is_unchanged_by_diagnostics(ros_context, ipc_path):
    """`~/status` stays the seed's JSON; the `serving` flag exists only on /diagnostics."""
    server = GrootServer(context=ros_context, parameter_overrides=params(mock_mode=True, ipc_path=ipc_path,
                                                                        warmup_runs=0))
    server.start()
    try:
        assert "serving" not in server.service.status()
        assert server.diagnostic_status()["serving"] is True
        assert np.isfinite(server.service.status()["uptime_s"])
    finally:
        server.close()
        server.destroy_node()


# -- quiet, honest shutdown --------------------------------------------------------------------

@pytest.mark.parametrize("serve", [False, True])
def test_server_process_shuts_down_quietly(ipc_dir, jpeg_images, serve):
    """SIGINT: no rosout errors after the context is gone; a profile table only when requests ran."""
    import os
    import signal

    from support.ros_helpers import next_domain_id
    from support.ros_helpers import start_node_process

    path = os.path.join(ipc_dir, "quiet.sock")
    proc = start_node_process("groot_server", next_domain_id(), {"mock_mode": True, "ipc_path": path,
                                                                  "warmup_runs": 0})
    try:
        assert wait_for(lambda: os.path.exists(path) or proc.poll() is not None, timeout=20) and proc.poll() is None
        if serve:
            client = ReqClient(f"ipc://{path}", timeout_ms=5000)
            client.request(protocol.encode_observation(1.0, 1, jpeg_images, [0.1] * 21, "pick"))
            client.close()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out
    assert "Failed to publish log message to rosout" not in out and "context is invalid" not in out, out
    assert ("server profile" in out) == serve, out
    if serve:
        assert "served 1 requests" in out and "decode" in out
    assert not os.path.exists(path)

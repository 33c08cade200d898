"""groot_server as a real rclpy node and as a real process."""

import os
import signal

import numpy as np
import pytest
import rclpy
from std_msgs.msg import String

from alfie_gr00t.wire import protocol
from alfie_gr00t.nodes.groot_server import GrootServer
from alfie_gr00t.nodes.runner import NodeSpinner
from alfie_gr00t.wire.transport import ReqClient, RequestTimeout

from support.frames import hold_chunk

from support.ros_helpers import next_domain_id
from support.ros_helpers import Collector, params, start_node_process, wait_for


def test_node_answers_over_ipc_and_publishes_status(ros_context, ipc_path, jpeg_images):
    server = GrootServer(context=ros_context, parameter_overrides=params(mock_mode=True, ipc_path=ipc_path))
    server.start()
    listener = rclpy.create_node("listener", context=ros_context)
    status = Collector(listener, String, "/groot_server/status")
    try:
        with NodeSpinner([server, listener], ros_context):
            client = ReqClient(f"ipc://{ipc_path}", timeout_ms=5000)
            state = np.linspace(-0.5, 0.5, 21)
            reply = protocol.parse_action_response(
                client.request(protocol.encode_observation(1.0, 1, jpeg_images, state, "pick")), 16, 21)
            np.testing.assert_allclose(reply.actions[0], state, rtol=1e-5)
            np.testing.assert_allclose(reply.actions[4], hold_chunk(state)[4], rtol=1e-5)
            client.close()
            seen = wait_for(lambda: [s for s in status.json() if s["total_requests"] >= 1], timeout=5)
            assert seen, "no status with the request counted"
            last = seen[-1]
            assert last["mock_mode"] is True and last["engine"] == "mock"
            assert last["bind_address"] == f"ipc://{ipc_path}" and last["errors"] == 0
            assert "inference_p95_ms" in last and "uptime_s" in last
    finally:
        server.close()
        server.destroy_node()
        listener.destroy_node()
    assert not os.path.exists(ipc_path)


def request_once(ipc_path, jpeg_images, timeout_ms=5000):
    client = ReqClient(f"ipc://{ipc_path}", timeout_ms=timeout_ms)
    try:
        return protocol.parse_action_response(
            client.request(protocol.encode_observation(1.0, 1, jpeg_images, [0.1] * 21, "")), 16, 21)
    finally:
        client.close()


def wait_for_socket(path, proc, timeout=20.0):
    ok = wait_for(lambda: os.path.exists(path) or proc.poll() is not None, timeout=timeout)
    assert ok and proc.poll() is None, proc.stdout.read() if proc.poll() is not None else "socket never appeared"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_process_serves_and_removes_socket_on_signal(sig, ipc_path, jpeg_images):
    proc = start_node_process("groot_server", next_domain_id(), {"mock_mode": True, "ipc_path": ipc_path})
    try:
        wait_for_socket(ipc_path, proc)
        assert request_once(ipc_path, jpeg_images).actions.shape == (16, 21)
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "warmed up" in out and "serving on" in out
    assert not os.path.exists(ipc_path)


def test_second_server_does_not_steal_live_socket(ipc_path, jpeg_images):
    first = start_node_process("groot_server", next_domain_id(), {"mock_mode": True, "ipc_path": ipc_path})
    try:
        wait_for_socket(ipc_path, first)
        second = start_node_process("groot_server", next_domain_id(), {"mock_mode": True, "ipc_path": ipc_path})
        out, _ = second.communicate(timeout=20)
        assert second.returncode != 0
        assert "another server is live" in out
        assert request_once(ipc_path, jpeg_images).actions.shape == (16, 21)  # the first still serves
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=15)


def test_stale_socket_from_killed_server_is_replaced(ipc_path, jpeg_images):
    first = start_node_process("groot_server", next_domain_id(), {"mock_mode": True, "ipc_path": ipc_path})
    wait_for_socket(ipc_path, first)
    first.kill()  # SIGKILL: no cleanup, the file stays behind
    first.communicate(timeout=10)
    assert os.path.exists(ipc_path)
    with pytest.raises(RequestTimeout):
        request_once(ipc_path, jpeg_images, timeout_ms=200)
    second = start_node_process("groot_server", next_domain_id(), {"mock_mode": True, "ipc_path": ipc_path})
    try:
        assert wait_for(lambda: _answers(ipc_path, jpeg_images), timeout=20)
    finally:
        second.send_signal(signal.SIGINT)
        out, _ = second.communicate(timeout=15)
    assert second.returncode == 0, out


def _answers(ipc_path, jpeg_images):
    try:
        return request_once(ipc_path, jpeg_images, timeout_ms=300) is not None
    except RequestTimeout:
        return False


def test_missing_model_is_a_clear_startup_error(ipc_path):
    proc = start_node_process("groot_server", next_domain_id(), {"ipc_path": ipc_path})
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode != 0
    assert "mock_mode" in out and "model_checkpoint" in out
    assert not os.path.exists(ipc_path)

"""An unmodified-upstream-style Isaac-GR00T client (test/support/gr00t_wire.py) against OUR server.

Real IPC and TCP sockets, the mock engine (joints hold the state, base dims of step i are `state * exp(-i/4)`), and
the client side written independently of alfie_gr00t.wire.gr00t, so these tests check
our server against upstream's wire format rather than against our own codec.
"""

from __future__ import annotations

import io
import os
import struct
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass

import msgpack
import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))

from support import gr00t_wire  # noqa: E402
from support.frames import hold_chunk, make_frame  # noqa: E402
from support.tripwire import TRIPWIRE_RAN, Tripwire  # noqa: E402
from support.gr00t_wire import ServerError, WireClient, get_action_request  # noqa: E402
from support.upstream_requests import CountingEngine, states_for, upstream_observation  # noqa: E402

from alfie_gr00t import layout
from alfie_gr00t.wire import protocol  # noqa: E402
from alfie_gr00t.server.config import ServerConfig  # noqa: E402
from alfie_gr00t.engines.mock import MockEngine  # noqa: E402
from alfie_gr00t.server.service import BackgroundServer, PolicyService  # noqa: E402
from alfie_gr00t.wire.transport import ReqClient  # noqa: E402

CAMERAS = layout.CAMERA_NAMES
GROUPS = layout.LAYOUT_GROUPS
GROUP_NAMES = [g.name for g in GROUPS]
HORIZON, DIM = layout.ACTION_HORIZON, layout.ACTION_DIM
MODEL_SIZE = (layout.IMAGE_WIDTH, layout.IMAGE_HEIGHT)


@dataclass
class Served:
    address: str
    config: ServerConfig
    service: PolicyService
    engine: CountingEngine
    server: BackgroundServer

    def client(self, **kwargs) -> WireClient:
        return WireClient(self.address, **kwargs)


@contextmanager
def serving(transport: str, ipc_path: str, port: int, **overrides):
    config = ServerConfig(mock_mode=True, transport=transport, ipc_path=ipc_path, bind_port=port, **overrides)
    engine = CountingEngine(MockEngine(config.engine_config()))
    service = PolicyService(engine, config)
    server = BackgroundServer(service).start()
    try:
        yield Served(config.address, config, service, engine, server)
    finally:
        server.stop()
        service.close()


@pytest.fixture(params=["ipc", "tcp"])
def served(request, ipc_path, free_tcp_port):
    with serving(request.param, ipc_path, free_tcp_port) as s:
        yield s


@pytest.fixture
def served_ipc(ipc_path, free_tcp_port):
    with serving("ipc", ipc_path, free_tcp_port) as s:
        yield s


def expected_actions(states: np.ndarray) -> dict:
    chunk = hold_chunk(states)  # (B, 16, 21)
    return {g.name: chunk[:, :, g.start:g.stop] for g in GROUPS}


def check_action_reply(reply, states: np.ndarray) -> None:
    assert isinstance(reply, (list, tuple)) and len(reply) == 2, reply
    action, info = reply
    assert isinstance(action, dict) and isinstance(info, dict)
    assert list(action) == GROUP_NAMES
    expected = expected_actions(states)
    for g in GROUPS:
        value = action[g.name]
        assert isinstance(value, np.ndarray) and value.dtype == np.float32
        assert value.shape == (states.shape[0], HORIZON, g.size)
        np.testing.assert_allclose(value, expected[g.name], rtol=1e-6, atol=1e-7)


def npy(array, allow_pickle=False) -> bytes:
    sink = io.BytesIO()
    np.save(sink, array, allow_pickle=allow_pickle)
    return sink.getvalue()


def npy_from_header(header: str, data: bytes) -> bytes:
    """A version-1.0 .npy file with a hand-written header (padded to 64 bytes as numpy does)."""
    text = header.encode("latin-1")
    text += b" " * (63 - (10 + len(text)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + data


# -------------------------------------------------------------------- happy paths


def test_ping(served):
    with served.client() as client:
        assert client.ping() is True
        reply = client.call_endpoint("ping", requires_input=False)
    assert reply["status"] == "ok" and reply["message"] == "Server is running"


def test_get_modality_config(served):
    with served.client() as client:
        config = client.get_modality_config()
    assert set(config) == {"video", "state", "action", "language"}
    for value in config.values():
        assert isinstance(value, gr00t_wire.ModalityConfig)  # upstream's constructor accepted every field
    assert config["video"].modality_keys == list(CAMERAS)
    assert config["video"].delta_indices == [0]
    assert config["state"].modality_keys == GROUP_NAMES
    assert config["action"].modality_keys == GROUP_NAMES
    assert config["action"].delta_indices == list(range(HORIZON))
    assert config["language"].modality_keys == ["task"]
    actions = config["action"].action_configs
    assert len(actions) == len(GROUPS)
    assert all(a.rep is gr00t_wire.ActionRepresentation.ABSOLUTE for a in actions)
    assert all(a.type is gr00t_wire.ActionType.NON_EEF and a.format is gr00t_wire.ActionFormat.DEFAULT
               for a in actions)


@pytest.mark.parametrize("batch", [1, 3])
def test_get_action(served, batch):
    states = states_for(batch)
    # one camera at 640x480: the server must resize it to the model's 320x280
    observation = upstream_observation(states, sizes={"right_wide": (640, 480)})
    with served.client() as client:
        reply = client.get_action(observation)
        check_action_reply(reply, states)
        assert reply[1]["inference_time_ms"] >= 0.0
    assert served.engine.calls == [batch], "a batch must run as ONE engine call"
    seen = served.engine.last_batch
    assert seen.language == tuple(f"pick up the can {i}" for i in range(batch))
    for c, cam in enumerate(CAMERAS):
        frames = seen.images[cam]
        assert frames.shape == (batch, layout.IMAGE_HEIGHT, layout.IMAGE_WIDTH, 3) and frames.dtype == np.uint8
        if cam != "right_wide":  # not resized: the exact pixels sent
            np.testing.assert_array_equal(frames[batch - 1], make_frame(seed=c + 10 * (batch - 1)))
    np.testing.assert_array_equal(seen.state, states)


def test_many_sequential_actions_and_reset(served):
    with served.client() as client:
        for step in range(20):
            states = states_for(1, offset=0.01 * step)
            check_action_reply(client.get_action(upstream_observation(states)), states)
        assert client.reset() == {}
        assert client.reset({"episode": 3}) == {}
        states = states_for(2, offset=-0.05)
        check_action_reply(client.get_action(upstream_observation(states)), states)
    assert served.engine.calls == [1] * 20 + [2]
    assert served.service.errors == 0


def test_video_keys_route_images_by_key_not_by_order(ipc_path, free_tcp_port):
    cameras = ("cam_a", "cam_b", "cam_c", "cam_d")
    keys = ("ego_view", "wrist_left", "wrist_right", "top")
    with serving("ipc", ipc_path, free_tcp_port, camera_names=cameras, video_keys=keys) as s:
        states = states_for(1)
        observation = upstream_observation(states)
        colours = {key: 20 + 50 * i for i, key in enumerate(keys)}
        # insertion order reversed: a server that mapped by position would swap every camera
        observation["video"] = {key: np.full((1, 1, 28, 32, 3), colours[key], np.uint8) for key in reversed(keys)}
        with s.client() as client:
            assert client.get_modality_config()["video"].modality_keys == list(keys)
            check_action_reply(client.get_action(observation), states)
        for cam, key in zip(cameras, keys):
            assert np.all(s.engine.last_batch.images[cam] == colours[key]), (cam, key)


# -------------------------------------------------------------------- access control


def test_api_token_for_both_protocols(ipc_path, free_tcp_port, jpeg_images):
    with serving("tcp", ipc_path, free_tcp_port, api_token="tok") as s:
        states = states_for(1)
        observation = upstream_observation(states)
        for token in (None, "wrong", "tok2", "to"):
            with s.client(api_token=token) as client:
                with pytest.raises(ServerError, match="(?i)unauthorized"):
                    client.ping()  # ServerError is not a ZMQError: ping() does not swallow it
                with pytest.raises(ServerError, match="(?i)unauthorized"):
                    client.get_action(observation)
                with pytest.raises(ServerError, match="(?i)unauthorized"):
                    client.get_modality_config()
        assert s.engine.calls == []
        with s.client(api_token="tok") as client:
            assert client.ping() is True
            check_action_reply(client.get_action(observation), states)
        assert s.engine.calls == [1]

        ours = ReqClient(s.address, timeout_ms=5000)
        try:
            for token in (None, "wrong"):
                payload = protocol.encode_observation(1.0, 5, jpeg_images, [0.1] * DIM, "pick", api_token=token)
                refused = msgpack.unpackb(ours.request(payload), raw=False)
                assert refused["status"] == "error" and "unauthorized" in refused["error_message"]
                assert refused["actions"] == []
            payload = protocol.encode_observation(1.0, 6, jpeg_images, [0.1] * DIM, "pick", api_token="tok")
            reply = protocol.parse_action_response(ours.request(payload), HORIZON, DIM)
            assert reply.frame_id == 6
            np.testing.assert_allclose(reply.actions, hold_chunk(0.1 * np.ones(DIM)), rtol=1e-6)
        finally:
            ours.close()
        assert s.engine.calls == [1, 1]


def test_unknown_endpoint_is_an_error_map(served):
    with served.client() as client:
        for endpoint in ("explode", "", "get_actions", "PING"):
            decoded = gr00t_wire.from_bytes(client.send_raw(gr00t_wire.to_bytes({"endpoint": endpoint})))
            assert set(decoded) == {"error"} and isinstance(decoded["error"], str) and decoded["error"]
        with pytest.raises(ServerError):
            client.call_endpoint("explode", requires_input=False)
        assert client.ping() is True


def test_kill_is_refused_by_default(served):
    with served.client() as client:
        with pytest.raises(ServerError, match="kill"):
            client.kill_server()
        assert client.ping() is True
        states = states_for(1)
        check_action_reply(client.get_action(upstream_observation(states)), states)
    assert served.service.kill_requested is False


@pytest.mark.parametrize("transport", ["ipc", "tcp"])
def test_kill_is_honoured_when_allowed(transport, ipc_path, free_tcp_port):
    with serving(transport, ipc_path, free_tcp_port, allow_remote_kill=True) as s:
        with s.client() as client:
            assert client.ping() is True
            reply = client.kill_server()
            assert reply["status"] == "ok"  # upstream answers nil; we answer a status map (docs/wire.md)
        deadline = time.monotonic() + 5.0
        while s.server.alive and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not s.server.alive, "server thread still running after kill"
        with s.client(timeout_ms=300) as late:
            assert late.ping() is False  # nobody answers any more
        if transport == "ipc":
            assert not os.path.exists(ipc_path), "the server's socket file was not removed"


# -------------------------------------------------------------------- hostile ndarray payloads

def pickled_object_npy() -> bytes:
    array = np.empty((1, 1, 3), dtype=object)
    for i in range(3):
        array[0, 0, i] = Tripwire()
    return npy(array, allow_pickle=True)


def test_tripwire_would_fire_if_unpickled():
    """The payload used below really does run code when loaded with allow_pickle=True."""
    TRIPWIRE_RAN.clear()
    np.load(io.BytesIO(pickled_object_npy()), allow_pickle=True)
    assert TRIPWIRE_RAN
    TRIPWIRE_RAN.clear()


def _marker(data: bytes) -> dict:
    return {"__ndarray_class__": True, "as_npy": data}


HEAD_OK = np.zeros((1, 1, 3), np.float32)
MALFORMED_NPY = {
    "pickled-object": pickled_object_npy(),
    "truncated-data": npy(HEAD_OK)[:-5],
    "truncated-header": npy(HEAD_OK)[:20],
    "absurd-shape": npy_from_header(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000, 1000000000, 3), }", b"\0" * 12),
    "absurd-shape-uint8-video": npy_from_header(
        "{'descr': '|u1', 'fortran_order': False, 'shape': (1, 1, 65535, 65535, 3), }", b"\0" * 64),
    "negative-shape": npy_from_header("{'descr': '<f4', 'fortran_order': False, 'shape': (1, -1, 3), }", b"\0" * 12),
    "object-descr-no-pickle": npy_from_header("{'descr': '|O', 'fortran_order': False, 'shape': (1, 1, 3), }",
                                              b"\0" * 24),
    "structured-descr": npy_from_header(
        "{'descr': [('a', '|O')], 'fortran_order': False, 'shape': (1, 1, 3), }", b"\0" * 24),
    "code-in-header": npy_from_header("{'descr': __import__('os').getcwd(), 'fortran_order': False, 'shape': (3,), }",
                                      b"\0" * 12),
    "not-npy": b"definitely not an npy file",
}


@pytest.mark.parametrize("where", ["state", "video", "language", "options"])
@pytest.mark.parametrize("kind", sorted(MALFORMED_NPY))
def test_malformed_ndarray_payloads_are_refused_and_server_keeps_serving(served_ipc, kind, where):
    TRIPWIRE_RAN.clear()
    states = states_for(1)
    observation = upstream_observation(states)
    options = None
    if where == "state":
        observation["state"]["head"] = _marker(MALFORMED_NPY[kind])
    elif where == "video":
        observation["video"]["left_center"] = _marker(MALFORMED_NPY[kind])
    elif where == "language":
        observation["language"]["task"] = _marker(MALFORMED_NPY[kind])
    else:
        options = {"extra": _marker(MALFORMED_NPY[kind])}
    with served_ipc.client() as client:
        decoded = gr00t_wire.from_bytes(client.send_raw(get_action_request(observation, options)))
        assert isinstance(decoded, dict) and set(decoded) == {"error"} and isinstance(decoded["error"], str)
        assert TRIPWIRE_RAN == [], "the server unpickled attacker data"
        # the same socket keeps working for a valid request afterwards
        check_action_reply(client.get_action(upstream_observation(states)), states)
    assert served_ipc.engine.calls == [1]


def test_batch_above_max_batch_size_is_refused(ipc_path, free_tcp_port):
    with serving("ipc", ipc_path, free_tcp_port, max_batch_size=4) as s:
        with s.client() as client:
            with pytest.raises(ServerError, match="batch"):
                client.get_action(upstream_observation(states_for(5), sizes=dict.fromkeys(CAMERAS, (32, 28))))
            assert s.engine.calls == []
            states = states_for(4)
            check_action_reply(client.get_action(upstream_observation(states)), states)
        assert s.engine.calls == [4]


def test_default_batch_limit_is_eight(served_ipc):
    small = dict.fromkeys(CAMERAS, (32, 28))
    with served_ipc.client() as client:
        with pytest.raises(ServerError, match="batch"):
            client.get_action(upstream_observation(states_for(9), sizes=small))
        states = states_for(8)
        check_action_reply(client.get_action(upstream_observation(states, sizes=small)), states)
    assert served_ipc.engine.calls == [8]


def test_both_protocols_share_one_socket(served, jpeg_images):
    """Our observation requests and upstream requests interleave on the same server."""
    ours = ReqClient(served.address, timeout_ms=5000)
    try:
        with served.client() as client:
            for step in range(5):
                states = states_for(1, offset=0.02 * step)
                check_action_reply(client.get_action(upstream_observation(states)), states)
                payload = protocol.encode_observation(1.0, step, jpeg_images, states[0], "pick")
                reply = protocol.parse_action_response(ours.request(payload), HORIZON, DIM)
                assert reply.frame_id == step
                np.testing.assert_allclose(reply.actions, hold_chunk(states[0]), rtol=1e-6, atol=1e-7)
    finally:
        ours.close()
    assert served.engine.calls == [1] * 10


def test_abandoned_request_then_reconnect_is_served(served_ipc):
    """A client that gave up on a request and recreated its socket (as upstream does) is served again."""
    with served_ipc.client(timeout_ms=5000) as client:
        client.socket.send(gr00t_wire.to_bytes({"endpoint": "ping"}))
        client.socket.close(linger=0)  # abandon the in-flight request
        client._connect()
        assert client.ping() is True

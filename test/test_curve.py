"""CurveZMQ on TCP (docs/security.md): real sockets on 127.0.0.1, real libzmq Curve, pyzmq's real ZAP handler.

Keys come from the real key tool (`groot_keys`, alfie_gr00t.tools.keys). Every failure case
checks its message and that it came before the request's timeout elapsed (a generous bound:
without the socket monitor each of these is a silent wait for the whole timeout). A sniffing
TCP proxy between client and server shows what crosses the network with Curve on and off.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import stat
import sys
import tempfile
import threading
import time

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))

from support import gr00t_wire  # noqa: E402
from support.frames import hold_chunk, make_frame  # noqa: E402
from support.load import run_load  # noqa: E402

from alfie_gr00t import layout  # noqa: E402
from alfie_gr00t.client.config import ClientConfig  # noqa: E402
from alfie_gr00t.engines.mock import MockEngine  # noqa: E402
from alfie_gr00t.server.config import ServerConfig  # noqa: E402
from alfie_gr00t.server.service import BackgroundServer, PolicyService  # noqa: E402
from alfie_gr00t.tools import keys as keytool  # noqa: E402
from alfie_gr00t.wire import images, protocol  # noqa: E402
from alfie_gr00t.wire import transport  # noqa: E402
from alfie_gr00t.wire.transport import HandshakeFailed, KeyFileError, ReqClient, RequestTimeout  # noqa: E402

HORIZON, DIM = layout.ACTION_HORIZON, layout.ACTION_DIM
TIMEOUT_MS = 5000  # the request timeout in the failure cases; each must fail well before it
TOKEN = "sniff-me-if-you-can-7f3a"


class Keys:
    """A server pair, an allowed client pair, a stranger pair and the allow-list directory."""

    def __init__(self, root: str):
        self.root = root
        self.server_public, self.server_secret = keytool.create_pair("server", os.path.join(root, "server"))
        self.client_public, self.client_secret = keytool.create_pair("client", os.path.join(root, "robot"))
        self.stranger_public, self.stranger_secret = keytool.create_pair("client", os.path.join(root, "stranger"))
        self.other_server_public, _ = keytool.create_pair("server", os.path.join(root, "other_server"))
        self.allowed = os.path.join(root, "allowed")
        os.mkdir(self.allowed, 0o755)
        os.chmod(self.allowed, 0o755)
        shutil.copy(self.client_public, os.path.join(self.allowed, "robot1.key"))

    def client(self, secret=None, server_public=None) -> transport.CurveClientKeys:
        return transport.load_client_keys(secret or self.client_secret, server_public or self.server_public)


@pytest.fixture
def keys():
    root = tempfile.mkdtemp(prefix="ag_curve_", dir="/tmp")
    yield Keys(root)
    shutil.rmtree(root, ignore_errors=True)


def make_service(port: int, keys: Keys | None, **overrides) -> PolicyService:
    curve = dict(curve_secret_key=keys.server_secret, curve_allowed_clients=keys.allowed) if keys else {}
    config = ServerConfig(mock_mode=True, transport="tcp", bind_host="127.0.0.1", bind_port=port, **curve,
                          **overrides)
    return PolicyService(MockEngine(config.engine_config()), config)


def jpegs(width=layout.IMAGE_WIDTH, height=layout.IMAGE_HEIGHT) -> dict:
    return {name: images.encode_jpeg(make_frame(width, height, seed=i), 90)
            for i, name in enumerate(layout.CAMERA_NAMES)}


def state_of(frame_id: int) -> list[float]:
    return [round(((frame_id * 7919 + j * 104729) % 2000) / 1000.0 - 1.0, 3) for j in range(DIM)]


def ask_ours(client: ReqClient, frame_id: int, frames: dict, token: str | None = None):
    state = state_of(frame_id)
    payload = protocol.encode_observation(time.time(), frame_id, frames, state, "pick up the can", api_token=token)
    reply = protocol.parse_action_response(client.request(payload), HORIZON, DIM)
    assert reply.frame_id == frame_id
    np.testing.assert_allclose(reply.actions, hold_chunk(np.array(state, np.float32)), rtol=1e-6, atol=1e-7)
    return reply


# ============================================================== Curve server + Curve client, both protocols


def test_curve_exchanges_chunks_in_both_protocols(keys, free_tcp_port):
    service = make_service(free_tcp_port, keys)
    with BackgroundServer(service) as server:
        assert server.endpoint.curve is not None and len(server.endpoint.curve.allowed_clients) == 1
        client = ReqClient(service.config.address, TIMEOUT_MS, curve=keys.client())
        try:
            for frame_id in range(5):
                ask_ours(client, frame_id, jpegs())
            # Isaac-GR00T's protocol on the same Curve socket (our client's Gr00tLink uses this ReqClient)
            states = np.linspace(-0.3, 0.3, DIM, dtype=np.float32)[None]
            observation = {
                "video": {cam: make_frame(seed=c)[None, None] for c, cam in enumerate(layout.CAMERA_NAMES)},
                "state": {g.name: states[:, None, g.start:g.stop] for g in layout.LAYOUT_GROUPS},
                "language": {service.config.language_key: [["pick up the can"]]},
            }
            action, info = gr00t_wire.from_bytes(bytes(client.request(gr00t_wire.get_action_request(observation))))
            expected = hold_chunk(states)
            for g in layout.LAYOUT_GROUPS:
                np.testing.assert_allclose(action[g.name], expected[:, :, g.start:g.stop], rtol=1e-6, atol=1e-7)
            assert info["engine"] == "mock"
            ping_request = gr00t_wire.to_bytes(gr00t_wire.request("ping", requires_input=False))
            ping = gr00t_wire.from_bytes(bytes(client.request(ping_request)))
            assert ping["status"] == "ok"
        finally:
            client.close()
    assert service.errors == 0 and service.total_requests == 7


def test_token_and_curve_together(keys, free_tcp_port):
    """The api_token is still checked, after decryption."""
    service = make_service(free_tcp_port, keys, api_token=TOKEN)
    with BackgroundServer(service):
        client = ReqClient(service.config.address, TIMEOUT_MS, curve=keys.client())
        try:
            ask_ours(client, 1, jpegs(), token=TOKEN)
            for token in ("wrong", None):
                payload = protocol.encode_observation(time.time(), 2, jpegs(), state_of(2), "x", api_token=token)
                with pytest.raises(protocol.ProtocolError, match="unauthorized"):
                    protocol.parse_action_response(client.request(payload), HORIZON, DIM)
        finally:
            client.close()
    assert service.errors == 2


# ============================================================== each failure: a named error, at once


def wait_for_log(caplog, text: str, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(text in r.getMessage() for r in caplog.records):
            return True
        time.sleep(0.02)
    return False


FAILURES = {
    # case: (server uses Curve, client keys, client error pattern, server log pattern)
    "unknown_client_key": (True, "stranger", r"refused this client's CurveZMQ public key .* curve_allowed_clients",
                           "is not in curve_allowed_clients"),
    "wrong_server_key": (True, "wrong_server", r"curve_server_key=.*other_server.* is most likely not the public key",
                         "cryptographic error: the client's curve_server_key is not this server's public key"),
    "plain_client_on_curve_port": (True, None, r"requires CurveZMQ.*set curve_secret_key and curve_server_key",
                                   "plain client"),
    "curve_client_on_plain_port": (False, "good", r"(does not use CurveZMQ|the server does not use Curve)",
                                   "CurveZMQ client on this plain port"),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_handshake_failures_name_their_cause_before_the_timeout(case, keys, free_tcp_port, caplog):
    server_curve, which, client_pattern, server_pattern = FAILURES[case]
    client_keys = {"stranger": lambda: keys.client(secret=keys.stranger_secret),
                   "wrong_server": lambda: keys.client(server_public=keys.other_server_public),
                   "good": keys.client, None: lambda: None}[which]()
    service = make_service(free_tcp_port, keys if server_curve else None)
    caplog.set_level(logging.INFO, logger="alfie_gr00t")
    with BackgroundServer(service):
        bad = ReqClient(service.config.address, TIMEOUT_MS, curve=client_keys)
        elapsed = []
        for _ in range(3):  # each request of a misconfigured client fails the same way, each at once
            start = time.monotonic()
            with pytest.raises(HandshakeFailed, match=client_pattern) as raised:
                bad.request(b"anything")
            elapsed.append(time.monotonic() - start)
            assert isinstance(raised.value, RequestTimeout)  # the worker counts it like a timeout
        bad.close()
        print(f"\n{case}: HandshakeFailed after {', '.join(f'{e * 1000:.0f}' for e in elapsed)} ms "
              f"(timeout {TIMEOUT_MS} ms): {raised.value}")
        assert max(elapsed) < TIMEOUT_MS / 1000.0 / 2, "the error must come well before the timeout"
        assert wait_for_log(caplog, server_pattern), [r.getMessage() for r in caplog.records]
        # the server keeps serving everyone else
        good = ReqClient(service.config.address, TIMEOUT_MS, curve=keys.client() if server_curve else None)
        try:
            ask_ours(good, 7, jpegs(32, 28))
        finally:
            good.close()
    assert bad.reconnects == 3
    assert service.total_requests == 1  # nothing of the refused peers reached the service


def test_upstream_style_client_without_curve_cannot_use_a_curve_port(keys, free_tcp_port):
    """gr00t_wire.WireClient does what upstream's PolicyClient does (plain REQ, receive timeout):
    it gets nothing from a Curve port, and the server still serves our Curve clients."""
    service = make_service(free_tcp_port, keys)
    with BackgroundServer(service):
        with gr00t_wire.WireClient(service.config.address, timeout_ms=500) as upstream:
            assert upstream.ping() is False  # upstream's ping: False on its receive timeout
        client = ReqClient(service.config.address, TIMEOUT_MS, curve=keys.client())
        try:
            ask_ours(client, 3, jpegs(32, 28))
        finally:
            client.close()
    assert service.total_requests == 1


# ============================================================== what crosses the network


class SniffingProxy:
    """127.0.0.1 TCP proxy: forwards every byte between client and server and keeps a copy."""

    def __init__(self, target_port: int):
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.recorded = bytearray()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._sockets = []

    def _accept(self):
        while not self._stop.is_set():
            try:
                downstream, _ = self.listener.accept()
            except (socket.timeout, OSError):
                continue
            upstream = socket.create_connection(self.target, timeout=5)
            self._sockets += [downstream, upstream]
            for a, b in ((downstream, upstream), (upstream, downstream)):
                t = threading.Thread(target=self._pump, args=(a, b), daemon=True)
                t.start()
                self._threads.append(t)

    def _pump(self, source, sink):
        source.settimeout(0.2)
        while not self._stop.is_set():
            try:
                data = source.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data:
                break
            with self._lock:
                self.recorded += data
            try:
                sink.sendall(data)
            except OSError:
                break
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self):
        self._threads[0].start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2)
        for s in self._sockets + [self.listener]:
            s.close()


@pytest.mark.parametrize("curve", [True, False], ids=["curve", "plain"])
def test_sniffed_stream_shows_token_and_jpeg_only_without_curve(curve, keys, free_tcp_port):
    service = make_service(free_tcp_port, keys if curve else None, api_token=TOKEN)
    with BackgroundServer(service), SniffingProxy(free_tcp_port) as proxy:
        client = ReqClient(f"tcp://127.0.0.1:{proxy.port}", TIMEOUT_MS, curve=keys.client() if curve else None)
        try:
            for frame_id in range(3):
                ask_ours(client, frame_id, jpegs(), token=TOKEN)
        finally:
            client.close()
    stream = bytes(proxy.recorded)
    assert len(stream) > 3 * 4 * 1000, "the proxy saw too little to judge"
    seen = (TOKEN.encode() in stream, b"\xff\xd8\xff" in stream)
    print(f"\n{'curve' if curve else 'plain'}: {len(stream)} bytes sniffed; token seen {seen[0]}, JPEG magic seen "
          f"{seen[1]}")
    assert seen == ((False, False) if curve else (True, True))


# ============================================================== key files, parameters, the key tool


def test_secret_key_readable_by_others_is_refused_with_its_path(keys):
    for mode in (0o640, 0o644, 0o604, 0o660):
        os.chmod(keys.server_secret, mode)
        with pytest.raises(KeyFileError, match=f"{keys.server_secret} has mode {mode:04o}"):
            transport.load_server_keys(keys.server_secret, keys.allowed)
        os.chmod(keys.client_secret, mode)
        with pytest.raises(KeyFileError, match=f"{keys.client_secret} has mode"):
            keys.client()
    for mode in (0o600, 0o400):
        os.chmod(keys.server_secret, mode)
        os.chmod(keys.client_secret, mode)
        assert transport.load_server_keys(keys.server_secret, keys.allowed).secret
        assert keys.client().secret


def test_writable_allow_list_or_server_key_is_refused(keys):
    os.chmod(keys.allowed, 0o777)
    with pytest.raises(KeyFileError, match=f"curve_allowed_clients {keys.allowed} has mode 0777"):
        transport.load_server_keys(keys.server_secret, keys.allowed)
    os.chmod(keys.allowed, 0o755)
    listed = os.path.join(keys.allowed, "robot1.key")
    os.chmod(listed, 0o666)
    with pytest.raises(KeyFileError, match=f"{listed} has mode 0666"):
        transport.load_server_keys(keys.server_secret, keys.allowed)
    os.chmod(listed, 0o644)
    os.chmod(keys.server_public, 0o664)
    with pytest.raises(KeyFileError, match=f"curve_server_key {keys.server_public} has mode 0664"):
        keys.client()


def test_wrong_kinds_of_key_files_are_refused(keys):
    with pytest.raises(KeyFileError, match="SECRET key"):  # the server's secret must never be on the robot
        keys.client(server_public=keys.server_secret)
    os.chmod(keys.server_public, 0o600)
    with pytest.raises(KeyFileError, match="holds no secret-key"):
        transport.load_server_keys(keys.server_public, keys.allowed)
    shutil.copy(keys.stranger_secret, os.path.join(keys.allowed, "leaked.key"))
    os.chmod(os.path.join(keys.allowed, "leaked.key"), 0o600)
    with pytest.raises(KeyFileError, match="holds a secret key"):
        transport.load_server_keys(keys.server_secret, keys.allowed)
    with pytest.raises(KeyFileError, match="No such file"):
        transport.load_server_keys(os.path.join(keys.root, "missing.key_secret"), keys.allowed)
    garbage = os.path.join(keys.root, "garbage.key_secret")
    with open(garbage, "w") as f:
        f.write("not a certificate\n")
    os.chmod(garbage, 0o600)
    with pytest.raises(KeyFileError, match="not a ZeroMQ certificate"):
        transport.load_client_keys(garbage, keys.server_public)


def test_empty_allow_list_refuses_everyone(keys, free_tcp_port, caplog):
    os.remove(os.path.join(keys.allowed, "robot1.key"))
    service = make_service(free_tcp_port, keys)
    caplog.set_level(logging.WARNING, logger="alfie_gr00t")
    with BackgroundServer(service) as server:
        client = ReqClient(service.config.address, TIMEOUT_MS, curve=keys.client())
        with pytest.raises(HandshakeFailed, match="refused this client's CurveZMQ public key"):
            client.request(b"x")
        client.close()
        assert wait_for_log(caplog, keys.client().public.decode())  # the log names the refused key (Z85)
        assert server.endpoint.refused_keys >= 1
    assert service.total_requests == 0


def test_config_validation_without_io():
    with pytest.raises(ValueError, match="go together"):
        ServerConfig(transport="tcp", curve_secret_key="/x/server.key_secret")
    with pytest.raises(ValueError, match="go together"):
        ServerConfig(transport="tcp", curve_allowed_clients="/x/allowed")
    with pytest.raises(ValueError, match="need transport tcp"):
        ServerConfig(transport="ipc", curve_secret_key="/x/s", curve_allowed_clients="/x/a")
    with pytest.raises(ValueError, match="go together"):
        ClientConfig(transport="tcp", curve_server_key="/x/server.key")
    with pytest.raises(ValueError, match="need transport tcp"):
        ClientConfig(transport="ipc", curve_secret_key="/x/c", curve_server_key="/x/s")
    # files are read only at start (curve_keys), never at construction
    ServerConfig(transport="tcp", curve_secret_key="/nonexistent/s", curve_allowed_clients="/nonexistent/a")
    with pytest.raises(KeyFileError, match="/nonexistent/s"):
        ServerConfig(transport="tcp", curve_secret_key="/nonexistent/s", curve_allowed_clients="/nonexistent/a"
                     ).curve_keys()
    assert ServerConfig().curve_keys() is None and ClientConfig().curve_keys() is None


def test_exposure_warning_only_without_token_and_curve():
    exposed = dict(transport="tcp", bind_host="0.0.0.0")
    assert "without api_token" in ServerConfig(**exposed).exposure_warning()
    assert ServerConfig(**exposed, api_token="t").exposure_warning() is None
    assert ServerConfig(**exposed, curve_secret_key="/k/s", curve_allowed_clients="/k/a").exposure_warning() is None


def test_groot_keys_tool(capsys):
    root = tempfile.mkdtemp(prefix="ag_keys_", dir="/tmp")
    try:
        target = os.path.join(root, "new", "dir")
        assert keytool.main(["server", target]) == 0
        out = capsys.readouterr().out
        secret, public = os.path.join(target, "server.key_secret"), os.path.join(target, "server.key")
        assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(public).st_mode) == 0o644
        assert stat.S_IMODE(os.stat(target).st_mode) == 0o700
        assert f"curve_secret_key:={secret}" in out and "curve_server_key:=" in out
        assert keytool.main(["client", target, "--name", "alfie1"]) == 0
        out = capsys.readouterr().out
        assert f"client_curve_secret_key:={os.path.join(target, 'alfie1.key_secret')}" in out
        assert "curve_allowed_clients" in out
        # the pair it made works as both kinds of key
        os.mkdir(os.path.join(root, "allowed"))
        shutil.copy(os.path.join(target, "alfie1.key"), os.path.join(root, "allowed"))
        server = transport.load_server_keys(secret, os.path.join(root, "allowed"))
        client = transport.load_client_keys(os.path.join(target, "alfie1.key_secret"), public)
        assert client.public in server.allowed_clients and client.server_public == server.public
        # never overwrites, rejects odd names
        assert keytool.main(["server", target]) == 1
        assert "already exists" in capsys.readouterr().err
        assert keytool.main(["client", target, "--name", "../evil"]) == 1
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ============================================================== the load test, over Curve


def test_concurrent_curve_clients_lose_and_misroute_nothing(keys, free_tcp_port):
    clients, per_client = 8, 250
    service = make_service(free_tcp_port, keys)
    frames = jpegs(32, 28)
    result = run_load(service, lambda client, frame_id: ask_ours(client, frame_id, frames),
                      clients=clients, per_client=per_client, deadline_s=60.0, curve=keys.client())
    print(f"\ncurve load test, {per_client} requests each: {result.summary()}")
    assert result.lost == 0 and result.misrouted == 0
    assert result.ok == result.sent >= clients * 50, "too few requests completed within the time bound"
    assert service.errors == 0 and service.total_requests == result.sent


# ============================================================== the client node: ACTIVE over Curve, or ERROR saying why


def test_client_node_plays_over_curve_and_names_a_refusal(ros_context, ipc_path, keys, free_tcp_port):
    from alfie_gr00t.client.state_machine import ClientState
    from support.ros_helpers import wait_for
    from support.client_harness import CONNECT_S, client_and_robot, wait_state

    timeout_ms = 5000
    tcp = dict(transport="tcp", server_host="127.0.0.1", server_port=free_tcp_port, inference_timeout_ms=timeout_ms,
               max_consecutive_failures=3)
    service = make_service(free_tcp_port, keys)
    with BackgroundServer(service):
        with client_and_robot(ros_context, ipc_path, curve_secret_key=keys.client_secret,
                              curve_server_key=keys.server_public, **tcp) as (client, robot):
            robot.activate(True)
            wait_state(client, ClientState.ACTIVE, CONNECT_S)
            assert wait_for(lambda: client.worker.requests_ok >= 3, timeout=10.0)
            robot.activate(False)
        served = service.total_requests
        # the same robot with a key the server does not know: ERROR, and the status says why
        with client_and_robot(ros_context, ipc_path, curve_secret_key=keys.stranger_secret,
                              curve_server_key=keys.server_public, **tcp) as (client, robot):
            robot.activate(True)
            time_to_error = wait_state(client, ClientState.ERROR, 3 * timeout_ms / 1000.0)
            status = client.status()
            assert status["requests_ok"] == 0 and status["requests_failed"] == 3
            assert "refused this client's CurveZMQ public key" in status["last_error"]
            assert "curve_allowed_clients" in status["last_error"]
        assert service.total_requests == served  # nothing of the refused client reached the service
    print(f"\nclient node: ACTIVE over Curve ({served} chunks); unknown key -> ERROR after {time_to_error:.2f} s "
          f"(3 failures; the request timeout is {timeout_ms} ms)")
    assert time_to_error < timeout_ms / 1000.0, "ERROR must come before the first request timeout elapsed"


def test_refused_keys_do_not_grow_the_servers_memory(keys, free_tcp_port, caplog):
    """Every refused handshake may bring a fresh key (a Curve key pair costs a client microseconds):
    the server's per-key refusal log must stay bounded however many it sees, and keep counting them."""
    import tracemalloc

    import zmq

    service = make_service(free_tcp_port, keys)
    caplog.set_level(logging.WARNING, logger="alfie_gr00t")
    with BackgroundServer(service) as server:
        for _ in range(2):  # real refused handshakes, each with a key of its own
            stranger = transport.CurveClientKeys(*zmq.curve_keypair(), keys.client().server_public)
            client = ReqClient(service.config.address, TIMEOUT_MS, curve=stranger)
            with pytest.raises(HandshakeFailed, match="refused this client's CurveZMQ public key"):
                client.request(b"x")
            client.close()
            assert wait_for_log(caplog, stranger.public.decode())
        allow_list = server.endpoint._allow_list
        fresh = [zmq.curve_keypair()[0] for _ in range(20000)]
        before = server.endpoint.refused_keys
        tracemalloc.start()
        try:
            baseline = tracemalloc.get_traced_memory()[0]
            for key in fresh:
                assert allow_list.callback(transport.ZAP_DOMAIN, key) is False
            grown = tracemalloc.get_traced_memory()[0] - baseline
        finally:
            tracemalloc.stop()
        assert server.endpoint.refused_keys == before + len(fresh)
        assert allow_list.callback(transport.ZAP_DOMAIN, keys.client().public) is True
        client = ReqClient(service.config.address, TIMEOUT_MS, curve=keys.client())
        try:
            ask_ours(client, 1, jpegs())
        finally:
            client.close()
    assert grown < 512 << 10, f"{grown / 1e6:.1f} MB kept for {len(fresh)} refused keys"

"""Real ZeroMQ sockets: addresses, REP/REQ, timeouts and the IPC socket-file lifecycle."""

import os
import socket
import stat
import threading
import time

import pytest
import zmq

from alfie_gr00t.wire import transport


def test_endpoint_addresses():
    assert transport.endpoint_address("ipc", "/tmp/x.sock", "h", 1) == "ipc:///tmp/x.sock"
    assert transport.endpoint_address("tcp", "", "127.0.0.1", 5555) == "tcp://127.0.0.1:5555"
    for bad in (("udp", "/x", "h", 1), ("ipc", "", "h", 1), ("tcp", "", "h", 0)):
        with pytest.raises(ValueError):
            transport.endpoint_address(*bad)


def test_loopback_detection():
    assert transport.is_loopback_host("127.0.0.1") and transport.is_loopback_host("::1")
    assert transport.is_loopback_host("localhost")
    assert not transport.is_loopback_host("*") and not transport.is_loopback_host("0.0.0.0")


def test_rep_req_round_trip_and_socket_mode(ipc_path):
    rep = transport.RepEndpoint(f"ipc://{ipc_path}", 1 << 20, ipc_mode=0o640)
    assert stat.S_IMODE(os.stat(ipc_path).st_mode) == 0o640
    assert rep.receive(0) is None  # empty socket: no wait, no block
    client = transport.ReqClient(f"ipc://{ipc_path}", timeout_ms=2000)
    result = {}

    def ask():
        result["reply"] = bytes(client.request(b"ping"))

    t = threading.Thread(target=ask)
    t.start()
    payload = rep.receive(2000)
    assert bytes(payload) == b"ping"
    rep.send(b"pong")
    t.join(5)
    assert result["reply"] == b"pong"
    client.close()
    rep.close()
    assert not os.path.exists(ipc_path)


def test_req_timeout_recreates_socket(ipc_path):
    rep = transport.RepEndpoint(f"ipc://{ipc_path}", 1 << 20)
    client = transport.ReqClient(f"ipc://{ipc_path}", timeout_ms=50)
    with pytest.raises(transport.RequestTimeout):
        client.request(b"first")  # the server never answers
    assert client.reconnects == 1
    assert bytes(rep.receive(1000)) == b"first"
    rep.send(b"late")  # goes to the dead socket, dropped

    def serve():
        payload = rep.receive(2000)
        rep.send(b"re:" + bytes(payload))

    t = threading.Thread(target=serve)
    t.start()
    assert bytes(client.request(b"second", timeout_ms=2000)) == b"re:second"  # not stuck in REQ state
    t.join(5)
    client.close()
    rep.close()


def test_stale_socket_file_is_removed(ipc_path):
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(ipc_path)
    dead.close()  # the file stays, nobody listens: a crashed server's leftover
    assert os.path.exists(ipc_path)
    rep = transport.RepEndpoint(f"ipc://{ipc_path}", 1 << 20)
    assert stat.S_ISSOCK(os.stat(ipc_path).st_mode)
    rep.close()


def test_live_socket_is_never_stolen(ipc_path):
    owner = transport.RepEndpoint(f"ipc://{ipc_path}", 1 << 20)
    with pytest.raises(transport.AddressInUse, match="another server is live"):
        transport.RepEndpoint(f"ipc://{ipc_path}", 1 << 20)
    assert os.path.exists(ipc_path)
    owner.close()


def test_regular_file_is_not_removed(ipc_path):
    with open(ipc_path, "w") as f:
        f.write("precious")
    with pytest.raises(transport.AddressInUse, match="not a socket"):
        transport.RepEndpoint(f"ipc://{ipc_path}", 1 << 20)
    assert open(ipc_path).read() == "precious"


def test_close_does_not_remove_a_newer_servers_file(ipc_path):
    first = transport.RepEndpoint(f"ipc://{ipc_path}", 1 << 20)
    os.unlink(ipc_path)  # someone removed it and a second server took the path
    second = transport.RepEndpoint(f"ipc://{ipc_path}", 1 << 20)
    first.close()
    assert os.path.exists(ipc_path)
    second.close()
    assert not os.path.exists(ipc_path)


def test_tcp_port_in_use_is_a_clear_error(free_tcp_port):
    address = f"tcp://127.0.0.1:{free_tcp_port}"
    owner = transport.RepEndpoint(address, 1 << 20)
    with pytest.raises(transport.AddressInUse, match="cannot bind"):
        transport.RepEndpoint(address, 1 << 20)
    owner.close()


def test_oversized_message_is_dropped_and_server_keeps_serving(ipc_path):
    rep = transport.RepEndpoint(f"ipc://{ipc_path}", max_message_bytes=1000)
    big = transport.ReqClient(f"ipc://{ipc_path}", timeout_ms=200)
    with pytest.raises(transport.RequestTimeout):
        big.request(b"x" * 5000)
    assert rep.receive(100) is None
    small = transport.ReqClient(f"ipc://{ipc_path}", timeout_ms=2000)
    t = threading.Thread(target=lambda: (rep.receive(2000), rep.send(b"ok")))
    t.start()
    assert bytes(small.request(b"y" * 10)) == b"ok"
    t.join(5)
    for c in (big, small):
        c.close()
    rep.close()
    zmq.Context.instance()  # the shared context stays usable


def test_handshake_failure_is_named_at_once_not_after_the_timeout():
    """A TCP peer that closes every connection during the ZeroMQ handshake (here: not ZeroMQ at all).
    The REQ socket alone would wait silently for the whole timeout; the monitor names it at once."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    stop = threading.Event()

    def answer_like_http():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except (socket.timeout, OSError):
                continue
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            conn.close()

    t = threading.Thread(target=answer_like_http, daemon=True)
    t.start()
    client = transport.ReqClient(f"tcp://127.0.0.1:{listener.getsockname()[1]}", timeout_ms=5000)
    try:
        start = time.monotonic()
        with pytest.raises(transport.HandshakeFailed, match="not a ZeroMQ server") as raised:
            client.request(b"x")
        elapsed = time.monotonic() - start
        assert isinstance(raised.value, transport.RequestTimeout)
        assert elapsed < 2.5, f"named after {elapsed:.1f} s: that is waiting for the 5 s timeout"
        assert client.reconnects == 1
    finally:
        client.close()
        stop.set()
        t.join(2)
        listener.close()


def test_curve_needs_tcp(ipc_path):
    import zmq as _zmq

    public, secret = _zmq.curve_keypair()
    keys = transport.CurveClientKeys(public, secret, public)
    with pytest.raises(ValueError, match="tcp://"):
        transport.ReqClient(f"ipc://{ipc_path}", 100, curve=keys)
    with pytest.raises(ValueError, match="tcp://"):
        transport.RepEndpoint(f"ipc://{ipc_path}", 1 << 20,
                              curve=transport.CurveServerKeys(public, secret, frozenset(), "/nowhere"))
    assert not os.path.exists(ipc_path)

"""ZeroMQ REQ/REP endpoints and the IPC socket-file lifecycle.

The server's REP endpoint never blocks unless asked to; the client's REQ socket is
closed (linger 0) and recreated after a timeout, because a REQ socket that missed its
reply is stuck in the wrong state forever.

Size limit: ZMQ_MAXMSGSIZE = `max_message_bytes`. ZeroMQ drops a larger message without
delivering it and closes that peer's connection, silently; a REQ client without a
receive timeout (Isaac-GR00T's PolicyClient) then waits forever. A socket monitor on
the REP socket sees each closed connection, and the endpoint logs it with the limit, so
a drop never goes unseen (docs/wire.md: "Message size limit" has the arithmetic).

CurveZMQ (TCP only, opt-in; keys, allow-list and handshake messages in curve.py): ZeroMQ's
handshake failures are silent to a REQ socket, so the client monitors its socket and turns
them into a `HandshakeFailed` that names the likely cause at once; the server logs every
refused peer (rate-limited) and keeps serving the others.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import stat
import time

import zmq
from zmq.utils.monitor import recv_monitor_message

from alfie_gr00t.wire import curve as _curve
# The key names stay importable from here, where the callers found them first.
from alfie_gr00t.wire.curve import (ZAP_DOMAIN, CurveClientKeys, CurveServerKeys, KeyFileError,  # noqa: F401
                                    check_public_path, check_secret_file, load_client_keys, load_server_keys)

log = logging.getLogger("alfie_gr00t.wire.transport")

_HANDSHAKE_FAILED = (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                     | zmq.EVENT_HANDSHAKE_FAILED_AUTH)
_SETTLE_S = 0.4  # after a vague handshake failure, wait this long for a specific one (reconnects every ~0.1 s)


class AddressInUse(RuntimeError):
    """Another live server owns the address; we never steal it."""


class RequestTimeout(TimeoutError):
    """No reply within the timeout; the REQ socket has already been recreated."""


class HandshakeFailed(RequestTimeout):
    """ZeroMQ refused the connection during its handshake (Curve keys, Curve vs plain); the message
    names the likely cause. A RequestTimeout too: the REQ socket has already been recreated."""


def endpoint_address(transport: str, ipc_path: str, host: str, port: int) -> str:
    if transport == "ipc":
        if not ipc_path:
            raise ValueError("transport 'ipc' needs a non-empty ipc_path")
        return f"ipc://{ipc_path}"
    if transport == "tcp":
        if not 0 < int(port) < 65536:
            raise ValueError(f"port must be 1..65535, got {port}")
        return f"tcp://{host}:{int(port)}"
    raise ValueError(f"transport must be 'ipc' or 'tcp', got {transport!r}")


def is_loopback_host(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # '*', '0.0.0.0'-like names or interfaces: reachable beyond loopback


def ipc_path_of(address: str) -> str | None:
    return address[len("ipc://"):] if address.startswith("ipc://") else None


def ipc_path_is_live(path: str) -> bool:
    """True when something accepts connections on the Unix socket at `path`."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(0.5)
    try:
        probe.connect(path)
        return True
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except OSError:
        return False
    finally:
        probe.close()


def claim_ipc_path(path: str) -> None:
    """Make `path` free for binding: remove a dead server's file, refuse a live one."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise AddressInUse(f"{path} exists and is not a socket; refusing to remove it")
    if ipc_path_is_live(path):
        raise AddressInUse(f"another server is live on ipc://{path}; stop it or choose another ipc_path")
    os.unlink(path)


def _close_with_monitor(socket, monitor) -> None:
    """Close a socket and the monitor watching it (linger 0), the monitor first."""
    if monitor is not None:
        try:
            socket.disable_monitor()
        except zmq.ZMQError:  # the socket is already going away
            pass
        monitor.close(0)
    socket.close(0)


class RepEndpoint:
    """The server's bound REP socket. One recv is always followed by exactly one send.

    With `curve` (TCP only) it owns a private ZeroMQ context whose ZAP handler (pyzmq's
    ThreadAuthenticator) allows only `curve.allowed_clients`; the socket enforces the ZAP domain,
    so a missing handler refuses every client instead of allowing them."""

    def __init__(self, address: str, max_message_bytes: int, ipc_mode: int = 0o660,
                 context: zmq.Context | None = None, curve: CurveServerKeys | None = None):
        self.address = address
        self.max_message_bytes = int(max_message_bytes)
        self.dropped_connections = 0  # closed by the peer, or by ZeroMQ after a message over the limit
        self.refused_handshakes = 0  # Curve/plain mismatches, wrong keys, unknown clients
        self.multipart_requests = 0  # requests sent in more than one ZeroMQ frame (each refused)
        self.last_parts = 1  # frames of the request `receive` returned last
        self.curve = curve
        self._ipc_path = ipc_path_of(address)
        self._ipc_inode = None
        self._zap = None
        self._allow_list = None
        self._refusals = _curve.RefusalLog()
        self._pending_disconnects = 0  # the DISCONNECTED that follows each failed handshake
        if curve is not None and not address.startswith("tcp://"):
            raise ValueError(f"CurveZMQ needs a tcp:// address, got {address}")
        if curve is not None:
            self._zap = _curve.ZapHandler(curve, address)
            self._context, self._allow_list = self._zap.context, self._zap.allow_list
        else:
            self._context = context or zmq.Context.instance()
        if self._ipc_path:
            claim_ipc_path(self._ipc_path)
        self._socket = self._context.socket(zmq.REP)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes)
        self._socket.setsockopt(zmq.RCVHWM, 4)  # bound what a flooding peer can queue in our memory
        if curve is not None:
            _curve.serve_curve(self._socket, curve)
        try:
            self._socket.bind(address)
        except zmq.ZMQError as exc:
            self._socket.close(0)
            self._stop_auth()
            raise AddressInUse(f"cannot bind {address}: {exc}") from None
        if self._ipc_path:
            os.chmod(self._ipc_path, ipc_mode)
            self._ipc_inode = os.stat(self._ipc_path).st_ino
        events = zmq.EVENT_DISCONNECTED | (_HANDSHAKE_FAILED if address.startswith("tcp://") else 0)
        self._monitor = self._socket.get_monitor_socket(events)
        self._poller = zmq.Poller()
        self._poller.register(self._socket, zmq.POLLIN)

    @property
    def refused_keys(self) -> int:
        """Handshakes the ZAP allow-list refused (unknown client keys)."""
        return self._allow_list.refused if self._allow_list is not None else 0

    def receive(self, timeout_ms: int = 0):
        """The next request as a buffer, or None if none arrives within `timeout_ms` (0 = don't wait).

        A request sent in several ZeroMQ frames is read whole (REP can send its reply only after the
        last frame); its first frame is returned and `last_parts` says how many there were, so the
        caller can refuse it (serve_pending does)."""
        self._log_disconnects()
        self.last_parts = 1
        if timeout_ms == 0:
            try:
                frame = self._socket.recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return None
        else:
            if not self._poller.poll(timeout_ms):
                self._log_disconnects()
                return None
            frame = self._socket.recv(copy=False)
        while self._socket.getsockopt(zmq.RCVMORE):  # the rest of the message is already here (atomic)
            self._socket.recv(copy=False)
            self.last_parts += 1
        if self.last_parts > 1:
            self.multipart_requests += 1
            self._report_refused("a request in several ZeroMQ frames (refused with an error reply)")
        return frame.buffer

    def _log_disconnects(self) -> None:
        while self._monitor is not None and self._monitor.poll(0):
            event = recv_monitor_message(self._monitor)
            if event["event"] & _HANDSHAKE_FAILED:
                self.refused_handshakes += 1
                self._pending_disconnects += 1
                self._report_refused(_curve.server_handshake_message(event["event"], event["value"],
                                                                     self.curve is not None))
                continue
            if event["event"] != zmq.EVENT_DISCONNECTED:
                continue
            if self._pending_disconnects:
                self._pending_disconnects -= 1  # the close of a refused handshake, already logged
                continue
            self.dropped_connections += 1
            # INFO, not WARNING: every client that stops closes its connection too; ZeroMQ gives the
            # two cases the same event, so the line names both.
            log.info("connection on %s closed: the peer went away, or it sent a message over max_message_bytes="
                        "%d, which ZeroMQ drops without delivering it (that client gets no reply; one without a "
                        "receive timeout waits forever): raise max_message_bytes or send smaller batches",
                        self.address, self.max_message_bytes)

    def _report_refused(self, reason: str) -> None:
        """One warning per kind of refusal, rate-limited (curve.RefusalLog)."""
        report = self._refusals.due(reason)
        if report is not None:
            log.warning("refused a peer on %s: %s (%d time(s) since the last report); still serving the others",
                        self.address, report[0], report[1])

    def send(self, payload: bytes) -> None:
        self._socket.send(payload, copy=len(payload) < 65536)

    def _stop_auth(self) -> None:
        zap, self._zap = self._zap, None
        if zap is not None:
            zap.stop()

    def close(self) -> None:
        """Close the socket and remove our own IPC file (never a file another server re-created)."""
        _close_with_monitor(self._socket, self._monitor)
        self._monitor = None
        self._stop_auth()
        if self._ipc_path and self._ipc_inode is not None:
            try:
                if os.stat(self._ipc_path).st_ino == self._ipc_inode:
                    os.unlink(self._ipc_path)
            except FileNotFoundError:
                pass
            self._ipc_inode = None


class ReqClient:
    """A REQ socket with a per-request timeout; recreated after every timeout or send failure.

    On TCP a socket monitor watches the handshake: a failure (Curve keys, Curve against plain)
    ends the request at once with HandshakeFailed naming the likely cause, instead of a silent
    wait for the whole timeout."""

    def __init__(self, address: str, timeout_ms: int, max_reply_bytes: int = 16 << 20,
                 context: zmq.Context | None = None, curve: CurveClientKeys | None = None):
        if curve is not None and not address.startswith("tcp://"):
            raise ValueError(f"CurveZMQ needs a tcp:// address, got {address}")
        self.address = address
        self.timeout_ms = int(timeout_ms)
        self.curve = curve
        self._max_reply_bytes = int(max_reply_bytes)
        self._context = context or zmq.Context.instance()
        self._socket = None
        self._monitor = None
        self._poller = None
        self.reconnects = 0

    def _open(self) -> zmq.Socket:
        sock = self._context.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, self._max_reply_bytes)
        if self.curve is not None:
            _curve.use_curve(sock, self.curve)
        self._poller = zmq.Poller()
        self._poller.register(sock, zmq.POLLIN)
        if self.address.startswith("tcp://"):
            self._monitor = sock.get_monitor_socket(_HANDSHAKE_FAILED)
            self._poller.register(self._monitor, zmq.POLLIN)
        sock.connect(self.address)
        return sock

    def request(self, payload: bytes, timeout_ms: int | None = None):
        """Send one request and wait for its reply (a buffer); RequestTimeout when none comes,
        HandshakeFailed (a RequestTimeout) as soon as the handshake is refused."""
        if self._socket is None:
            self._socket = self._open()
        timeout = self.timeout_ms if timeout_ms is None else int(timeout_ms)
        deadline = time.monotonic() + timeout / 1000.0
        failure, settle_until = None, None
        try:
            self._socket.send(payload, copy=len(payload) < 65536)
            while True:
                now = time.monotonic()
                until = deadline if settle_until is None else min(deadline, settle_until)
                ready = dict(self._poller.poll(max(0, int((until - now) * 1000.0 + 0.999))))
                if self._socket in ready:
                    return self._socket.recv(copy=False).buffer
                if self._monitor is not None and self._monitor in ready:
                    while self._monitor.poll(0):
                        event = recv_monitor_message(self._monitor)
                        failure = _curve.client_handshake_message(self.address, event["event"], event["value"],
                                                                   self.curve)
                        if (event["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH
                                or event["value"] == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH):
                            settle_until = now  # specific: report it now
                            break
                        if settle_until is None:  # vague (NO_DETAIL): a retry may say more
                            settle_until = now + _SETTLE_S
                if time.monotonic() >= (deadline if settle_until is None else min(deadline, settle_until)):
                    break
        except zmq.ZMQError:
            pass
        self.reset()
        if failure is not None:
            raise HandshakeFailed(failure)
        raise RequestTimeout(f"no reply from {self.address} within {timeout} ms")

    def _close_socket(self) -> None:
        _close_with_monitor(self._socket, self._monitor)
        self._monitor = None
        self._socket = None
        self._poller = None

    def reset(self) -> None:
        if self._socket is not None:
            self._close_socket()
            self.reconnects += 1

    def close(self) -> None:
        if self._socket is not None:
            self._close_socket()

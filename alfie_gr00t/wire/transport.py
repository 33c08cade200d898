"""ZeroMQ REQ/REP endpoints and the IPC socket-file lifecycle.

The server's REP endpoint never blocks unless asked to; the client's REQ socket is
closed (linger 0) and recreated after a timeout, because a REQ socket that missed its
reply is stuck in the wrong state forever.

Size limit: ZMQ_MAXMSGSIZE = `max_message_bytes`. ZeroMQ drops a larger message without
delivering it and closes that peer's connection, silently; a REQ client without a
receive timeout (Isaac-GR00T's PolicyClient) then waits forever. A socket monitor on
the REP socket sees each closed connection, and the endpoint logs it with the limit, so
a drop never goes unseen (README: "Message size limit" has the arithmetic).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import stat

import zmq
from zmq.utils.monitor import recv_monitor_message

log = logging.getLogger("alfie_gr00t.wire.transport")


class AddressInUse(RuntimeError):
    """Another live server owns the address; we never steal it."""


class RequestTimeout(TimeoutError):
    """No reply within the timeout; the REQ socket has already been recreated."""


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


class RepEndpoint:
    """The server's bound REP socket. One recv is always followed by exactly one send."""

    def __init__(self, address: str, max_message_bytes: int, ipc_mode: int = 0o660,
                 context: zmq.Context | None = None):
        self.address = address
        self.max_message_bytes = int(max_message_bytes)
        self.dropped_connections = 0  # closed by the peer, or by ZeroMQ after a message over the limit
        self._context = context or zmq.Context.instance()
        self._ipc_path = ipc_path_of(address)
        self._ipc_inode = None
        if self._ipc_path:
            claim_ipc_path(self._ipc_path)
        self._socket = self._context.socket(zmq.REP)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes)
        self._socket.setsockopt(zmq.RCVHWM, 4)  # bound what a flooding peer can queue in our memory
        try:
            self._socket.bind(address)
        except zmq.ZMQError as exc:
            self._socket.close(0)
            raise AddressInUse(f"cannot bind {address}: {exc}") from None
        if self._ipc_path:
            os.chmod(self._ipc_path, ipc_mode)
            self._ipc_inode = os.stat(self._ipc_path).st_ino
        self._monitor = self._socket.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        self._poller = zmq.Poller()
        self._poller.register(self._socket, zmq.POLLIN)

    def receive(self, timeout_ms: int = 0):
        """The next request as a buffer, or None if none arrives within `timeout_ms` (0 = don't wait)."""
        self._log_disconnects()
        if timeout_ms == 0:
            try:
                return self._socket.recv(zmq.NOBLOCK, copy=False).buffer
            except zmq.Again:
                return None
        if not self._poller.poll(timeout_ms):
            self._log_disconnects()
            return None
        return self._socket.recv(copy=False).buffer

    def _log_disconnects(self) -> None:
        while self._monitor is not None and self._monitor.poll(0):
            event = recv_monitor_message(self._monitor)
            if event["event"] != zmq.EVENT_DISCONNECTED:
                continue
            self.dropped_connections += 1
            # INFO, not WARNING: every client that stops closes its connection too; ZeroMQ gives the
            # two cases the same event, so the line names both.
            log.info("connection on %s closed: the peer went away, or it sent a message over max_message_bytes="
                        "%d, which ZeroMQ drops without delivering it (that client gets no reply; one without a "
                        "receive timeout waits forever): raise max_message_bytes or send smaller batches",
                        self.address, self.max_message_bytes)

    def send(self, payload: bytes) -> None:
        self._socket.send(payload, copy=len(payload) < 65536)

    def close(self) -> None:
        """Close the socket and remove our own IPC file (never a file another server re-created)."""
        if self._monitor is not None:
            self._socket.disable_monitor()
            self._monitor.close(0)
            self._monitor = None
        self._socket.close(0)
        if self._ipc_path and self._ipc_inode is not None:
            try:
                if os.stat(self._ipc_path).st_ino == self._ipc_inode:
                    os.unlink(self._ipc_path)
            except FileNotFoundError:
                pass
            self._ipc_inode = None


class ReqClient:
    """A REQ socket with a per-request timeout; recreated after every timeout or send failure."""

    def __init__(self, address: str, timeout_ms: int, max_reply_bytes: int = 16 << 20,
                 context: zmq.Context | None = None):
        self.address = address
        self.timeout_ms = int(timeout_ms)
        self._max_reply_bytes = int(max_reply_bytes)
        self._context = context or zmq.Context.instance()
        self._socket = None
        self.reconnects = 0

    def _open(self) -> zmq.Socket:
        sock = self._context.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, self._max_reply_bytes)
        sock.connect(self.address)
        return sock

    def request(self, payload: bytes, timeout_ms: int | None = None):
        """Send one request and wait for its reply (a buffer); RequestTimeout when none comes."""
        if self._socket is None:
            self._socket = self._open()
        timeout = self.timeout_ms if timeout_ms is None else int(timeout_ms)
        try:
            self._socket.send(payload, copy=len(payload) < 65536)
            if self._socket.poll(timeout, zmq.POLLIN):
                return self._socket.recv(copy=False).buffer
        except zmq.ZMQError:
            pass
        self.reset()
        raise RequestTimeout(f"no reply from {self.address} within {timeout} ms")

    def reset(self) -> None:
        if self._socket is not None:
            self._socket.close(0)
            self._socket = None
            self.reconnects += 1

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close(0)
            self._socket = None

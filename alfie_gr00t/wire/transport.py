"""ZeroMQ REQ/REP endpoints, CurveZMQ keys and the IPC socket-file lifecycle.

The server's REP endpoint never blocks unless asked to; the client's REQ socket is
closed (linger 0) and recreated after a timeout, because a REQ socket that missed its
reply is stuck in the wrong state forever.

Size limit: ZMQ_MAXMSGSIZE = `max_message_bytes`. ZeroMQ drops a larger message without
delivering it and closes that peer's connection, silently; a REQ client without a
receive timeout (Isaac-GR00T's PolicyClient) then waits forever. A socket monitor on
the REP socket sees each closed connection, and the endpoint logs it with the limit, so
a drop never goes unseen (docs/wire.md: "Message size limit" has the arithmetic).

CurveZMQ (TCP only, opt-in; docs/remote-gpu.md): the server holds a secret certificate and
a directory of allowed client public certificates (a ZAP allow-list, fail closed: a
missing ZAP handler refuses everyone); the client holds its own secret certificate and
pins the server's public one. Certificates are ZeroMQ's own format (zmq.auth). ZeroMQ's
handshake failures are silent to a REQ socket, so the client monitors its socket and
turns them into a `HandshakeFailed` that names the likely cause at once; the server
logs every refused peer (rate-limited) and keeps serving the others.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import stat
import time
from dataclasses import dataclass

import zmq
from zmq.utils.monitor import recv_monitor_message

log = logging.getLogger("alfie_gr00t.wire.transport")

ZAP_DOMAIN = "alfie_gr00t"  # every Curve REP socket asks the ZAP handler for this domain (enforced)
_HANDSHAKE_FAILED = (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                     | zmq.EVENT_HANDSHAKE_FAILED_AUTH)
_SETTLE_S = 0.4  # after a vague handshake failure, wait this long for a specific one (reconnects every ~0.1 s)
_REPORT_EVERY_S = 10.0  # the server logs each kind of refused peer at most this often (with a count)
_MAX_TRACKED_KEYS = 256  # refused client keys logged one by one; more distinct keys are counted together
_OTHER_KEYS = b"(other keys)"


class AddressInUse(RuntimeError):
    """Another live server owns the address; we never steal it."""


class RequestTimeout(TimeoutError):
    """No reply within the timeout; the REQ socket has already been recreated."""


class HandshakeFailed(RequestTimeout):
    """ZeroMQ refused the connection during its handshake (Curve keys, Curve vs plain); the message
    names the likely cause. A RequestTimeout too: the REQ socket has already been recreated."""


class KeyFileError(ValueError):
    """A CurveZMQ certificate is missing, malformed, the wrong kind, or readable/writable by others."""


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


# -- CurveZMQ certificates --------------------------------------------------------------------------
@dataclass(frozen=True)
class CurveServerKeys:
    """The server's key pair (Z85) and the allowed client public keys (Z85), loaded and checked."""

    public: bytes
    secret: bytes
    allowed_clients: frozenset
    allowed_dir: str


@dataclass(frozen=True)
class CurveClientKeys:
    """The client's key pair (Z85) and the pinned server public key (Z85)."""

    public: bytes
    secret: bytes
    server_public: bytes
    server_key_path: str = ""


def _stat_or_fail(path: str, what: str) -> os.stat_result:
    try:
        return os.stat(path)
    except OSError as exc:
        raise KeyFileError(f"{what} {path}: {exc.strerror}") from None


def check_secret_file(path: str, what: str = "curve_secret_key") -> None:
    """A secret certificate must be a regular file that only its owner can read or write (0600/0400)."""
    info = _stat_or_fail(path, what)
    if not stat.S_ISREG(info.st_mode):
        raise KeyFileError(f"{what} {path} is not a regular file")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise KeyFileError(f"{what} {path} has mode {mode:04o}: a secret certificate must be readable by its owner "
                           f"only (chmod 600 {path})")


def check_public_path(path: str, what: str) -> None:
    """A public certificate (or the allow-list directory) must not be writable by group or others: whoever can
    write it can swap the pinned server key or add a client."""
    info = _stat_or_fail(path, what)
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o022:
        raise KeyFileError(f"{what} {path} has mode {mode:04o}: writable by group or others, so anyone on this "
                           f"host could replace or add keys (chmod go-w {path})")


def _load_certificate(path: str, what: str):
    import zmq.auth

    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"{what} {path} is not a ZeroMQ certificate ({exc}); create one with groot_keys") from None
    for key in (public, secret):
        if key is not None and len(key) != 40:
            raise KeyFileError(f"{what} {path}: a Z85 Curve key is 40 characters, found {len(key)}")
    return public, secret


def load_server_keys(secret_key_path: str, allowed_clients_dir: str) -> CurveServerKeys:
    """The server's secret certificate and its allow-list, with the permission checks (clear errors)."""
    check_secret_file(secret_key_path, "curve_secret_key")
    public, secret = _load_certificate(secret_key_path, "curve_secret_key")
    if secret is None:
        raise KeyFileError(f"curve_secret_key {secret_key_path} holds no secret-key: give the .key_secret file")
    if not os.path.isdir(allowed_clients_dir):
        raise KeyFileError(f"curve_allowed_clients {allowed_clients_dir} is not a directory")
    check_public_path(allowed_clients_dir, "curve_allowed_clients")
    allowed = set()
    for name in sorted(os.listdir(allowed_clients_dir)):
        if not name.endswith(".key"):
            continue  # czmq's convention, as zmq.auth.load_certificates: public certificates are *.key
        path = os.path.join(allowed_clients_dir, name)
        check_public_path(path, "allowed client certificate")
        client_public, client_secret = _load_certificate(path, "allowed client certificate")
        if client_secret is not None:
            raise KeyFileError(f"allowed client certificate {path} holds a secret key: copy the client's public "
                               ".key file, never its .key_secret")
        allowed.add(client_public)
    return CurveServerKeys(public, secret, frozenset(allowed), allowed_clients_dir)


def load_client_keys(secret_key_path: str, server_key_path: str) -> CurveClientKeys:
    """The client's secret certificate and the server's pinned public certificate."""
    check_secret_file(secret_key_path, "curve_secret_key")
    public, secret = _load_certificate(secret_key_path, "curve_secret_key")
    if secret is None:
        raise KeyFileError(f"curve_secret_key {secret_key_path} holds no secret-key: give the .key_secret file")
    check_public_path(server_key_path, "curve_server_key")
    server_public, server_secret = _load_certificate(server_key_path, "curve_server_key")
    if server_secret is not None:
        raise KeyFileError(f"curve_server_key {server_key_path} holds the server's SECRET key: give the server's "
                           "public .key file; the secret one must never leave the server")
    return CurveClientKeys(public, secret, server_public, server_key_path)


class _AllowList:
    """pyzmq's ZAP credentials provider: allows the keys loaded at start, logs every refused one."""

    def __init__(self, keys: CurveServerKeys, address: str):
        self._keys = keys
        self._address = address
        self._refused: dict[bytes, list] = {}  # key -> [last report time, refusals since]
        self.refused = 0

    def callback(self, domain, key: bytes) -> bool:
        if key in self._keys.allowed_clients:
            return True
        self.refused += 1
        now = time.monotonic()
        slot = key
        if key not in self._refused and len(self._refused) >= _MAX_TRACKED_KEYS:
            # a fresh key per handshake costs a client nothing: keep only the keys reported recently,
            # and count the rest together (one table entry, one rate-limited line)
            self._refused = {k: v for k, v in self._refused.items() if now - v[0] < _REPORT_EVERY_S}
            if len(self._refused) >= _MAX_TRACKED_KEYS:
                slot = _OTHER_KEYS
        seen = self._refused.setdefault(slot, [-_REPORT_EVERY_S, 0])
        seen[1] += 1
        if now - seen[0] >= _REPORT_EVERY_S:
            if slot is _OTHER_KEYS:
                log.warning("refused %d CurveZMQ client(s) on %s with keys not in curve_allowed_clients=%s since "
                            "the last report, too many distinct keys to name each (the latest: %s)", seen[1],
                            self._address, self._keys.allowed_dir, key.decode("ascii", "replace"))
            else:
                log.warning("refused a CurveZMQ client on %s: public key %s is not in curve_allowed_clients=%s "
                            "(%d refusal(s) of this key since the last report); to allow it, copy its .key file "
                            "there and restart the server", self._address, key.decode("ascii", "replace"),
                            self._keys.allowed_dir, seen[1])
            seen[0], seen[1] = now, 0
        return False


def _handshake_server_message(event: int, value: int, curve: bool) -> str:
    """What a failed handshake on the server side most likely means (measured with libzmq 4.3.5)."""
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        return f"ZAP refused the client's key (status {value}; the key is logged above)"
    if value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
        return ("security mechanism mismatch: a CurveZMQ client on this plain port" if not curve
                else "security mechanism mismatch: a plain client on this CurveZMQ port")
    if curve and value == zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC:
        return "cryptographic error: the client's curve_server_key is not this server's public key"
    if curve:
        return ("the client closed the connection during the handshake: most likely a plain client (e.g. an "
                "upstream Isaac-GR00T PolicyClient; it has no Curve) on this CurveZMQ port")
    return f"handshake failed (event {event}, value {value})"


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
        self._auth = None
        self._own_context = None
        self._allow_list = None
        self._reported: dict[str, list] = {}
        self._pending_disconnects = 0  # the DISCONNECTED that follows each failed handshake
        if curve is not None and not address.startswith("tcp://"):
            raise ValueError(f"CurveZMQ needs a tcp:// address, got {address}")
        if curve is not None:
            from zmq.auth.thread import ThreadAuthenticator

            self._own_context = zmq.Context()  # one ZAP handler per context: never share it with other sockets
            self._context = self._own_context
            self._allow_list = _AllowList(curve, address)
            self._auth = ThreadAuthenticator(self._own_context, log=logging.getLogger("alfie_gr00t.wire.zap"))
            self._auth.start()
            self._auth.configure_curve_callback(ZAP_DOMAIN, self._allow_list)
        else:
            self._context = context or zmq.Context.instance()
        if self._ipc_path:
            claim_ipc_path(self._ipc_path)
        self._socket = self._context.socket(zmq.REP)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes)
        self._socket.setsockopt(zmq.RCVHWM, 4)  # bound what a flooding peer can queue in our memory
        if curve is not None:
            self._socket.curve_secretkey = curve.secret
            self._socket.curve_publickey = curve.public
            self._socket.curve_server = True
            self._socket.zap_domain = ZAP_DOMAIN.encode()
            self._socket.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)  # no ZAP handler -> refuse, never allow
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
                self._report_refused(_handshake_server_message(event["event"], event["value"], self.curve is not None))
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
        """One warning per kind of refusal at most every _REPORT_EVERY_S (a refused client retries ~10x/s)."""
        now = time.monotonic()
        seen = self._reported.setdefault(reason, [-_REPORT_EVERY_S, 0])
        seen[1] += 1
        if now - seen[0] >= _REPORT_EVERY_S:
            log.warning("refused a peer on %s: %s (%d time(s) since the last report); still serving the others",
                        self.address, reason, seen[1])
            seen[0], seen[1] = now, 0

    def send(self, payload: bytes) -> None:
        self._socket.send(payload, copy=len(payload) < 65536)

    def _stop_auth(self) -> None:
        """Stop the ZAP thread (bounded: ThreadAuthenticator.stop() joins without a timeout) and end our
        private context; a ZAP thread that does not stop is left to process exit, never waited on forever."""
        from zmq.auth import Authenticator

        auth, self._auth = self._auth, None
        stopped = True
        if auth is not None and auth.pipe is not None:
            auth.pipe.send(b"TERMINATE")
            if auth.thread is not None:
                auth.thread.join(timeout=5.0)
                stopped = not auth.thread.is_alive()
            if stopped:  # what ThreadAuthenticator.stop() does after its join (its second TERMINATE would block)
                auth.pipe.close()
                auth.pipe, auth.thread = None, None
                Authenticator.stop(auth)  # closes the ZAP socket
            else:
                auth.pipe = None  # its __del__ must not wait on the thread either
                log.warning("ZAP handler of %s did not stop; its context is left to process exit", self.address)
        context, self._own_context = self._own_context, None
        if context is not None and stopped:
            context.destroy(linger=0)  # term() would wait forever on any socket still open in it

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


def _handshake_client_message(address: str, event: int, value: int, curve: CurveClientKeys | None) -> str:
    """What a failed handshake seen by the client most likely means (each case measured, libzmq 4.3.5:
    unknown client key -> AUTH 400; plain client on a Curve port -> PROTOCOL mechanism mismatch; wrong
    curve_server_key -> NO_DETAIL; Curve client on a plain port -> NO_DETAIL or mechanism mismatch)."""
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        key = f" {curve.public.decode('ascii', 'replace')}" if curve is not None else ""
        return (f"{address} refused this client's CurveZMQ public key{key} (ZAP status {value}): copy this "
                "client's public .key file (beside its curve_secret_key) into the server's curve_allowed_clients "
                "directory and restart the server")
    if value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
        if curve is not None:
            return (f"{address} does not use CurveZMQ (security mechanism mismatch) but this client has "
                    "curve_server_key set: enable Curve on the server (curve_secret_key, curve_allowed_clients) or "
                    "clear curve_secret_key/curve_server_key here")
        return (f"{address} requires CurveZMQ (security mechanism mismatch): set curve_secret_key and "
                "curve_server_key (create them with groot_keys client DIR)")
    if curve is not None:
        return (f"CurveZMQ handshake with {address} failed (the server closed the connection): curve_server_key="
                f"{curve.server_key_path or curve.server_public.decode('ascii', 'replace')} is most likely not the "
                "public key of that server's curve_secret_key (or the server does not use Curve)")
    return (f"ZeroMQ handshake with {address} failed (the server closed the connection): it most likely "
            "requires CurveZMQ: set curve_secret_key and curve_server_key (create them with groot_keys client DIR); "
            "or it is not a ZeroMQ server at all (wrong port?)")


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
            sock.curve_secretkey = self.curve.secret
            sock.curve_publickey = self.curve.public
            sock.curve_serverkey = self.curve.server_public
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
                        failure = _handshake_client_message(self.address, event["event"], event["value"], self.curve)
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

"""CurveZMQ: certificates and their permissions, the server's allow-list, what a failed handshake means.

TCP only, opt-in (docs/remote-gpu.md). The server holds a secret certificate and a directory of
allowed client public certificates (a ZAP allow-list, fail closed: a missing ZAP handler refuses
everyone); the client holds its own secret certificate and pins the server's public one.
Certificates are ZeroMQ's own format (zmq.auth). The sockets themselves are in transport.py.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from dataclasses import dataclass

import zmq

log = logging.getLogger("alfie_gr00t.wire.transport")  # one logger for the wire's sockets and their keys

ZAP_DOMAIN = "alfie_gr00t"  # every Curve REP socket asks the ZAP handler for this domain (enforced)
REPORT_EVERY_S = 10.0  # the server logs each kind of refused peer at most this often (with a count)
MAX_TRACKED_KINDS = 256  # refused client keys logged one by one; more distinct keys are counted together


class KeyFileError(ValueError):
    """A CurveZMQ certificate is missing, malformed, the wrong kind, or readable/writable by others."""


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


# -- certificates and their permissions --------------------------------------------------------------
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


def _load_own_pair(secret_key_path: str) -> tuple[bytes, bytes]:
    check_secret_file(secret_key_path, "curve_secret_key")
    public, secret = _load_certificate(secret_key_path, "curve_secret_key")
    if secret is None:
        raise KeyFileError(f"curve_secret_key {secret_key_path} holds no secret-key: give the .key_secret file")
    return public, secret


def load_server_keys(secret_key_path: str, allowed_clients_dir: str) -> CurveServerKeys:
    """The server's secret certificate and its allow-list, with the permission checks (clear errors)."""
    public, secret = _load_own_pair(secret_key_path)
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
    public, secret = _load_own_pair(secret_key_path)
    check_public_path(server_key_path, "curve_server_key")
    server_public, server_secret = _load_certificate(server_key_path, "curve_server_key")
    if server_secret is not None:
        raise KeyFileError(f"curve_server_key {server_key_path} holds the server's SECRET key: give the server's "
                           "public .key file; the secret one must never leave the server")
    return CurveClientKeys(public, secret, server_public, server_key_path)


# -- the sockets' Curve options ----------------------------------------------------------------------
def serve_curve(sock: zmq.Socket, keys: CurveServerKeys) -> None:
    """A REP socket as a Curve server that asks the ZAP handler for ZAP_DOMAIN: no handler -> refuse, never allow."""
    sock.curve_secretkey = keys.secret
    sock.curve_publickey = keys.public
    sock.curve_server = True
    sock.zap_domain = ZAP_DOMAIN.encode()
    sock.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)


def use_curve(sock: zmq.Socket, keys: CurveClientKeys) -> None:
    """A REQ socket as a Curve client pinned to the server's public key."""
    sock.curve_secretkey = keys.secret
    sock.curve_publickey = keys.public
    sock.curve_serverkey = keys.server_public


# -- refused peers, reported without flooding the log ------------------------------------------------
class RefusalLog:
    """Counts refusals per kind (a client key, a reason) and says when a kind is due for its log line:
    at most one every `every_s` a kind, since a refused client retries about ten times a second. A fresh
    key per handshake costs a client nothing, so at most `max_kinds` kinds are kept: those reported
    recently; the rest are counted together under OTHER (one entry, one rate-limited line)."""

    OTHER = "(other kinds)"

    def __init__(self, every_s: float = REPORT_EVERY_S, max_kinds: int = MAX_TRACKED_KINDS):
        self.every_s, self.max_kinds = every_s, max_kinds
        self._seen: dict = {}  # kind -> [last report time, refusals since]

    def due(self, kind):
        """Count one refusal of `kind`; (the kind it was counted under, refusals since the last report)
        when a line is due, else None."""
        now = time.monotonic()
        if kind not in self._seen and len(self._seen) >= self.max_kinds:
            self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self.every_s}
            if len(self._seen) >= self.max_kinds:
                kind = self.OTHER
        seen = self._seen.setdefault(kind, [-self.every_s, 0])
        seen[1] += 1
        if now - seen[0] < self.every_s:
            return None
        count, seen[0], seen[1] = seen[1], now, 0
        return kind, count


class AllowList:
    """pyzmq's ZAP credentials provider: allows the keys loaded at start, logs every refused one."""

    def __init__(self, keys: CurveServerKeys, address: str):
        self._keys = keys
        self._address = address
        self._log = RefusalLog()
        self.refused = 0

    def callback(self, domain, key: bytes) -> bool:
        if key in self._keys.allowed_clients:
            return True
        self.refused += 1
        report = self._log.due(key)
        if report is None:
            return False
        kind, count = report
        if kind is RefusalLog.OTHER:
            log.warning("refused %d CurveZMQ client(s) on %s with keys not in curve_allowed_clients=%s since "
                        "the last report, too many distinct keys to name each (the latest: %s)", count,
                        self._address, self._keys.allowed_dir, key.decode("ascii", "replace"))
        else:
            log.warning("refused a CurveZMQ client on %s: public key %s is not in curve_allowed_clients=%s "
                        "(%d refusal(s) of this key since the last report); to allow it, copy its .key file "
                        "there and restart the server", self._address, key.decode("ascii", "replace"),
                        self._keys.allowed_dir, count)
        return False


class ZapHandler:
    """pyzmq's ThreadAuthenticator on a private context (one ZAP handler per context: never share it with
    other sockets), allowing only the allow-list's keys."""

    def __init__(self, keys: CurveServerKeys, address: str):
        from zmq.auth.thread import ThreadAuthenticator

        self.address = address
        self.context = zmq.Context()
        self.allow_list = AllowList(keys, address)
        self._auth = ThreadAuthenticator(self.context, log=logging.getLogger("alfie_gr00t.wire.zap"))
        self._auth.start()
        self._auth.configure_curve_callback(ZAP_DOMAIN, self.allow_list)

    def stop(self) -> None:
        """Stop the ZAP thread (bounded: ThreadAuthenticator.stop() joins without a timeout) and end the
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
        context, self.context = self.context, None
        if context is not None and stopped:
            context.destroy(linger=0)  # term() would wait forever on any socket still open in it


# -- what a failed handshake means (each case measured with libzmq 4.3.5) ------------------------------
def server_handshake_message(event: int, value: int, curve: bool) -> str:
    """What a failed handshake on the server side most likely means."""
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


def client_handshake_message(address: str, event: int, value: int, curve: CurveClientKeys | None) -> str:
    """What a failed handshake seen by the client most likely means (unknown client key -> AUTH 400; plain
    client on a Curve port -> PROTOCOL mechanism mismatch; wrong curve_server_key -> NO_DETAIL; Curve client
    on a plain port -> NO_DETAIL or mechanism mismatch)."""
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

"""Test-side speaker of the Isaac-GR00T PolicyServer/PolicyClient wire format.

Written from upstream's documented behaviour (gr00t/policy/server_client.py and
gr00t/data/types.py in NVIDIA/Isaac-GR00T), independently of
``alfie_gr00t.wire.gr00t``, so tests can check our codec against it rather than
against itself. It does what upstream does, including its trust in the payload
(``np.load(..., allow_pickle=False)`` without further checks): use it only on data the
tests made.

Upstream behaviour mirrored here:

* Serialisation: ``msgpack.packb(obj, default=hook)`` (msgpack >= 1.0, so bin type on) and
  ``msgpack.unpackb(buf, object_hook=hook)`` with default options. Arrays go as
  ``{"__ndarray_class__": True, "as_npy": np.save bytes}``; ModalityConfig as
  ``{"__ModalityConfig_class__": True, "as_json": <dataclass fields, enums by member name>}``.
* Request: ``{"endpoint": name}`` plus ``"data": <kwargs map>`` only for endpoints that take
  input (get_action, reset) and ``"api_token"`` only when the client has a truthy token.
* Server: token mismatch -> ``{"error": "Unauthorized: Invalid API token"}``; missing endpoint
  means get_action; unknown endpoint or any exception -> ``{"error": str(exc)}``;
  ping -> ``{"status": "ok", "message": "Server is running"}``; kill -> nil reply, server
  stops after answering; get_action(observation=..., options=...) -> ``[action, info]``;
  reset(options=...) -> a map (``{}`` for Gr00tPolicy); get_modality_config -> map of
  ModalityConfig. A reply that is a map with an "error" key makes the client raise.

Generation N1.7 (upstream main since 2026-05, commit 626af89), selected with ``generation="n1.7"``:

* Serialisation: ``msgpack.packb(obj, default=hook)`` and ``msgpack.unpackb(buf, object_hook=hook,
  raw=False)``, the hooks chaining a pickle refusal, msgpack-numpy 0.4.8's encode/decode and the
  ModalityConfig hook. Arrays go as ``{b"nd": True, b"type": dtype.str, b"kind": b"", b"shape":
  shape, b"data": raw bytes}`` (keys bin), numpy scalars as ``{b"nd": False, b"type": ...,
  b"data": ...}``; an object-dtype array, or an envelope with ``b"kind"`` ``b"O"``, raises. Decoding
  builds ``np.ndarray(buffer=data, dtype=type, shape=shape)`` as msgpack-numpy does. ModalityConfig
  as ``{"__ModalityConfig__": True, "as_json": ...}``; this decoder knows only that marker and only
  msgpack-numpy arrays (N1.6's forms come back as plain maps), like the strictest N1.7 client.
"""

from __future__ import annotations

import enum
import io
import threading
from dataclasses import asdict, dataclass, is_dataclass
from typing import Any, Callable

import msgpack
import numpy as np
import zmq

ARRAY_TAG = "__ndarray_class__"
CONFIG_TAG = "__ModalityConfig_class__"
N17_CONFIG_TAG = "__ModalityConfig__"
N16, N17 = "n1.6", "n1.7"


# ----------------------------------------------------------------------- upstream types


class ActionRepresentation(enum.Enum):
    RELATIVE = "relative"
    DELTA = "delta"
    ABSOLUTE = "absolute"


class ActionType(enum.Enum):
    EEF = "eef"
    NON_EEF = "non_eef"


class ActionFormat(enum.Enum):
    DEFAULT = "default"
    XYZ_ROT6D = "xyz+rot6d"
    XYZ_ROTVEC = "xyz+rotvec"


@dataclass
class ActionConfig:
    rep: ActionRepresentation
    type: ActionType
    format: ActionFormat
    state_key: str | None = None


@dataclass
class ModalityConfig:
    """Same fields, order and construction checks as upstream's ModalityConfig."""

    delta_indices: list
    modality_keys: list
    sin_cos_embedding_keys: list | None = None
    mean_std_embedding_keys: list | None = None
    action_configs: list | None = None

    def __post_init__(self):
        if not isinstance(self.delta_indices, list):
            raise ValueError(f"delta_indices must be a list, got {self.delta_indices!r}")
        if not isinstance(self.modality_keys, list) or not self.modality_keys:
            raise ValueError(f"modality_keys must be a non-empty list, got {self.modality_keys!r}")
        if self.action_configs is not None:
            if len(self.action_configs) != len(self.modality_keys):
                raise ValueError("one action config per modality key is required")
            self.action_configs = [
                ActionConfig(
                    rep=ActionRepresentation[item["rep"]],
                    type=ActionType[item["type"]],
                    format=ActionFormat[item["format"]],
                    state_key=item.get("state_key"),
                )
                if isinstance(item, dict)
                else item
                for item in self.action_configs
            ]


def jsonable(value: Any) -> Any:
    """Upstream's to_json_serializable, for the cases a ModalityConfig contains."""
    if is_dataclass(value) and not isinstance(value, type):
        return jsonable(asdict(value))
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


# ----------------------------------------------------------------------- serialisation


def _default(value: Any) -> Any:
    if isinstance(value, ModalityConfig):
        return {CONFIG_TAG: True, "as_json": jsonable(value)}
    if isinstance(value, np.ndarray):
        sink = io.BytesIO()
        np.save(sink, value, allow_pickle=False)
        return {ARRAY_TAG: True, "as_npy": sink.getvalue()}
    return value


def _object_hook(value: dict) -> Any:
    if CONFIG_TAG in value:
        return ModalityConfig(**value["as_json"])
    if ARRAY_TAG in value:
        return np.load(io.BytesIO(value["as_npy"]), allow_pickle=False)
    return value


def _default_n17(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "O":
            raise TypeError(f"Refusing to encode object-dtype ndarray (shape={value.shape})")
        if value.dtype.kind == "V":  # msgpack-numpy would send descr lists; nothing here needs them
            raise TypeError("structured arrays are not sent by this test speaker")
        return {b"nd": True, b"type": value.dtype.str, b"kind": b"", b"shape": value.shape,
                b"data": value.tobytes()}
    if isinstance(value, (np.bool_, np.number)):
        return {b"nd": False, b"type": value.dtype.str, b"data": value.tobytes()}
    if isinstance(value, ModalityConfig):
        return {N17_CONFIG_TAG: True, "as_json": jsonable(value)}
    return value


def _object_hook_n17(value: dict) -> Any:
    if b"nd" in value:
        if value[b"nd"] and value.get(b"kind") in (b"O", "O"):
            raise ValueError("Refusing to decode object-dtype ndarray payload")
        if value.get(b"kind") not in (None, b""):
            raise ValueError(f"kind {value.get(b'kind')!r} is not decoded by this test speaker")
        if value[b"nd"] is True:
            return np.ndarray(buffer=value[b"data"], dtype=np.dtype(value[b"type"]), shape=value[b"shape"])
        return np.frombuffer(value[b"data"], dtype=np.dtype(value[b"type"]))[0]
    if N17_CONFIG_TAG in value:
        return ModalityConfig(**value["as_json"])
    return value


def to_bytes(value: Any, generation: str = N16) -> bytes:
    if generation == N17:
        return msgpack.packb(value, default=_default_n17)
    return msgpack.packb(value, default=_default)


def from_bytes(payload: bytes, generation: str = N16) -> Any:
    if generation == N17:
        return msgpack.unpackb(payload, object_hook=_object_hook_n17, raw=False)
    return msgpack.unpackb(payload, object_hook=_object_hook)


def request(endpoint: str, data: dict | None = None, *, requires_input: bool = True,
            api_token: str | None = None) -> dict:
    """The request map upstream's PolicyClient.call_endpoint builds."""
    message: dict = {"endpoint": endpoint}
    if requires_input:
        message["data"] = data
    if api_token:
        message["api_token"] = api_token
    return message


def get_action_request(observation: dict, options: dict | None = None, api_token: str | None = None,
                       generation: str = N16) -> bytes:
    return to_bytes(request("get_action", {"observation": observation, "options": options}, api_token=api_token),
                    generation)


# ----------------------------------------------------------------------- client


class ServerError(RuntimeError):
    """The server answered with {"error": ...} (upstream raises RuntimeError too)."""


class WireClient:
    """Upstream PolicyClient's behaviour over any ZeroMQ address, with timeouts for tests."""

    def __init__(self, address: str, *, api_token: str | None = None, timeout_ms: int = 5000,
                 context: zmq.Context | None = None, generation: str = N16):
        self.address = address
        self.generation = generation
        self.api_token = api_token
        self.timeout_ms = timeout_ms
        self._own_context = context is None
        self.context = context or zmq.Context()
        self._connect()

    def _connect(self) -> None:
        self.socket = self.context.socket(zmq.REQ)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.RCVTIMEO, self.timeout_ms)
        self.socket.setsockopt(zmq.SNDTIMEO, self.timeout_ms)
        self.socket.connect(self.address)

    def send_raw(self, payload: bytes) -> bytes:
        """Send any bytes, return the raw reply; a timed-out socket is replaced."""
        try:
            self.socket.send(payload)
            return self.socket.recv()
        except zmq.Again:
            self.socket.close(linger=0)
            self._connect()
            raise

    def call_endpoint(self, endpoint: str, data: dict | None = None, requires_input: bool = True) -> Any:
        reply = self.send_raw(to_bytes(request(endpoint, data, requires_input=requires_input,
                                               api_token=self.api_token), self.generation))
        if reply == b"ERROR":
            raise ServerError("Server error. Make sure we are running the correct policy server.")
        decoded = from_bytes(reply, self.generation)
        if isinstance(decoded, dict) and "error" in decoded:
            raise ServerError(f"Server error: {decoded['error']}")
        return decoded

    def ping(self) -> bool:
        try:
            self.call_endpoint("ping", requires_input=False)
            return True
        except zmq.ZMQError:
            return False

    def kill_server(self) -> Any:
        return self.call_endpoint("kill", requires_input=False)

    def get_action(self, observation: dict, options: dict | None = None) -> tuple[dict, dict]:
        return tuple(self.call_endpoint("get_action", {"observation": observation, "options": options}))

    def reset(self, options: dict | None = None) -> Any:
        return self.call_endpoint("reset", {"options": options})

    def get_modality_config(self) -> dict:
        return self.call_endpoint("get_modality_config", requires_input=False)

    def close(self) -> None:
        self.socket.close(linger=0)
        if self._own_context:
            self.context.term()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ----------------------------------------------------------------------- server


class FakePolicyServer:
    """An upstream-style PolicyServer on a background thread, for testing our robot client.

    ``policy`` needs ``get_action(observation, options)`` -> (action, info), and may have
    ``reset(options)`` and ``get_modality_config()``. Behaviour follows upstream's run loop:
    token check first, default endpoint get_action, ``{"error": str(exc)}`` on any failure.
    """

    def __init__(self, policy: Any, address: str = "tcp://127.0.0.1:*", *, api_token: str | None = None,
                 context: zmq.Context | None = None, generation: str = N16):
        self.policy = policy
        self.generation = generation
        self.api_token = api_token
        self.requests: list[dict] = []
        self._own_context = context is None
        self.context = context or zmq.Context()
        self.socket = self.context.socket(zmq.REP)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.bind(address)
        self.address = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.running = True
        self._stop = threading.Event()
        self._handlers: dict[str, tuple[Callable, bool]] = {
            "ping": (lambda: {"status": "ok", "message": "Server is running"}, False),
            "kill": (self._kill, False),
            "get_action": (policy.get_action, True),
            "reset": (getattr(policy, "reset", lambda options=None: {}), True),
            "get_modality_config": (getattr(policy, "get_modality_config", lambda: {}), False),
        }
        self._thread = threading.Thread(target=self._serve, name="fake-gr00t-server", daemon=True)

    def _kill(self) -> None:
        self.running = False

    def _answer(self, message: bytes) -> Any:
        try:
            decoded = from_bytes(message, self.generation)
            if self.api_token is not None and decoded.get("api_token") != self.api_token:
                return {"error": "Unauthorized: Invalid API token"}
            self.requests.append(decoded)
            name = decoded.get("endpoint", "get_action")
            if name not in self._handlers:
                raise ValueError(f"Unknown endpoint: {name}")
            handler, takes_input = self._handlers[name]
            return handler(**decoded.get("data", {})) if takes_input else handler()
        except Exception as exc:  # upstream answers every failure with the message
            return {"error": str(exc)}

    def _serve(self) -> None:
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        while self.running and not self._stop.is_set():
            if not poller.poll(50):
                continue
            message = self.socket.recv()
            try:
                reply = to_bytes(self._answer(message), self.generation)
            except Exception as exc:  # an unserialisable result still gets one reply
                reply = to_bytes({"error": str(exc)}, self.generation)
            self.socket.send(reply)

    def start(self) -> "FakePolicyServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.socket.close(linger=0)
        if self._own_context:
            self.context.term()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

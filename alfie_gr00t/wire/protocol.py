"""Our wire protocol (docs/design.md#our-protocol): msgpack maps over ZeroMQ REQ/REP.

Request:  {"timestamp", "frame_id", "images": {camera: jpeg bytes}, "state": [21], "language"}
Response: {"actions": [[21] x 16], "inference_time_ms", "status": "ok"}
Error:    {"actions": [], "inference_time_ms": 0.0, "status": "error", "error_message"}

Extra keys we add: `frame_id` echo and `stages_ms` in responses, `api_token` in requests,
the optional real-time-chunking hint `action_prefix` ([[21] x k], the steps of the client's
current chunk still executing when the reply is expected, aligned to this observation) with
`prefix_delay_steps` (int) and, in the reply to such a request, `rtc` (what the server did with
it: `{"applied", "frozen_steps", "overlap_steps"[, "reason"]}`; docs/rtc.md), and an image may
be raw RGB (`{"format": "rgb8", "width", "height", "data"}`) instead of JPEG.
This module only packs, unpacks and validates; it never touches sockets or pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

from alfie_gr00t.wire.observation import ChunkPrefix

MAX_FRAME_ID = 2**63 - 1
# msgpack bounds each container's length, not how many there are: 8 MB of empty lists is
# millions of Python objects. A real request holds a few dozen containers.
MAX_CONTAINERS = 10_000
_FLOAT32_MAX = float(np.finfo(np.float32).max)


class ProtocolError(ValueError):
    """A request or response that breaks the schema; the message is sent back verbatim."""


@dataclass(frozen=True)
class RequestLimits:
    """Resource bounds on one request (each is a server parameter)."""

    max_message_bytes: int = 8 << 20
    max_image_side: int = 2048
    max_language_chars: int = 1024
    max_batch_size: int = 8

    def __post_init__(self):
        for name in ("max_message_bytes", "max_image_side", "max_language_chars", "max_batch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


@dataclass(frozen=True)
class RawImage:
    """An uncompressed RGB frame (image_encoding: raw skips the JPEG codec on-device)."""

    width: int
    height: int
    data: bytes


@dataclass(frozen=True)
class Observation:
    timestamp: float
    frame_id: int
    images: dict[str, bytes | RawImage]
    state: np.ndarray  # (state_dim,) float32
    language: str
    api_token: str | None = None
    prefix: ChunkPrefix | None = None  # optional real-time-chunking hint ("action_prefix", "prefix_delay_steps")


@dataclass(frozen=True)
class ActionResponse:
    actions: np.ndarray  # (horizon, dim) float32
    inference_time_ms: float
    frame_id: int | None = None
    stages_ms: dict[str, float] = field(default_factory=dict)
    rtc: dict | None = None  # the server's real-time-chunking report, when the request carried a prefix


def unpack_message(payload, max_bytes: int) -> Any:
    """msgpack -> Python with container sizes bounded by the payload itself."""
    size = len(payload)
    if size > max_bytes:
        raise ProtocolError(f"message of {size} bytes exceeds the {max_bytes}-byte limit")
    count = container_counter()
    try:
        return msgpack.unpackb(
            payload, raw=False, strict_map_key=True, max_bin_len=size, max_str_len=size,
            max_array_len=size, max_map_len=size, max_ext_len=0, list_hook=count, object_hook=count,
        )
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise ProtocolError(f"not a valid msgpack message: {type(exc).__name__}: {exc}") from None
    except ProtocolError:
        raise


def container_counter(limit: int = MAX_CONTAINERS):
    """A msgpack list/object hook that refuses a message with more than `limit` containers."""
    seen = 0

    def count(container):
        nonlocal seen
        seen += 1
        if seen > limit:
            raise ProtocolError(f"message holds more than {limit} maps/arrays")
        return container

    return count


def _finite_number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProtocolError(f"{what} must be a number, got {type(value).__name__}")
    number = float(value) if abs(value) < 1e308 else math.inf
    if not math.isfinite(number):
        raise ProtocolError(f"{what} must be finite, got {value!r}")
    return number


def parse_state(value: Any, dim: int) -> np.ndarray:
    if not isinstance(value, list):
        raise ProtocolError(f"'state' must be a list of {dim} numbers, got {type(value).__name__}")
    if len(value) != dim:
        raise ProtocolError(f"'state' must have {dim} values, got {len(value)}")
    state = np.array([_finite_number(v, f"state[{i}]") for i, v in enumerate(value)], dtype=np.float64)
    if (np.abs(state) > _FLOAT32_MAX).any():
        raise ProtocolError("'state' values must fit in float32 (|x| < 3.4e38)")
    return state.astype(np.float32)


def _parse_image(name: str, value: Any) -> bytes | RawImage:
    if isinstance(value, bytes):
        if not value:
            raise ProtocolError(f"image '{name}' is empty")
        return value
    if isinstance(value, dict) and value.get("format") == "rgb8":
        width, height, data = value.get("width"), value.get("height"), value.get("data")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (width, height)):
            raise ProtocolError(f"raw image '{name}' needs positive integer width and height")
        if not isinstance(data, bytes) or len(data) != width * height * 3:
            raise ProtocolError(f"raw image '{name}' data must be width*height*3 = {width * height * 3} bytes")
        return RawImage(width, height, data)
    raise ProtocolError(f"image '{name}' must be JPEG bytes or a raw rgb8 map, got {type(value).__name__}")


def parse_prefix(actions: Any, delay_steps: Any, horizon: int, dim: int) -> ChunkPrefix | None:
    """The optional real-time-chunking hint: up to `horizon` steps of `dim` finite numbers and the
    expected delay in steps (0 <= delay <= len(actions)). None when no prefix was sent."""
    if actions is None:
        return None
    if isinstance(actions, np.ndarray):
        # shape first: an empty array can declare any shape, and tolist() would build every list of it
        if actions.ndim != 2 or not 0 < actions.shape[0] <= horizon or actions.shape[1] != dim:
            raise ProtocolError(f"'action_prefix' must be a (1..{horizon}, {dim}) array, got shape "
                                f"{actions.shape}"[:200])
        actions = actions.tolist()
    if not isinstance(actions, (list, tuple)) or not 0 < len(actions) <= horizon:
        raise ProtocolError(f"'action_prefix' must be a list of 1..{horizon} steps")
    rows = []
    for i, step in enumerate(actions):
        if not isinstance(step, (list, tuple)) or len(step) != dim:
            raise ProtocolError(f"'action_prefix'[{i}] must be a list of {dim} numbers")
        rows.append([_finite_number(v, f"action_prefix[{i}]") for v in step])
    if isinstance(delay_steps, bool) or not isinstance(delay_steps, int) or not 0 <= delay_steps <= len(rows):
        raise ProtocolError(f"'prefix_delay_steps' must be an integer in [0, {len(rows)}], got {delay_steps!r}"[:200])
    prefix = np.asarray(rows, dtype=np.float64)
    if (np.abs(prefix) > _FLOAT32_MAX).any():
        raise ProtocolError("'action_prefix' values must fit in float32")
    return ChunkPrefix(prefix.astype(np.float32), delay_steps)


def parse_observation(message: Any, camera_names, state_dim: int, limits: RequestLimits,
                      horizon: int = 16) -> Observation:
    """Validate a decoded request map into an Observation, or raise ProtocolError saying why."""
    if not isinstance(message, dict):
        raise ProtocolError(f"request must be a map, got {type(message).__name__}")
    missing = [k for k in ("timestamp", "frame_id", "images", "state", "language") if k not in message]
    if missing:
        raise ProtocolError(f"request is missing {', '.join(missing)}")
    timestamp = _finite_number(message["timestamp"], "'timestamp'")
    frame_id = message["frame_id"]
    if isinstance(frame_id, bool) or not isinstance(frame_id, int) or not 0 <= frame_id <= MAX_FRAME_ID:
        raise ProtocolError(f"'frame_id' must be an integer in [0, 2^63), got {frame_id!r}"[:200])
    images = message["images"]
    if not isinstance(images, dict):
        raise ProtocolError(f"'images' must be a map of camera name to JPEG bytes, got {type(images).__name__}")
    if set(images) != set(camera_names):
        raise ProtocolError(
            f"'images' must hold exactly {sorted(camera_names)}, got {sorted(map(str, images))[:8]}")
    language = message["language"]
    if not isinstance(language, str):
        raise ProtocolError(f"'language' must be a string, got {type(language).__name__}")
    if len(language) > limits.max_language_chars:
        raise ProtocolError(f"'language' has {len(language)} characters, limit is {limits.max_language_chars}")
    token = message.get("api_token")
    return Observation(
        timestamp=timestamp,
        frame_id=frame_id,
        images={name: _parse_image(name, images[name]) for name in camera_names},
        state=parse_state(message["state"], state_dim),
        language=language,
        api_token=token if isinstance(token, str) else None,
        prefix=parse_prefix(message.get("action_prefix"), message.get("prefix_delay_steps", 0), horizon, state_dim),
    )


def encode_observation(timestamp: float, frame_id: int, images: dict, state, language: str,
                       api_token: str | None = None, prefix: ChunkPrefix | None = None) -> bytes:
    """Client side: one observation request. `images` values are JPEG bytes or RawImage; `prefix`
    adds the optional real-time-chunking fields."""
    packed_images = {
        name: {"format": "rgb8", "width": img.width, "height": img.height, "data": img.data}
        if isinstance(img, RawImage) else img
        for name, img in images.items()
    }
    message = {
        "timestamp": float(timestamp), "frame_id": int(frame_id), "images": packed_images,
        "state": [float(v) for v in state], "language": language,
    }
    if api_token:
        message["api_token"] = api_token
    if prefix is not None:
        message["action_prefix"] = [[float(v) for v in step] for step in prefix.actions]
        message["prefix_delay_steps"] = int(prefix.delay_steps)
    return msgpack.packb(message, use_bin_type=True)


def encode_actions(actions: np.ndarray, inference_time_ms: float, frame_id: int | None = None,
                   stages_ms: dict[str, float] | None = None, rtc: dict | None = None) -> bytes:
    return assemble_actions_reply(pack_actions(actions), inference_time_ms, frame_id, stages_ms, rtc)


def pack_actions(actions: np.ndarray) -> bytes:
    """The packed value of the reply's "actions" key: the costly part of a reply, done once."""
    return msgpack.packb(actions.tolist(), use_bin_type=True)


def assemble_actions_reply(packed_actions: bytes, inference_time_ms: float, frame_id: int | None = None,
                           stages_ms: dict[str, float] | None = None, rtc: dict | None = None) -> bytes:
    """An ok reply around already packed actions, so the packing can be timed and reported in it."""
    rest = {"inference_time_ms": float(inference_time_ms), "status": "ok"}
    if frame_id is not None:
        rest["frame_id"] = frame_id
    if stages_ms:
        rest["stages_ms"] = {k: round(float(v), 4) for k, v in stages_ms.items()}
    if rtc is not None:
        rest["rtc"] = rtc
    packer = msgpack.Packer(use_bin_type=True)
    parts = [packer.pack_map_header(1 + len(rest)), packer.pack("actions"), packed_actions]
    for key, value in rest.items():
        parts += [packer.pack(key), packer.pack(value)]
    return b"".join(parts)


def encode_error(error_message: str, frame_id: int | None = None) -> bytes:
    message = {"actions": [], "inference_time_ms": 0.0, "status": "error", "error_message": error_message}
    if frame_id is not None:
        message["frame_id"] = frame_id
    return msgpack.packb(message, use_bin_type=True)


def parse_action_response(payload, horizon: int, dim: int, max_bytes: int = 1 << 20) -> ActionResponse:
    """Client side: validate a reply before any of it can reach a motor."""
    message = unpack_message(payload, max_bytes)
    if not isinstance(message, dict):
        raise ProtocolError(f"response must be a map, got {type(message).__name__}")
    status = message.get("status")
    if status != "ok":
        detail = message.get("error_message", "no error_message")
        raise ProtocolError(f"server answered status={status!r}: {str(detail)[:500]}")
    rows = message.get("actions")
    if not isinstance(rows, list) or len(rows) < horizon:
        got = len(rows) if isinstance(rows, list) else type(rows).__name__
        raise ProtocolError(f"response 'actions' must hold at least {horizon} steps, got {got}")
    if not all(isinstance(row, list) and len(row) == dim for row in rows[:horizon]):
        raise ProtocolError(f"every action step must hold {dim} numbers")
    try:
        actions = np.array(rows[:horizon], dtype=np.float32)
    except (TypeError, ValueError, OverflowError):
        raise ProtocolError("response 'actions' holds non-numeric values") from None
    if not np.isfinite(actions).all():
        raise ProtocolError("response 'actions' holds NaN or infinite values")
    stages = message.get("stages_ms")
    frame_id = message.get("frame_id")
    rtc = message.get("rtc")
    return ActionResponse(
        actions=actions,
        inference_time_ms=_finite_number(message.get("inference_time_ms", 0.0), "'inference_time_ms'"),
        frame_id=frame_id if isinstance(frame_id, int) else None,
        stages_ms={str(k): float(v) for k, v in stages.items() if isinstance(v, (int, float))}
        if isinstance(stages, dict) else {},
        rtc=parse_rtc_report(rtc),
    )


def parse_rtc_report(value: Any) -> dict | None:
    """A reply's "rtc" entry, checked: {"applied": bool, "frozen_steps": int, "overlap_steps": int} (plus an
    optional "reason" string); None when absent or malformed (a client then relies on nothing)."""
    if not isinstance(value, dict) or not isinstance(value.get("applied"), bool):
        return None
    steps = [value.get(k) for k in ("frozen_steps", "overlap_steps")]
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in steps):
        return None
    report = {"applied": value["applied"], "frozen_steps": steps[0], "overlap_steps": steps[1]}
    if isinstance(value.get("reason"), str):
        report["reason"] = value["reason"][:500]
    return report

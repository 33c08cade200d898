"""Messages for the hostile-input tests: valid ones in both protocols to start from, ways to break them
(paths to replace, JPEG headers that lie, npy files), and the checks every reply must pass: a correct ok
reply or an error reply that says why, within a bound that only catches hangs."""

from __future__ import annotations

import copy
import io
import struct
import time
import tracemalloc
from dataclasses import dataclass

import cv2
import msgpack
import numpy as np

from alfie_gr00t import layout
from alfie_gr00t.engines.base import Engine
from alfie_gr00t.engines.mock import MockEngine
from alfie_gr00t.server.config import ServerConfig
from alfie_gr00t.server.service import PolicyService
from alfie_gr00t.wire import images

from support import gr00t_wire
from support.frames import hold_chunk, make_frame
from support.tripwire import Tripwire

CAMERAS = layout.CAMERA_NAMES
GROUPS = layout.LAYOUT_GROUPS
HORIZON, DIM = layout.ACTION_HORIZON, layout.ACTION_DIM
HANG_BOUND_S = 2.0


class CountingEngine(Engine):
    name = "mock"

    def __init__(self, inner: MockEngine):
        self.inner = inner
        self.max_batch_size = inner.max_batch_size
        self.calls = 0

    def infer(self, batch):
        self.calls += 1
        return self.inner.infer(batch)


def make_service(**overrides) -> PolicyService:
    config = ServerConfig(mock_mode=True, **overrides)
    return PolicyService(CountingEngine(MockEngine(config.engine_config())), config)


@dataclass
class Tally:
    """What a property test fed the server and what came back."""

    tried: int = 0
    ok: int = 0
    errors: int = 0
    slowest_ms: float = 0.0

    def report(self, name: str) -> str:
        return (f"{name}: {self.tried} messages tried, {self.ok} ok, {self.errors} error replies, "
                f"0 crashes, slowest {self.slowest_ms:.1f} ms")


def request_kind(payload: bytes, max_bytes: int):
    """('gr00t'|'ours', decoded-or-None): how the server must answer, decided independently."""
    if len(payload) > max_bytes:
        return "ours", None
    try:
        message = msgpack.unpackb(payload, raw=False, strict_map_key=True, max_ext_len=0)
    except Exception:
        return "ours", None
    if isinstance(message, dict) and "endpoint" in message:
        return "gr00t", message
    return "ours", message


def mock_chunk(state) -> np.ndarray:
    state = np.asarray(state, np.float32).reshape(-1, DIM)
    return hold_chunk(state)


def check_ours(reply: bytes, request) -> str:
    message = msgpack.unpackb(reply, raw=False)
    assert isinstance(message, dict), message
    if message.get("status") == "error":
        assert message["actions"] == [] and message["inference_time_ms"] == 0.0, message
        assert isinstance(message["error_message"], str) and message["error_message"], message
        return "error"
    assert message.get("status") == "ok", message
    # an ok reply is only possible for a map with a 21-number state: the actions must follow it
    assert isinstance(request, dict) and isinstance(request.get("state"), list), request
    state = np.array([float(v) for v in request["state"]], np.float64).astype(np.float32)
    actions = np.array(message["actions"], np.float64)
    assert actions.shape == (HORIZON, DIM) and np.isfinite(actions).all()
    np.testing.assert_allclose(actions, mock_chunk(state)[0], rtol=1e-6, atol=1e-7)
    assert message["frame_id"] == request["frame_id"]
    return "ok"


def check_gr00t(reply: bytes, payload: bytes, request: dict) -> str:
    decoded = gr00t_wire.from_bytes(reply)  # the server's own output: safe to decode the upstream way
    if isinstance(decoded, dict) and "error" in decoded:
        assert set(decoded) == {"error"} and isinstance(decoded["error"], str) and decoded["error"], decoded
        return "error"
    endpoint = request.get("endpoint")
    if endpoint == "ping":
        assert decoded["status"] == "ok"
    elif endpoint == "reset":
        assert decoded == {}
    elif endpoint == "get_modality_config":
        assert set(decoded) == {"video", "state", "action", "language"}
    elif endpoint == "get_action":
        # the server accepted every array in it, so decoding the request here is safe too
        observation = gr00t_wire.from_bytes(payload)["data"]["observation"]
        state = np.concatenate([np.asarray(observation["state"][g.name])[:, -1].astype(np.float32) for g in GROUPS],
                               axis=1)
        action, info = decoded
        assert list(action) == [g.name for g in GROUPS] and isinstance(info, dict)
        chunk = mock_chunk(state)
        for g in GROUPS:
            assert action[g.name].shape == (state.shape[0], HORIZON, g.size)
            np.testing.assert_allclose(action[g.name], chunk[:, :, g.start:g.stop], rtol=1e-6, atol=1e-7)
    else:
        raise AssertionError(f"success reply {decoded!r} for endpoint {endpoint!r}")
    return "ok"


def exercise(service: PolicyService, payload: bytes, tally: Tally) -> str:
    """Feed one message; check the reply and the time; return 'ok' or 'error'."""
    start = time.perf_counter()
    reply = service.respond(payload)
    elapsed = time.perf_counter() - start
    assert isinstance(reply, bytes)
    assert elapsed < HANG_BOUND_S, f"respond() took {elapsed:.2f} s on a {len(payload)}-byte message"
    kind, request = request_kind(payload, service.config.max_message_bytes)
    verdict = check_gr00t(reply, payload, request) if kind == "gr00t" else check_ours(reply, request)
    tally.tried += 1
    tally.slowest_ms = max(tally.slowest_ms, elapsed * 1000.0)
    if verdict == "ok":
        tally.ok += 1
    else:
        tally.errors += 1
    return verdict


# ============================================================== valid messages to start from


def small_jpegs(width=16, height=14) -> dict:
    return {name: images.encode_jpeg(make_frame(width, height, seed=i), 90) for i, name in enumerate(CAMERAS)}


SMALL_JPEGS = small_jpegs()
STATE = [round(0.01 * i - 0.1, 3) for i in range(DIM)]


def ours_tree(frame_id=7, state=None, jpegs=None, raw_camera=None) -> dict:
    imgs = dict(jpegs or SMALL_JPEGS)
    if raw_camera:
        imgs[raw_camera] = {"format": "rgb8", "width": 4, "height": 3, "data": make_frame(4, 3).tobytes()}
    return {"timestamp": 1.5, "frame_id": frame_id, "images": imgs,
            "state": list(STATE if state is None else state), "language": "pick up the can"}


def gr00t_tree(batch=1, width=16, height=14, endpoint="get_action") -> dict:
    states = np.array([[0.01 * i - 0.1 + 0.02 * b for i in range(DIM)] for b in range(batch)], np.float32)
    observation = {
        "video": {cam: np.stack([make_frame(width, height, seed=c + b) for b in range(batch)])[:, None]
                  for c, cam in enumerate(CAMERAS)},
        "state": {g.name: np.ascontiguousarray(states[:, None, g.start:g.stop]) for g in GROUPS},
        "language": {"task": [["pick up the can"]] * batch},
    }
    return {"endpoint": endpoint, "data": {"observation": observation, "options": None}}


def pack_ours(tree) -> bytes:
    return msgpack.packb(tree, use_bin_type=True)


def pack_gr00t(tree) -> bytes:
    return gr00t_wire.to_bytes(tree)


VALID_MESSAGES = [
    pack_ours(ours_tree()),
    pack_ours(ours_tree(raw_camera="right_center")),
    pack_gr00t(gr00t_tree()),
    pack_gr00t(gr00t_tree(batch=2, width=8, height=6)),
    pack_gr00t({"endpoint": "ping"}),
    pack_gr00t({"endpoint": "reset", "data": {"options": None}}),
    pack_gr00t({"endpoint": "get_modality_config"}),
]


def replace_at(tree, path, value, mode="replace"):
    tree = copy.deepcopy(tree)
    node = tree
    for key in path[:-1]:
        node = node[key]
    last = path[-1]
    if mode == "delete" and isinstance(node, dict):
        node.pop(last, None)
    elif mode == "extra" and isinstance(node, dict):
        node["extra_" + str(last)] = value
    else:
        node[last] = value
    return tree


def tiny_jpeg() -> bytes:
    ok, buf = cv2.imencode(".jpg", np.full((8, 8), 128, np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 50])
    assert ok
    return buf.tobytes()


def jpeg_declaring(width: int, height: int, base: bytes | None = None) -> bytes:
    """A small real JPEG whose frame header claims another size."""
    data = bytearray(base or tiny_jpeg())
    sof = data.find(b"\xff\xc0")
    assert sof > 0
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def npy_file(descr: str, fortran: str, shape: str, data: bytes, version: int = 1, header_len: int | None = None,
             raw_header: str | None = None) -> bytes:
    text = (raw_header if raw_header is not None
            else f"{{'descr': {descr}, 'fortran_order': {fortran}, 'shape': {shape}, }}").encode("latin-1", "replace")
    text += b" " * (63 - (12 + len(text)) % 64) + b"\n"
    length = len(text) if header_len is None else header_len
    if version == 1:
        head = b"\x93NUMPY\x01\x00" + struct.pack("<H", min(length, 65535))
    else:
        head = b"\x93NUMPY" + bytes([version, 0]) + struct.pack("<I", length)
    return head + text + data


def pickled_tripwire_npy() -> bytes:
    array = np.empty((1, 1, 3), dtype=object)
    array[0, 0, :] = [Tripwire(), Tripwire(), Tripwire()]
    sink = io.BytesIO()
    np.save(sink, array, allow_pickle=True)
    return sink.getvalue()


def vm_rss_kb() -> int:
    """This process's resident set size (Linux), 0 where unknown."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def traced_peak(call):
    """(what `call()` returned, the peak of Python memory allocated while it ran, bytes)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = call()
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak

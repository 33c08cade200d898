"""Both upstream Isaac-GR00T wire generations (N1.6 npy, N1.7 msgpack-numpy), both ways (docs/design.md#isaac-gr00ts-protocol).

Byte-exact samples are hand-built from the documented formats (msgpack bytes typed out, npy
headers written by hand), not produced by our codec. The sockets are real ZeroMQ over IPC and
TCP 127.0.0.1: the test-side upstream clients of both generations (test/support/gr00t_wire.py, written
independently of alfie_gr00t.wire) against our server, and our client link against test-side
upstream servers of both generations.
"""

from __future__ import annotations

import os
import pickle
import struct
import sys
import time
from dataclasses import dataclass

import msgpack
import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))

from support import gr00t_wire  # noqa: E402
from support.frames import hold_chunk, image_message, make_frame  # noqa: E402
from support.tripwire import TRIPWIRE_RAN, Tripwire  # noqa: E402
from support.gr00t_wire import N16, N17, ActionConfig, ActionFormat, ActionRepresentation, ActionType, \
    FakePolicyServer, ModalityConfig, ServerError, WireClient  # noqa: E402

from alfie_gr00t import layout  # noqa: E402
from alfie_gr00t.client.config import ClientConfig  # noqa: E402
from alfie_gr00t.client.inputs import Snapshot  # noqa: E402
from alfie_gr00t.client.links import Gr00tLink  # noqa: E402
from alfie_gr00t.engines.mock import MockEngine  # noqa: E402
from alfie_gr00t.server.config import ServerConfig  # noqa: E402
from alfie_gr00t.server.service import BackgroundServer, PolicyService  # noqa: E402
from alfie_gr00t.stats import StageTimer  # noqa: E402
from alfie_gr00t.wire import gr00t as gp  # noqa: E402
from alfie_gr00t.wire import images  # noqa: E402
from alfie_gr00t.wire.transport import ReqClient  # noqa: E402

CAMERAS = layout.CAMERA_NAMES
GROUPS = layout.LAYOUT_GROUPS
HORIZON, DIM = layout.ACTION_HORIZON, layout.ACTION_DIM


def mp_bin(data: bytes) -> bytes:
    """msgpack bin 8/16/32 header + data, typed out from the msgpack spec."""
    if len(data) < 256:
        return b"\xc4" + bytes([len(data)]) + data
    if len(data) < 65536:
        return b"\xc5" + struct.pack(">H", len(data)) + data
    return b"\xc6" + struct.pack(">I", len(data)) + data


def npy_v1(descr: str, shape: tuple, data: bytes, fortran: bool = False) -> bytes:
    """An .npy v1.0 file as np.save writes it: header padded with spaces to a multiple of 64, then '\\n'."""
    dims = f"({shape[0]},)" if len(shape) == 1 else "(" + ", ".join(str(d) for d in shape) + ")"
    text = f"{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {dims}, }}"
    total = 10 + len(text) + 1
    text += " " * ((64 - total % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin-1") + data


# Hand-typed N1.7 sample: a (2, 3) float32 array as msgpack-numpy 0.4.8 sends it (fixmap of 5, bin keys,
# b"type" a str, b"kind" an empty bin, b"shape" a fixarray, b"data" a bin of the raw little-endian floats).
F32 = struct.pack("<6f", 0.0, 1.0, 2.0, 3.0, 4.0, 5.0)
N17_ARRAY = (b"\x85" + b"\xc4\x02nd" + b"\xc3" + b"\xc4\x04type" + b"\xa3<f4" + b"\xc4\x04kind" + b"\xc4\x00"
             + b"\xc4\x05shape" + b"\x92\x02\x03" + b"\xc4\x04data" + b"\xc4\x18" + F32)
N17_SCALAR = b"\x83" + b"\xc4\x02nd" + b"\xc2" + b"\xc4\x04type" + b"\xa3<f4" + b"\xc4\x04data" + b"\xc4\x04" \
    + struct.pack("<f", 1.5)
N16_ARRAY = (b"\x82" + b"\xb1__ndarray_class__" + b"\xc3" + b"\xa6as_npy"
             + mp_bin(npy_v1("<f4", (2, 3), F32)))
EXPECTED = np.arange(6, dtype=np.float32).reshape(2, 3)


# ============================================================================ codec, byte-exact


def test_hand_built_npy_matches_np_save():
    # the hand-built sample is what numpy itself writes (so the N1.6 sample below is upstream's bytes)
    import io
    sink = io.BytesIO()
    np.save(sink, EXPECTED, allow_pickle=False)
    assert sink.getvalue() == npy_v1("<f4", (2, 3), F32)


@pytest.mark.parametrize("generation, sample", [(N16, N16_ARRAY), (N17, N17_ARRAY)])
def test_array_samples_both_ways(generation, sample):
    assert gp.pack(EXPECTED, generation) == sample
    value, seen = gp.unpack_generation(sample)
    assert seen == generation
    assert value.dtype == np.float32 and value.shape == (2, 3)
    np.testing.assert_array_equal(value, EXPECTED)
    # and the test-side upstream speaker of that generation agrees with the sample
    assert gr00t_wire.to_bytes(EXPECTED, generation) == sample
    np.testing.assert_array_equal(gr00t_wire.from_bytes(sample, generation), EXPECTED)


def test_n17_scalar_and_non_contiguous_samples():
    assert gp.pack(np.float32(1.5), N17) == N17_SCALAR
    value, seen = gp.unpack_generation(N17_SCALAR)
    assert seen == N17 and isinstance(value, np.float32) and value == 1.5
    # a transposed view travels as its C-order bytes, like msgpack-numpy's tobytes()
    view = EXPECTED.T
    assert gp.pack(view, N17) == gr00t_wire.to_bytes(np.ascontiguousarray(view), N17)
    np.testing.assert_array_equal(gp.unpack(gp.pack(view, N17)), view)


@pytest.mark.parametrize("array", [np.zeros((1, 1, 4, 5, 3), np.uint8), np.array([True, False]),
                                   np.arange(3, dtype=">i8"), np.array(["a", "bc"]), np.zeros((0, 3), np.float64),
                                   np.array(2.5), np.ones(2, np.complex64)])
def test_n17_round_trips_with_the_upstream_speaker(array):
    ours = gp.pack({"x": array}, N17)
    assert ours == gr00t_wire.to_bytes({"x": array}, N17)
    back = gp.unpack(gr00t_wire.to_bytes({"x": array}, N17))["x"]
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


def test_modality_config_markers_per_generation():
    config = {name: ModalityConfig(**fields) for name, fields in
              ((k, v["as_json"]) for k, v in gp.modality_config(CAMERAS, GROUPS).items())}
    assert gp.pack(gp.modality_config(CAMERAS, GROUPS, generation=N16)) == gr00t_wire.to_bytes(config, N16)
    assert gp.pack(gp.modality_config(CAMERAS, GROUPS, generation=N17), N17) == gr00t_wire.to_bytes(config, N17)
    both = gp.modality_config(CAMERAS, GROUPS, generation=None)
    assert all(v["__ModalityConfig_class__"] is True and v["__ModalityConfig__"] is True for v in both.values())
    # each upstream decoder looks for its own key only, and both build the real ModalityConfig from the map
    for generation in (N16, N17):
        decoded = gr00t_wire.from_bytes(gp.pack(both), generation)
        assert isinstance(decoded["video"], ModalityConfig) and decoded["video"].modality_keys == list(CAMERAS)
    # the strict N1.7 decoder does NOT read N1.6's marker: why a reply must carry the right one
    stale = gr00t_wire.from_bytes(gp.pack(gp.modality_config(CAMERAS, GROUPS, generation=N16)), N17)
    assert not isinstance(stale["video"], ModalityConfig)


@pytest.mark.parametrize("payload, generation", [
    (msgpack.packb({"endpoint": "ping"}), None),
    (msgpack.packb({"endpoint": "get_action", "data": {"a": 1}}), None),
    (N16_ARRAY, N16),
    (N17_ARRAY, N17),
    (msgpack.packb({"endpoint": "reset", "data": {b"options": None}}), N17),  # bin key
    (msgpack.packb({"v": {"__ModalityConfig__": True, "as_json": {}}}), N17),
    (msgpack.packb({"v": {"__ModalityConfig_class__": True, "as_json": {}}}), N16),
    (msgpack.packb({"v": {"__ModalityConfig_class__": True, "__ModalityConfig__": True, "as_json": {}}}), N17),
    # arrays decide over keys: npy arrays with a stray bin key elsewhere stay N1.6
    (b"\x82\xa1a" + N16_ARRAY + b"\xc4\x01k\xc0", N16),
    (b"\x82\xa1a" + N16_ARRAY + b"\xa1b" + N17_ARRAY, N17),
])
def test_generation_detection(payload, generation):
    assert gp.unpack_generation(payload)[1] == generation


def pickled_envelope(kind: bytes) -> bytes:
    data = pickle.dumps(np.array([Tripwire()], dtype=object))
    return (b"\x85\xc4\x02nd\xc3\xc4\x04type\xa2|O\xc4\x04kind" + mp_bin(kind) + b"\xc4\x05shape\x91\x01"
            + b"\xc4\x04data" + mp_bin(data))


@pytest.mark.parametrize("payload, words", [
    (pickled_envelope(b"O"), "kind b'O'"),
    (pickled_envelope(b"V"), "kind b'V'"),
    (pickled_envelope(b""), "dtype '|O' refused"),
    (N17_ARRAY.replace(b"\xa3<f4", b"\xa3|V8"), "refused"),
    (N17_ARRAY.replace(b"\x92\x02\x03", b"\x92\x02\x04"), "needs 32 bytes, got 24"),
    (N17_ARRAY.replace(b"\x92\x02\x03", b"\x92\x02\xff"), "bad dimension -1"),
    (N17_ARRAY.replace(b"nd\xc3", b"nd\x01"), "true or false"),
    (N17_ARRAY.replace(b"\xc4\x04kind\xc4\x00", b"\xc4\x04kind\xc4\x01X"), "unknown kind"),
    (N17_ARRAY[:-26] + b"\xc4\x04" + b"abcd", "needs 24 bytes, got 4"),  # data cut short
    (b"\x81\xc4\x02nd\xc3", "dtype None refused"),
    (b"\x83\xc4\x02nd\xc2\xc4\x04type\xa3<f4\xc4\x04data\xa4abcd", "b'data' must be bin"),
    (b"\x84\xc4\x02nd\xc2\xc4\x04type\xa3<f4\xc4\x04data\xc4\x04\x00\x00\xc0?\xc4\x05shape\x90", "unexpected keys"),
    (msgpack.packb({b"nd": True, b"type": "<f4", b"shape": [2 ** 40], b"data": b""}), "limit"),
    (msgpack.packb(msgpack.ExtType(1, b"x")), "extension type 1"),
    (b"\x81\xa1a\xd6\xff\x00\x00\x00\x01", "extension type -1"),  # a fixext 4 timestamp
])
def test_refused_envelopes_never_reach_pickle(payload, words):
    TRIPWIRE_RAN.clear()
    with pytest.raises(gp.Gr00tProtocolError, match=words.replace("(", r"\(").replace("|", r"\|")):
        gp.unpack(payload)
    assert TRIPWIRE_RAN == []


def test_object_and_structured_arrays_are_never_sent():
    for generation in (N16, N17):
        with pytest.raises(TypeError, match="pickle"):
            gp.pack({"x": np.array([Tripwire()], dtype=object)}, generation)
        with pytest.raises(TypeError, match="structured"):
            gp.pack(np.zeros(2, dtype=[("a", "<f4"), ("b", "<i4")]), generation)


# ============================================================================ over real sockets


@dataclass
class Served:
    address: str
    service: PolicyService


@pytest.fixture(params=["ipc", "tcp"])
def served(request, ipc_path, free_tcp_port):
    config = ServerConfig(mock_mode=True, transport=request.param, ipc_path=ipc_path, bind_host="127.0.0.1",
                          bind_port=free_tcp_port)
    service = PolicyService(MockEngine(config.engine_config()), config)
    server = BackgroundServer(service).start()
    try:
        yield Served(config.address, service)
    finally:
        server.stop()
        service.close()


def upstream_observation(state: np.ndarray) -> dict:
    return {"video": {cam: make_frame(seed=c)[None, None] for c, cam in enumerate(CAMERAS)},
            "state": {g.name: state[None, None, g.start:g.stop].copy() for g in GROUPS},
            "language": {"task": [["pick up the can"]]}}


class RawRecorder:
    """Wraps a ZeroMQ REQ exchange so a test can see the reply bytes the server sent."""

    def __init__(self, address):
        self.client = ReqClient(address, 5000)

    def call(self, payload: bytes) -> bytes:
        return bytes(self.client.request(payload))


@pytest.mark.parametrize("generation", [N16, N17])
def test_upstream_client_of_each_generation_against_our_server(served, generation):
    state = np.linspace(-0.3, 0.3, DIM).astype(np.float32)
    with WireClient(served.address, generation=generation) as client:
        assert client.ping()
        config = client.get_modality_config()
        assert set(config) == {"video", "state", "action", "language"}
        assert all(isinstance(v, ModalityConfig) for v in config.values())
        assert config["state"].modality_keys == [g.name for g in GROUPS]
        assert config["action"].action_configs[0].rep is ActionRepresentation.ABSOLUTE
        for _ in range(3):
            action, info = client.get_action(upstream_observation(state))
            chunk = hold_chunk(state[None])[0]
            for g in GROUPS:
                assert action[g.name].shape == (1, HORIZON, g.size) and action[g.name].dtype == np.float32
                np.testing.assert_allclose(action[g.name][0], chunk[:, g.start:g.stop], rtol=1e-6)
            assert info["engine"] == "mock"
        assert client.reset() == {}
        with pytest.raises(ServerError, match="missing 'video'"):
            client.get_action({"state": {}, "language": {}})
    assert served.service.errors == 1


def test_each_get_action_reply_is_in_the_generation_of_its_request(served):
    state = np.zeros(DIM, np.float32)
    recorder = RawRecorder(served.address)
    for generation in (N17, N16, N17):
        payload = gr00t_wire.get_action_request(upstream_observation(state), generation=generation)
        reply = recorder.call(payload)
        if generation == N17:
            assert b"\xc4\x02nd\xc3" in reply and b"__ndarray_class__" not in reply
        else:
            assert b"__ndarray_class__" in reply and b"\xc4\x02nd" not in reply
        action, _ = gr00t_wire.from_bytes(reply, generation)
        assert isinstance(action["head"], np.ndarray) and action["head"].shape == (1, HORIZON, 3)
    # a get_modality_config request carries no arrays: the reply carries both markers
    reply = recorder.call(msgpack.packb({"endpoint": "get_modality_config"}))
    assert b"__ModalityConfig_class__" in reply and b"__ModalityConfig__\xc3" in reply
    recorder.client.close()


def test_hostile_n17_requests_get_errors_and_the_server_keeps_serving(served):
    TRIPWIRE_RAN.clear()
    recorder = RawRecorder(served.address)
    observation = gr00t_wire.get_action_request(upstream_observation(np.zeros(DIM, np.float32)), generation=N17)
    evil = observation.replace(b"\xa3|u1\xc4\x04kind\xc4\x00", b"\xa3|u1\xc4\x04kind\xc4\x01O", 1)
    assert evil != observation
    for payload, words in ((evil, "kind b'O'"),
                           (msgpack.packb({"endpoint": "get_action", "data": {"x": msgpack.ExtType(5, b"")}}),
                            "extension"),
                           (pickled_envelope(b"O"), "")):
        reply = msgpack.unpackb(recorder.call(payload), raw=False)
        text = reply.get("error") or reply.get("error_message")
        assert isinstance(text, str) and words in text
    assert TRIPWIRE_RAN == []
    action, _ = gr00t_wire.from_bytes(recorder.call(observation), N17)
    assert action["left_arm"].shape == (1, HORIZON, 6)
    recorder.client.close()


# ---------------------------------------------------------------------- our client, upstream servers




class HoldPolicy:
    def __init__(self, generation):
        self.observations = []
        # N1.7's msgpack-numpy sends numpy scalars; N1.6's packer cannot, so a real policy there returns floats
        self.ms = np.float32(2.5) if generation == N17 else 2.5

    def get_modality_config(self):
        absolute = ActionConfig(ActionRepresentation.ABSOLUTE, ActionType.NON_EEF, ActionFormat.DEFAULT)
        names = [g.name for g in GROUPS]
        return {"video": ModalityConfig([0], list(CAMERAS)), "state": ModalityConfig([0], names),
                "action": ModalityConfig(list(range(HORIZON)), names, action_configs=[absolute] * len(names)),
                "language": ModalityConfig([0], ["task"])}

    def get_action(self, observation, options=None):
        self.observations.append(observation)
        return ({k: np.repeat(v[:, -1:], HORIZON, axis=1).astype(np.float32) for k, v in observation["state"].items()},
                {"inference_time_ms": self.ms})


def snapshot(state) -> Snapshot:
    frames = {cam: image_message(make_frame(64, 56, seed=i)) for i, cam in enumerate(CAMERAS)}
    return Snapshot(frames, state, time.monotonic(), "pick up the can")


def link_for(address: str) -> tuple[Gr00tLink, ReqClient, images.ParallelCodec]:
    config = ClientConfig(server_protocol="gr00t", image_width=64, image_height=56)
    client, codec = ReqClient(address, 5000), images.ParallelCodec(1)
    return Gr00tLink(config, client, codec), client, codec


@pytest.mark.parametrize("generation", [N16, N17])
@pytest.mark.parametrize("transport", ["ipc", "tcp"])
def test_our_client_detects_and_speaks_each_upstream_generation(generation, transport, ipc_path):
    policy = HoldPolicy(generation)
    address = f"ipc://{ipc_path}" if transport == "ipc" else "tcp://127.0.0.1:*"
    state = np.linspace(-0.2, 0.2, DIM).astype(np.float32)
    with FakePolicyServer(policy, address, generation=generation) as server:
        link, client, codec = link_for(server.address)
        try:
            assert link.generation is None
            for _ in range(2):
                reply = link.exchange(snapshot(state), state, StageTimer(), None, 5000)
                np.testing.assert_allclose(reply.actions, np.tile(state, (HORIZON, 1)), rtol=1e-6)
                assert reply.server_inference_ms == 2.5
            assert link.generation == generation
        finally:
            client.close()
            codec.close()
    # the upstream server decoded real arrays, i.e. our client spoke its generation
    assert len(policy.observations) == 2
    video = policy.observations[0]["video"][CAMERAS[0]]
    assert isinstance(video, np.ndarray) and video.shape == (1, 1, 56, 64, 3) and video.dtype == np.uint8
    np.testing.assert_array_equal(policy.observations[0]["state"]["head"][0, 0], state[18:21])


def test_our_client_against_our_server_speaks_n17(served):
    link, client, codec = link_for(served.address)
    state = np.zeros(DIM, np.float32)
    try:
        reply = link.exchange(snapshot(state), state, StageTimer(), None, 5000)
        assert reply.actions.shape == (HORIZON, DIM)
        assert link.generation == N17  # both markers: the server reads both, the client takes the newer
    finally:
        client.close()
        codec.close()


def test_bench_interop_rows_run_and_name_the_skipped_upstream_rows(monkeypatch):
    from alfie_gr00t.tools import bench_interop

    monkeypatch.setattr(bench_interop, "upstream_missing", lambda: "ModuleNotFoundError: No module named 'gr00t'")
    result = bench_interop.run(iterations=3, warmup=1)
    assert list(result["rows"]) == ["n1.6 client -> ours", "n1.7 client -> ours"]
    assert all(0.0 < row["p50_ms"] <= row["p99_ms"] for row in result["rows"].values())
    report = bench_interop.format_report(result)
    assert "upstream rows skipped" in report and "No module named 'gr00t'" in report

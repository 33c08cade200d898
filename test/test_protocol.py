"""Our wire protocol: round trips and every malformed class mapped to a clear error."""

import math

import msgpack
import numpy as np
import pytest

from alfie_gr00t import layout
from alfie_gr00t.wire import protocol
from alfie_gr00t.wire.protocol import ProtocolError, RequestLimits

CAMS = layout.CAMERA_NAMES
LIMITS = RequestLimits()


def request(**overrides):
    message = {
        "timestamp": 1704307200.123, "frame_id": 42,
        "images": {name: b"\xff\xd8jpeg" for name in CAMS},
        "state": [0.1 * i for i in range(21)], "language": "find the can and pick it up",
    }
    message.update(overrides)
    return message


def parse(message):
    return protocol.parse_observation(message, CAMS, 21, LIMITS)


def test_seed_request_parses_to_typed_observation():
    obs = parse(request())
    assert obs.frame_id == 42 and obs.timestamp == pytest.approx(1704307200.123)
    assert obs.state.dtype == np.float32 and obs.state.shape == (21,)
    assert obs.state[20] == pytest.approx(2.0)
    assert set(obs.images) == set(CAMS) and obs.language.startswith("find")


def test_encode_observation_round_trip():
    state = np.linspace(-1, 1, 21)
    payload = protocol.encode_observation(12.5, 7, {c: b"\xff\xd8x" for c in CAMS}, state, "go", api_token="t")
    obs = parse(protocol.unpack_message(payload, LIMITS.max_message_bytes))
    assert obs.frame_id == 7 and obs.api_token == "t"
    np.testing.assert_allclose(obs.state, state, atol=1e-6)


def test_raw_image_round_trip():
    raw = protocol.RawImage(4, 2, bytes(range(24)))
    payload = protocol.encode_observation(0.0, 1, {c: raw for c in CAMS}, [0.0] * 21, "")
    obs = parse(protocol.unpack_message(payload, 1 << 20))
    assert obs.images[CAMS[0]] == raw


def test_action_response_keys_are_exactly_the_seed_schema_plus_extras():
    actions = np.arange(16 * 21, dtype=np.float32).reshape(16, 21)
    message = msgpack.unpackb(protocol.encode_actions(actions, 25.3), raw=False)
    assert set(message) == {"actions", "inference_time_ms", "status"}
    assert message["status"] == "ok" and len(message["actions"]) == 16 and len(message["actions"][0]) == 21
    parsed = protocol.parse_action_response(protocol.encode_actions(actions, 1.0, frame_id=3, stages_ms={"a": 1}), 16, 21)
    np.testing.assert_array_equal(parsed.actions, actions)
    assert parsed.frame_id == 3 and parsed.stages_ms == {"a": 1.0}


def test_error_response_schema():
    message = msgpack.unpackb(protocol.encode_error("Model inference failed: x"), raw=False)
    assert message == {"actions": [], "inference_time_ms": 0.0, "status": "error",
                       "error_message": "Model inference failed: x"}


@pytest.mark.parametrize("message, fragment", [
    ([1, 2, 3], "must be a map"),
    ("hello", "must be a map"),
    ({"frame_id": 1}, "missing"),
    (request(timestamp="now"), "'timestamp' must be a number"),
    (request(timestamp=math.nan), "finite"),
    (request(frame_id=-1), "'frame_id'"),
    (request(frame_id=2**64 - 1), "'frame_id'"),
    (request(frame_id=True), "'frame_id'"),
    (request(images=[b"x"]), "'images' must be a map"),
    (request(images={"left_wide": b"x"}), "exactly"),
    (request(images={**{c: b"x" for c in CAMS}, "extra": b"x"}), "exactly"),
    (request(images={c: 5 for c in CAMS}), "JPEG bytes or a raw"),
    (request(images={c: b"" for c in CAMS}), "empty"),
    (request(images={c: {"format": "rgb8", "width": 2, "height": 2, "data": b"x"} for c in CAMS}), r"width\*height\*3"),
    (request(state=[0.0] * 20), "21 values"),
    (request(state="0" * 21), "must be a list"),
    (request(state=[0.0] * 20 + [math.inf]), "finite"),
    (request(state=[0.0] * 20 + ["x"]), "must be a number"),
    (request(state=[0.0] * 20 + [None]), "must be a number"),
    (request(language=5), "'language' must be a string"),
    (request(language="x" * 5000), "limit is 1024"),
])
def test_malformed_requests_raise_clear_errors(message, fragment):
    with pytest.raises(ProtocolError, match=fragment):
        parse(message)


@pytest.mark.parametrize("payload, fragment", [
    (b"\xc1", "not a valid msgpack"),
    (b"\x92\x01", "not a valid msgpack"),  # truncated array
    (msgpack.packb({"a": 1}) + b"\x00", "not a valid msgpack"),  # trailing data
    (b"\xd4\x01\x00", "not a valid msgpack"),  # ext type
    (b"\xa2\xff\xfe", "not a valid msgpack"),  # non-UTF-8 string
    (b"\x00" * 100, "exceeds"),
])
def test_undecodable_payloads(payload, fragment):
    with pytest.raises(ProtocolError, match=fragment):
        protocol.unpack_message(payload, 50 if fragment == "exceeds" else 1 << 20)


@pytest.mark.parametrize("reply, fragment", [
    (protocol.encode_error("boom"), "status='error': boom"),
    (msgpack.packb({"status": "ok", "actions": [[0.0] * 21] * 15}), "at least 16"),
    (msgpack.packb({"status": "ok", "actions": [[0.0] * 20] * 16}), "21 numbers"),
    (msgpack.packb({"status": "ok", "actions": [[math.nan] * 21] * 16}), "NaN"),
    (msgpack.packb({"status": "ok", "actions": [["a"] * 21] * 16}), "non-numeric"),
    (msgpack.packb([1, 2]), "must be a map"),
])
def test_client_rejects_bad_replies(reply, fragment):
    with pytest.raises(ProtocolError, match=fragment):
        protocol.parse_action_response(reply, 16, 21)

"""Tests for alfie_gr00t.wire.gr00t against the independent upstream-style codec in gr00t_wire."""

from __future__ import annotations

import io
import os
import struct
import sys

import cv2
import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.dirname(__file__))

from support import gr00t_wire  # noqa: E402

from alfie_gr00t.wire import gr00t as gp  # noqa: E402
from alfie_gr00t import layout  # noqa: E402
from alfie_gr00t.wire.gr00t import Gr00tLimits, Gr00tProtocolError  # noqa: E402

CAMERAS = layout.CAMERA_NAMES
GROUPS = layout.LAYOUT_GROUPS
SIZE = (layout.IMAGE_WIDTH, layout.IMAGE_HEIGHT)
STATE_KEYS = [(g.name, g.size) for g in GROUPS]


def make_observation(batch=1, frames=1, height=layout.IMAGE_HEIGHT, width=layout.IMAGE_WIDTH,
                     language=None, seed=0, state_dtype=np.float32):
    rng = np.random.default_rng(seed)
    video = {
        cam: rng.integers(0, 256, size=(batch, frames, height, width, 3), dtype=np.uint8)
        for cam in CAMERAS
    }
    state = {
        g.name: rng.standard_normal((batch, frames, g.size)).astype(state_dtype) for g in GROUPS
    }
    if language is None:
        language = [[f"pick up cube {i}"] for i in range(batch)]
    return {"video": video, "state": state, "language": {"task": language}}


def convert(observation, limits=Gr00tLimits(), image_size=SIZE):
    return gp.observation_batch(observation, camera_names=CAMERAS, groups=GROUPS, language_key="task",
                                image_size=image_size, limits=limits)


def npy_bytes(array, allow_pickle=False):
    sink = io.BytesIO()
    np.save(sink, array, allow_pickle=allow_pickle)
    return sink.getvalue()


def npy_with_header(header: str, data: bytes = b"") -> bytes:
    text = header.encode("latin-1")
    pad = 64 - (10 + len(text) + 1) % 64
    text = text + b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + data


def marker(npy: bytes) -> bytes:
    return msgpack.packb({"x": {"__ndarray_class__": True, "as_npy": npy}}, use_bin_type=True)


# --------------------------------------------------------------------------- codec round trips


def test_error_is_a_value_error():
    assert issubclass(Gr00tProtocolError, ValueError)


def test_pack_is_byte_identical_to_upstream_encoding():
    obs = make_observation(batch=2)
    request = gr00t_wire.request("get_action", {"observation": obs, "options": None}, api_token="tok")
    assert gp.pack(request) == gr00t_wire.to_bytes(request)
    for array in (np.arange(6, dtype=np.float64).reshape(2, 3), np.zeros((0, 4), np.int16),
                  np.asfortranarray(np.ones((3, 2), np.float32)), np.array(True), np.array(["a", "bc"])):
        assert gp.pack(array) == gr00t_wire.to_bytes(array)


def test_upstream_bytes_decode_with_our_unpack():
    obs = make_observation(batch=3, frames=2)
    payload = gr00t_wire.get_action_request(obs, {"seed": 1})
    decoded = gp.unpack(payload)
    assert decoded["endpoint"] == "get_action"
    assert decoded["data"]["options"] == {"seed": 1}
    got = decoded["data"]["observation"]
    for cam in CAMERAS:
        assert got["video"][cam].dtype == np.uint8
        np.testing.assert_array_equal(got["video"][cam], obs["video"][cam])
    for g in GROUPS:
        assert got["state"][g.name].dtype == np.float32
        np.testing.assert_array_equal(got["state"][g.name], obs["state"][g.name])
    assert got["language"] == obs["language"]
    # zero copy: a read-only view over the message bytes (as msgpack-numpy gives upstream's policy); a write
    # raises instead of silently changing the request
    assert not got["video"][CAMERAS[0]].flags.writeable
    with pytest.raises(ValueError):
        got["video"][CAMERAS[0]][0, 0, 0, 0, 0] = 1


def test_our_bytes_decode_with_upstream_codec():
    actions = np.random.default_rng(1).standard_normal((2, 16, 21)).astype(np.float32)
    reply = [gp.action_dict(actions, GROUPS), {}]
    action, info = gr00t_wire.from_bytes(gp.pack(reply))
    assert info == {}
    assert list(action) == [g.name for g in GROUPS]
    for g in GROUPS:
        assert action[g.name].dtype == np.float32
        np.testing.assert_array_equal(action[g.name], actions[:, :, g.start:g.stop])


def test_request_shapes_match_upstream_client():
    assert gr00t_wire.request("ping", requires_input=False) == {"endpoint": "ping"}
    assert gr00t_wire.request("reset", {"options": None}) == {"endpoint": "reset", "data": {"options": None}}
    assert gr00t_wire.request("kill", requires_input=False, api_token="t") == {"endpoint": "kill", "api_token": "t"}
    assert gp.unpack(gr00t_wire.to_bytes(gr00t_wire.request("get_modality_config", requires_input=False))) == {
        "endpoint": "get_modality_config"}


def test_unpack_accepts_bytes_like_and_rejects_other_types():
    payload = gp.pack({"a": [1, 2.5, None, True, b"\x00"]})
    assert gp.unpack(bytearray(payload)) == {"a": [1, 2.5, None, True, b"\x00"]}
    assert gp.unpack(memoryview(payload)) == {"a": [1, 2.5, None, True, b"\x00"]}
    with pytest.raises(Gr00tProtocolError):
        gp.unpack("not bytes")


def test_pack_converts_numpy_scalars_and_refuses_unknown_objects():
    assert gp.unpack(gp.pack({"t": np.float32(1.5), "n": np.int64(3)})) == {"t": 1.5, "n": 3}
    with pytest.raises(TypeError):
        gp.pack({"x": object()})


# --------------------------------------------------------------------------- modality config


def upstream_config():
    configs = [gr00t_wire.ActionConfig(gr00t_wire.ActionRepresentation.ABSOLUTE, gr00t_wire.ActionType.NON_EEF,
                                       gr00t_wire.ActionFormat.DEFAULT) for _ in GROUPS]
    names = [g.name for g in GROUPS]
    return {
        "video": gr00t_wire.ModalityConfig(delta_indices=[0], modality_keys=list(CAMERAS)),
        "state": gr00t_wire.ModalityConfig(delta_indices=[0], modality_keys=names),
        "action": gr00t_wire.ModalityConfig(delta_indices=list(range(16)), modality_keys=names,
                                            action_configs=configs),
        "language": gr00t_wire.ModalityConfig(delta_indices=[0], modality_keys=["task"]),
    }


def test_modality_config_is_byte_identical_to_upstream_encoding():
    ours = gp.modality_config(CAMERAS, GROUPS, language_key="task", action_horizon=16)
    assert gp.pack(ours) == gr00t_wire.to_bytes(upstream_config())


def test_modality_config_structure():
    config = gp.modality_config(CAMERAS, GROUPS, action_horizon=8)
    assert list(config) == ["video", "state", "action", "language"]
    for value in config.values():
        assert value["__ModalityConfig_class__"] is True
        assert list(value["as_json"]) == ["delta_indices", "modality_keys", "sin_cos_embedding_keys",
                                          "mean_std_embedding_keys", "action_configs"]
    assert config["video"]["as_json"]["modality_keys"] == list(CAMERAS)
    assert config["state"]["as_json"]["modality_keys"] == [g.name for g in GROUPS]
    assert config["action"]["as_json"]["delta_indices"] == list(range(8))
    assert config["language"]["as_json"] == {"delta_indices": [0], "modality_keys": ["task"],
                                             "sin_cos_embedding_keys": None, "mean_std_embedding_keys": None,
                                             "action_configs": None}
    assert config["action"]["as_json"]["action_configs"][0] == {"rep": "ABSOLUTE", "type": "NON_EEF",
                                                                "format": "DEFAULT", "state_key": None}


def test_modality_config_decodes_into_upstream_classes():
    decoded = gr00t_wire.from_bytes(gp.pack(gp.modality_config(CAMERAS, GROUPS, action_reps={"left_arm": "relative"})))
    assert isinstance(decoded["action"], gr00t_wire.ModalityConfig)
    reps = [c.rep for c in decoded["action"].action_configs]
    assert reps[1] is gr00t_wire.ActionRepresentation.RELATIVE
    assert reps[0] is gr00t_wire.ActionRepresentation.ABSOLUTE
    assert decoded["action"].action_configs[0].type is gr00t_wire.ActionType.NON_EEF
    with pytest.raises(ValueError):
        gp.modality_config(CAMERAS, GROUPS, action_reps={"left_arm": "sideways"})
    with pytest.raises(ValueError):
        gp.modality_config(CAMERAS, GROUPS, action_reps={"tail": "relative"})


def test_parse_modality_config_from_every_form():
    expected = {"video_keys": list(CAMERAS), "state_keys": STATE_KEYS, "action_keys": STATE_KEYS,
                "language_key": "task"}
    ours = gp.modality_config(CAMERAS, GROUPS)
    assert gp.parse_modality_config(ours, GROUPS) == expected  # marker maps
    assert gp.parse_modality_config(gp.unpack(gp.pack(ours)), GROUPS) == expected  # plain maps
    assert gp.parse_modality_config(gp.unpack(gr00t_wire.to_bytes(upstream_config())), GROUPS) == expected
    assert gp.parse_modality_config(upstream_config(), GROUPS) == expected  # class instances


def test_parse_modality_config_returns_layout_order():
    config = upstream_config()
    config["action"] = gr00t_wire.ModalityConfig(delta_indices=list(range(16)),
                                                 modality_keys=["head", "right_arm", "left_arm", "base_velocity"])
    parsed = gp.parse_modality_config(gp.unpack(gr00t_wire.to_bytes(config)), GROUPS)
    assert parsed["action_keys"] == STATE_KEYS


@pytest.mark.parametrize("mutate, words", [
    (lambda c: c["state"].modality_keys.append("tail"), "tail"),
    (lambda c: c["action"].modality_keys.remove("head"), "head"),
    (lambda c: c["language"].modality_keys.append("second"), "language"),
    (lambda c: c.pop("video"), "video"),
    (lambda c: c["state"].modality_keys.append("head"), "duplicate"),
])
def test_parse_modality_config_errors(mutate, words):
    config = upstream_config()
    mutate(config)
    with pytest.raises(Gr00tProtocolError, match=words):
        gp.parse_modality_config(gp.unpack(gr00t_wire.to_bytes(config)), GROUPS)


@pytest.mark.parametrize("decoded", [
    None, [1, 2], {"error": "boom"}, {"video": 3, "state": {}, "action": {}, "language": {}},
    {"video": {"modality_keys": []}, "state": {}, "action": {}, "language": {}},
    {"video": {"__ModalityConfig_class__": True, "as_json": 5}, "state": {}, "action": {}, "language": {}},
])
def test_parse_modality_config_refuses_garbage(decoded):
    with pytest.raises(Gr00tProtocolError):
        gp.parse_modality_config(decoded, GROUPS)


# --------------------------------------------------------------------------- observation_batch


def test_observation_batch_single_no_resize():
    obs = make_observation(batch=1)
    batch = convert(gp.unpack(gr00t_wire.to_bytes(obs)))
    assert batch.batch_size == 1
    assert batch.language == ("pick up cube 0",)
    assert batch.state.shape == (1, 21) and batch.state.dtype == np.float32
    expected_state = np.concatenate([obs["state"][g.name][:, -1] for g in GROUPS], axis=1)
    np.testing.assert_array_equal(batch.state, expected_state)
    for cam in CAMERAS:
        assert batch.images[cam].shape == (1, layout.IMAGE_HEIGHT, layout.IMAGE_WIDTH, 3)
        assert batch.images[cam].dtype == np.uint8
        assert batch.images[cam].flags.c_contiguous
        np.testing.assert_array_equal(batch.images[cam], obs["video"][cam][:, 0])


def test_observation_batch_three_with_resize_last_frame_and_float64_state():
    obs = make_observation(batch=3, frames=2, height=480, width=640, state_dtype=np.float64)
    batch = convert(gp.unpack(gr00t_wire.to_bytes(obs)))
    assert batch.batch_size == 3
    assert batch.language == ("pick up cube 0", "pick up cube 1", "pick up cube 2")
    assert batch.state.dtype == np.float32
    np.testing.assert_allclose(batch.state[:, 6:12], obs["state"]["left_arm"][:, -1].astype(np.float32))
    np.testing.assert_allclose(batch.state[:, 18:21], obs["state"]["head"][:, -1].astype(np.float32))
    for cam in CAMERAS:
        assert batch.images[cam].shape == (3, layout.IMAGE_HEIGHT, layout.IMAGE_WIDTH, 3)
        for i in range(3):
            expected = cv2.resize(obs["video"][cam][i, -1], SIZE, interpolation=cv2.INTER_AREA)
            np.testing.assert_array_equal(batch.images[cam][i], expected)


@pytest.mark.parametrize("language", [
    ["a", "b"],
    [["a"], ["b"]],
    np.array([["a"], ["b"]]),
    (("a",), ("b",)),
])
def test_observation_batch_language_forms(language):
    obs = make_observation(batch=2, language=language)
    assert convert(obs).language == ("a", "b")


def test_observation_batch_maps_video_keys_to_camera_names():
    obs = make_observation(batch=1, height=8, width=8)
    renamed = {"video": {f"cam{i}": obs["video"][cam] for i, cam in enumerate(CAMERAS)},
               "state": obs["state"], "language": obs["language"]}
    batch = gp.observation_batch(renamed, camera_names=CAMERAS, video_keys=[f"cam{i}" for i in range(4)],
                                 groups=GROUPS, language_key="task", image_size=(8, 8))
    assert list(batch.images) == list(CAMERAS)
    np.testing.assert_array_equal(batch.images[CAMERAS[2]][0], obs["video"][CAMERAS[2]][0, 0])
    with pytest.raises(Gr00tProtocolError, match="cam3"):
        del renamed["video"]["cam3"]
        gp.observation_batch(renamed, camera_names=CAMERAS, video_keys=[f"cam{i}" for i in range(4)],
                             groups=GROUPS, language_key="task", image_size=(8, 8))


def _del(path):
    def apply(obs):
        modality, key = path
        del obs[modality][key]
    return apply


def _set(path, value):
    def apply(obs):
        modality, key = path
        obs[modality][key] = value(obs) if callable(value) else value
    return apply


CAM = CAMERAS[0]
ERROR_CASES = [
    ("missing camera", _del(("video", CAM)), CAM),
    ("extra camera", _set(("video", "belly_cam"), lambda o: o["video"][CAM].copy()), "belly_cam"),
    ("missing state key", _del(("state", "head")), "head"),
    ("extra state key", _set(("state", "tail"), np.zeros((1, 1, 2), np.float32)), "tail"),
    ("video ndim", _set(("video", CAM), lambda o: o["video"][CAM][0]), "(B,T,H,W,3)"),
    ("video dtype", _set(("video", CAM), lambda o: o["video"][CAM].astype(np.float32)), "uint8"),
    ("video channels", _set(("video", CAM), np.zeros((1, 1, 8, 8, 4), np.uint8)), "(B,T,H,W,3)"),
    ("video not array", _set(("video", CAM), [[[[0, 0, 0]]]]), "ndarray"),
    ("batch mismatch", _set(("state", "left_arm"), np.zeros((2, 1, 6), np.float32)), "differs"),
    ("batch zero", _set(("video", CAM), np.zeros((0, 1, 8, 8, 3), np.uint8)), "B is 0"),
    ("too many frames", _set(("video", CAM), np.zeros((1, 5, 8, 8, 3), np.uint8)), "T=5"),
    ("zero frames", _set(("state", "head"), np.zeros((1, 0, 3), np.float32)), "T=0"),
    ("nan state", _set(("state", "head"), np.array([[[0.0, np.nan, 0.0]]], np.float32)), "finite"),
    ("inf state", _set(("state", "head"), np.array([[[np.inf, 0.0, 0.0]]], np.float32)), "finite"),
    ("float64 overflow", _set(("state", "head"), np.array([[[1e300, 0.0, 0.0]]])), "finite"),
    ("state size", _set(("state", "head"), np.zeros((1, 1, 4), np.float32)), "(B,T,3)"),
    ("state ndim", _set(("state", "head"), np.zeros((1, 3), np.float32)), "(B,T,3)"),
    ("state dtype", _set(("state", "head"), np.zeros((1, 1, 3), np.bool_)), "float"),
    ("state not array", _set(("state", "head"), [[[0.0, 0.0, 0.0]]]), "ndarray"),
    ("language too long", _set(("language", "task"), [["x" * 1025]]), "1025 chars"),
    ("language not str", _set(("language", "task"), [[5]]), "expected str"),
    ("language bare str", _set(("language", "task"), "pick"), "list"),
    ("language batch", _set(("language", "task"), [["a"], ["b"]]), "differs"),
    ("language empty item", _set(("language", "task"), [[]]), "1..4"),
    ("missing language key", _del(("language", "task")), "task"),
    ("wrong language key", _set(("language", "instruction"), [["a"]]), "instruction"),
]


@pytest.mark.parametrize("name, mutate, words", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_observation_batch_errors(name, mutate, words):
    obs = make_observation(batch=1, height=8, width=8)
    mutate(obs)
    with pytest.raises(Gr00tProtocolError) as info:
        convert(obs)
    assert words in str(info.value)


def test_observation_batch_batch_limit_and_image_limit():
    obs = make_observation(batch=3, height=8, width=8)
    with pytest.raises(Gr00tProtocolError, match="B=3 exceeds the limit of 2"):
        convert(obs, limits=Gr00tLimits(max_batch_size=2))
    obs = make_observation(batch=1, height=8, width=40)
    with pytest.raises(Gr00tProtocolError, match="40x8"):
        convert(obs, limits=Gr00tLimits(max_image_side=32))


@pytest.mark.parametrize("observation", [None, [], {"video": {}, "state": {}}, {"video": [], "state": {}, "language": {}}])
def test_observation_batch_refuses_non_maps(observation):
    with pytest.raises(Gr00tProtocolError):
        convert(observation)


# --------------------------------------------------------------------------- actions and client side


def test_action_dict_splits_in_layout_order():
    actions = np.arange(2 * 16 * 21, dtype=np.float64).reshape(2, 16, 21)
    split = gp.action_dict(actions, GROUPS)
    assert list(split) == [g.name for g in GROUPS]
    for g in GROUPS:
        assert split[g.name].shape == (2, 16, g.size) and split[g.name].dtype == np.float32
        np.testing.assert_array_equal(split[g.name], actions[:, :, g.start:g.stop])
    with pytest.raises(ValueError):
        gp.action_dict(np.zeros((16, 21)), GROUPS)
    with pytest.raises(ValueError):
        gp.action_dict(np.zeros((1, 16, 20)), GROUPS)


def test_observation_dict_matches_upstream_shape_and_round_trips():
    rng = np.random.default_rng(3)
    frames = {cam: rng.integers(0, 256, (layout.IMAGE_HEIGHT, layout.IMAGE_WIDTH, 3), dtype=np.uint8)
              for cam in CAMERAS}
    state = rng.standard_normal(21)
    obs = gp.observation_dict(frames, state, "wave", state_keys=STATE_KEYS, language_key="task")
    assert obs["language"] == {"task": [["wave"]]}
    assert obs["video"][CAM].shape == (1, 1, layout.IMAGE_HEIGHT, layout.IMAGE_WIDTH, 3)
    assert obs["state"]["right_arm"].shape == (1, 1, 6) and obs["state"]["right_arm"].dtype == np.float32
    np.testing.assert_array_equal(obs["state"]["right_arm"][0, 0], state[12:18].astype(np.float32))
    # what upstream's server would receive, and what ours makes of it
    upstream_view = gr00t_wire.from_bytes(gp.pack(gr00t_wire.request("get_action", {"observation": obs, "options": None})))
    assert upstream_view["data"]["observation"]["state"]["head"].dtype == np.float32
    batch = convert(gp.unpack(gp.pack(obs)))
    np.testing.assert_array_equal(batch.state[0], state.astype(np.float32))
    np.testing.assert_array_equal(batch.images[CAM][0], frames[CAM])
    assert batch.language == ("wave",)


def test_observation_dict_errors():
    frame = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(Gr00tProtocolError, match="sum to 21"):
        gp.observation_dict({CAM: frame}, np.zeros(20), "x", state_keys=STATE_KEYS, language_key="task")
    with pytest.raises(Gr00tProtocolError, match="uint8"):
        gp.observation_dict({CAM: frame.astype(np.float32)}, np.zeros(21), "x", state_keys=STATE_KEYS,
                            language_key="task")


def test_chunk_round_trip_through_upstream_codec():
    actions = np.random.default_rng(4).standard_normal((1, 16, 21)).astype(np.float32)
    wire = gr00t_wire.to_bytes([gr00t_wire.from_bytes(gp.pack(gp.action_dict(actions, GROUPS))), {}])
    reply = gp.unpack(wire)
    chunk = gp.chunk_from_action_dict(reply[0], action_keys=STATE_KEYS, horizon=16, dim=21)
    assert chunk.shape == (16, 21) and chunk.dtype == np.float32
    np.testing.assert_array_equal(chunk, actions[0])
    np.testing.assert_array_equal(gp.chunk_from_action_dict(reply, action_keys=STATE_KEYS, horizon=16, dim=21),
                                  actions[0])


def test_chunk_accepts_two_dim_and_longer_horizons():
    rng = np.random.default_rng(5)
    action = {g.name: rng.standard_normal((20, g.size)) for g in GROUPS}
    chunk = gp.chunk_from_action_dict(action, action_keys=STATE_KEYS, horizon=16, dim=21)
    assert chunk.shape == (16, 21) and chunk.dtype == np.float32
    np.testing.assert_allclose(chunk[:, 18:21], action["head"][:16].astype(np.float32))


def _actions(**override):
    action = {g.name: np.zeros((1, 16, g.size), np.float32) for g in GROUPS}
    action.update(override)
    return action


@pytest.mark.parametrize("actions, kwargs, words", [
    ([1, 2, 3], {}, "expected a map"),
    ({k: v for k, v in _actions().items() if k != "head"}, {}, "head"),
    (_actions(head=np.zeros((1, 16, 3), dtype="<U1")), {}, "numeric"),
    (_actions(head=[[[0.0, 0.0, 0.0]]] * 16), {}, "numeric"),
    (_actions(head=np.full((1, 16, 3), np.nan, np.float32)), {}, "finite"),
    (_actions(head=np.zeros((1, 8, 3), np.float32)), {}, "at least 16"),
    (_actions(head=np.zeros((1, 16, 4), np.float32)), {}, "(H,3)"),
    (_actions(head=np.zeros((2, 16, 3), np.float32)), {}, "(1,H,3)"),
    (_actions(), {"dim": 22}, "sum to 21"),
])
def test_chunk_from_action_dict_errors(actions, kwargs, words):
    args = {"action_keys": STATE_KEYS, "horizon": 16, "dim": 21, **kwargs}
    with pytest.raises(Gr00tProtocolError) as info:
        gp.chunk_from_action_dict(actions, **args)
    assert words in str(info.value)


# --------------------------------------------------------------------------- hostile payloads

_TRAP = {"fired": False}


def _trap_fired():
    _TRAP["fired"] = True
    return "unpickled"


class PickleTrap:
    def __reduce__(self):
        return (_trap_fired, ())


def test_object_dtype_is_refused_without_unpickling():
    armed = npy_bytes(np.array([PickleTrap(), 1], dtype=object), allow_pickle=True)
    _TRAP["fired"] = False
    with pytest.raises(Gr00tProtocolError, match="refused"):
        gp.unpack(marker(armed))
    assert _TRAP["fired"] is False
    # the payload really is armed: numpy with pickles allowed runs the trap
    np.load(io.BytesIO(armed), allow_pickle=True)
    assert _TRAP["fired"] is True
    _TRAP["fired"] = False


def test_truncated_npy_is_refused():
    good = npy_bytes(np.arange(100, dtype=np.float32))
    for cut in (0, 5, 9, 11, 60, len(good) - 200, len(good) - 1):
        with pytest.raises(Gr00tProtocolError):
            gp.unpack(marker(good[:cut]))
    with pytest.raises(Gr00tProtocolError, match="trailing"):
        gp.unpack(marker(good + b"\x00"))


def test_absurd_shape_is_refused_before_allocation():
    npy = npy_with_header("{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000, 1000000000), }")
    with pytest.raises(Gr00tProtocolError, match="limit"):
        gp.unpack(marker(npy))


def test_array_byte_limit_applies():
    npy = npy_bytes(np.zeros(1000, np.float64))
    assert gp.unpack(marker(npy))["x"].shape == (1000,)
    with pytest.raises(Gr00tProtocolError, match="limit is 4096"):
        gp.unpack(marker(npy), Gr00tLimits(max_array_bytes=4096))


@pytest.mark.parametrize("header", [
    "{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 4), }",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (True,), }",
    "{'descr': '<f4', 'fortran_order': False, 'shape': 4, }",
    "{'descr': '<f4', 'fortran_order': False, 'shape': [4], }",
    "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }",
    "{'descr': '|V8', 'fortran_order': False, 'shape': (1,), }",
    "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }",
    "{'descr': '<M8[ns]', 'fortran_order': False, 'shape': (1,), }",
    "{'descr': '<f4,<i4', 'fortran_order': False, 'shape': (1,), }",
    "{'descr': '|S0', 'fortran_order': False, 'shape': (1,), }",
    "{'descr': '<f4', 'fortran_order': 0, 'shape': (1,), }",
    "{'descr': '<f4', 'shape': (1,), }",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'extra': 1}",
    "__import__('os').system('false')",
    "[" * 1000 + "]" * 1000,
    "{'descr': '<f4', 'fortran_order': False, 'shape': (" + "1, " * 40 + "), }",
])
def test_bad_npy_headers_are_refused(header):
    with pytest.raises(Gr00tProtocolError):
        gp.unpack(marker(npy_with_header(header, b"\x00" * 4)))


def test_bad_npy_framing_is_refused():
    good = npy_bytes(np.zeros(2, np.float32))
    with pytest.raises(Gr00tProtocolError, match="magic"):
        gp.unpack(marker(b"PK\x03\x04" + good[4:]))
    with pytest.raises(Gr00tProtocolError, match="version"):
        gp.unpack(marker(good[:6] + b"\x09\x00" + good[8:]))
    with pytest.raises(Gr00tProtocolError, match="exceeds"):
        gp.unpack(marker(b"\x93NUMPY\x02\x00" + struct.pack("<I", 1 << 30) + b"{}"))
    with pytest.raises(Gr00tProtocolError, match="as_npy"):
        gp.unpack(msgpack.packb({"__ndarray_class__": True, "as_npy": "text"}, use_bin_type=True))
    with pytest.raises(Gr00tProtocolError, match="as_npy"):
        gp.unpack(msgpack.packb({"__ndarray_class__": True}, use_bin_type=True))
    with pytest.raises(Gr00tProtocolError, match="as_json"):
        gp.unpack(msgpack.packb({"__ModalityConfig_class__": True, "as_json": [1]}, use_bin_type=True))


def test_npy_versions_2_and_3_are_read():
    array = np.arange(6, dtype=np.int32).reshape(2, 3)
    v1 = npy_bytes(array)
    header_len = struct.unpack("<H", v1[8:10])[0]
    header = v1[10:10 + header_len]
    body = v1[10 + header_len:]
    for version in (2, 3):
        v = b"\x93NUMPY" + bytes([version, 0]) + struct.pack("<I", len(header)) + header + body
        np.testing.assert_array_equal(gp.unpack(marker(v))["x"], array)


@pytest.mark.parametrize("value", [
    msgpack.ExtType(5, b"abc"),
    [1, msgpack.ExtType(0, b"")],
    {"k": msgpack.ExtType(127, b"z")},
    msgpack.Timestamp(10, 0),
    [msgpack.Timestamp(1, 5)],
    {"t": msgpack.Timestamp(1, 5)},
])
def test_ext_types_are_refused(value):
    with pytest.raises(Gr00tProtocolError, match="extension type"):
        gp.unpack(msgpack.packb(value, use_bin_type=True, datetime=False))


@pytest.mark.parametrize("payload", [
    b"\xa2\xff\xfe",
    b"\x81\xa1k\xa2\xc3\x28",
    b"\x81\xa2\xff\xfe\x01",
])
def test_non_utf8_strings_are_refused(payload):
    with pytest.raises(Gr00tProtocolError, match="UTF-8"):
        gp.unpack(payload)


@pytest.mark.parametrize("payload", [
    b"",
    b"\xc1",
    b"\x92\x01",
    b"\x01\x02",
    b"\x81\x01\x02",
    b"\xdd\xff\xff\xff\xff",
    b"\xdf\xff\xff\xff\xff",
    b"\xc6\xff\xff\xff\xff",
    b"\xdb\x7f\xff\xff\xff",
    b"\x91" * 5000 + b"\xc0",
    b"\x81\x91\x01\x02",
])
def test_malformed_msgpack_is_refused(payload):
    with pytest.raises(Gr00tProtocolError):
        gp.unpack(payload)


# --------------------------------------------------------------------------- property tests

_leaves = (st.none() | st.booleans() | st.integers(-(2 ** 63), 2 ** 64 - 1)
           | st.floats(allow_nan=False) | st.text(max_size=20) | st.binary(max_size=20))
_trees = st.recursive(_leaves, lambda children: st.lists(children, max_size=5)
                      | st.dictionaries(st.text(max_size=8), children, max_size=5), max_leaves=30)


def _assert_plain(value):
    stack = [value]
    while stack:
        item = stack.pop()
        assert not isinstance(item, (msgpack.ExtType, msgpack.Timestamp))
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _decode_or_refuse(payload):
    try:
        value = gp.unpack(payload)
    except Gr00tProtocolError:
        return None
    _assert_plain(value)
    return value


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_trees)
def test_random_trees_round_trip(tree):
    assert gp.unpack(gp.pack(tree)) == tree
    assert gp.unpack(gr00t_wire.to_bytes(tree)) == tree


def _valid_messages():
    small = make_observation(batch=1, height=4, width=4)
    return [
        gp.pack(gr00t_wire.request("get_action", {"observation": small, "options": None}, api_token="x")),
        gp.pack(gp.modality_config(CAMERAS, GROUPS)),
        gp.pack([gp.action_dict(np.ones((1, 4, 21)), GROUPS), {}]),
        gp.pack({"a": np.arange(5, dtype=np.int16), "b": [np.array(["u"]), np.zeros((2, 0))]}),
    ]


_VALID = _valid_messages()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(range(len(_VALID))), st.data())
def test_corrupted_messages_only_decode_or_refuse(index, data):
    payload = bytearray(_VALID[index])
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(payload) - 1), st.integers(0, 7)), max_size=6))
    for position, bit in flips:
        payload[position] ^= 1 << bit
    cut = data.draw(st.integers(0, len(payload)))
    _decode_or_refuse(bytes(payload))
    _decode_or_refuse(bytes(payload[:cut]))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_only_decode_or_refuse(payload):
    _decode_or_refuse(payload)
    _decode_or_refuse(b"\x81\xa1x\x82\xb1__ndarray_class__\xc3\xa6as_npy\xc4" + bytes([len(payload)]) + payload)


# --------------------------------------------------------------------------- the helper itself, over loopback


class _Policy:
    def get_action(self, observation, options=None):
        batch = convert(observation)
        actions = np.repeat(batch.state[:, None, :], 16, axis=1)
        return gp.action_dict(actions, GROUPS), {"seen": batch.batch_size}

    def reset(self, options=None):
        return {"reset": True}

    def get_modality_config(self):
        return upstream_config()


def test_wire_helper_speaks_upstream_protocol_over_zmq():
    with gr00t_wire.FakePolicyServer(_Policy(), api_token="secret") as server:
        with gr00t_wire.WireClient(server.address, api_token="secret") as client:
            assert client.ping() is True
            config = client.get_modality_config()
            assert gp.parse_modality_config(config, GROUPS)["language_key"] == "task"
            obs = gp.observation_dict({cam: np.zeros((8, 8, 3), np.uint8) for cam in CAMERAS},
                                      np.arange(21, dtype=np.float32), "go", state_keys=STATE_KEYS,
                                      language_key="task")
            action, info = client.get_action(obs)
            assert info == {"seen": 1}
            chunk = gp.chunk_from_action_dict(action, action_keys=STATE_KEYS, horizon=16, dim=21)
            np.testing.assert_array_equal(chunk[5], np.arange(21, dtype=np.float32))
            assert client.reset() == {"reset": True}
            with pytest.raises(gr00t_wire.ServerError, match="Unknown endpoint: fly"):
                client.call_endpoint("fly", requires_input=False)
            assert [r["endpoint"] for r in server.requests] == ["ping", "get_modality_config", "get_action",
                                                                 "reset", "fly"]
            assert "data" not in server.requests[0] and server.requests[0]["api_token"] == "secret"
        with gr00t_wire.WireClient(server.address, api_token="wrong") as intruder:
            with pytest.raises(gr00t_wire.ServerError, match="Unauthorized"):
                intruder.ping()
        with gr00t_wire.WireClient(server.address, api_token="secret") as client:
            assert client.kill_server() is None
        server._thread.join(timeout=5)
        assert not server.running

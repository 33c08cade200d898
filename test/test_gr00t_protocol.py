"""Tests for alfie_gr00t.wire.gr00t against the independent upstream-style codec in gr00t_wire."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from alfie_gr00t import layout
from alfie_gr00t.wire import gr00t as gp
from alfie_gr00t.wire.gr00t import Gr00tLimits, Gr00tProtocolError

from support import gr00t_wire
from support.gr00t_observations import CAMERAS, GROUPS, SIZE, STATE_KEYS, convert, make_observation


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

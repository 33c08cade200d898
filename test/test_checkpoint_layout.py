"""The checkpoint is the truth (docs/design.md#the-checkpoint-is-the-truth): the server adopts an Isaac-GR00T checkpoint's
layout where the parameters are at their defaults, refuses contradictions at start with both
sides named, and reports what it serves in its status, /diagnostics and get_modality_config.

The checkpoint is the fake Gr00tPolicy of support/fake_gr00t.py (a test double mirroring
upstream's API: get_modality_config(), processor.state_action_processor.statistics), loaded
through the real registry, ServerConfig and PolicyService; requests go through the real
wire decoding (both protocols).
"""

import dataclasses

import msgpack
import numpy as np
import pytest

from alfie_gr00t import layout
from alfie_gr00t.engines.base import EngineError
from alfie_gr00t.engines.registry import create_engine
from alfie_gr00t.nodes.diagnostics import server_diagnostics
from alfie_gr00t.server.config import ServerConfig
from alfie_gr00t.server.service import PolicyService
from alfie_gr00t.wire import protocol

from support import gr00t_wire
from support.fake_gr00t import FakePolicy, install_fake_gr00t, upstream_modalities, upstream_statistics

LANGUAGE_KEYS = ("annotation.human.task_description", "annotation.human.action.task_description", "task")


@pytest.fixture
def fake_gr00t(monkeypatch):
    return install_fake_gr00t(monkeypatch)


@pytest.fixture
def checkpoint(tmp_path):
    """A directory the registry classifies as an Isaac-GR00T checkpoint (config.json + weights)."""
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    return tmp_path


def server_config(checkpoint, **overrides) -> ServerConfig:
    return ServerConfig(mock_mode=False, model_checkpoint=str(checkpoint), device="cpu", warmup_runs=0,
                        decode_threads=1, **overrides)


def serve(config: ServerConfig) -> PolicyService:
    return PolicyService(create_engine(config.engine_config()), config)


def observation_request(state, language="wave") -> bytes:
    rng = np.random.default_rng(1)
    images = {cam: protocol.RawImage(layout.IMAGE_WIDTH, layout.IMAGE_HEIGHT,
                                     rng.integers(0, 256, (layout.IMAGE_HEIGHT, layout.IMAGE_WIDTH, 3),
                                                  dtype=np.uint8).tobytes())
              for cam in layout.CAMERA_NAMES}
    return protocol.encode_observation(1.0, 7, images, state, language)


def actions_of(reply: bytes) -> np.ndarray:
    message = msgpack.unpackb(reply, raw=False)
    assert message["status"] == "ok", message.get("error_message")
    return np.asarray(message["actions"], dtype=np.float32)


@pytest.mark.parametrize("language_key", LANGUAGE_KEYS)
def test_default_parameters_serve_each_upstream_language_spelling(fake_gr00t, checkpoint, language_key, monkeypatch):
    monkeypatch.setattr(FakePolicy, "modalities", upstream_modalities(language=language_key))
    service = serve(server_config(checkpoint))
    state = np.linspace(-0.1, 0.1, 21, dtype=np.float32)
    chunk = actions_of(service.respond(observation_request(state, "pick up the can")))
    np.testing.assert_allclose(chunk, np.repeat(state[None], 16, axis=0), atol=1e-6)
    seen = fake_gr00t.instances[-1].seen
    assert seen["language"] == {language_key: [["pick up the can"]]}
    assert service.config.language_key == language_key
    served = service.status()["layout"]
    assert served["source"] == "checkpoint" and served["language_key"] == language_key
    assert served["adopted"] == ([] if language_key == "task" else ["language_key"])


def test_isaac_gr00t_wire_reports_and_takes_the_adopted_layout(fake_gr00t, checkpoint):
    service = serve(server_config(checkpoint))
    reply = gr00t_wire.from_bytes(service.respond(gr00t_wire.to_bytes(
        gr00t_wire.request("get_modality_config", requires_input=False))))
    assert list(reply["language"].modality_keys) == ["annotation.human.task_description"]
    assert list(reply["state"].modality_keys) == [g.name for g in layout.LAYOUT_GROUPS]
    state = np.arange(21, dtype=np.float32) / 100
    observation = {  # upstream's nested observation, B = T = 1
        "video": {key: np.zeros((1, 1, layout.IMAGE_HEIGHT, layout.IMAGE_WIDTH, 3), np.uint8)
                  for key in layout.CAMERA_NAMES},
        "state": {g.name: state[None, None, g.start:g.stop] for g in layout.LAYOUT_GROUPS},
        "language": {"annotation.human.task_description": [["wave"]]}}
    action, info = gr00t_wire.from_bytes(service.respond(gr00t_wire.get_action_request(observation)))
    np.testing.assert_allclose(action["left_arm"][0, 0], state[6:12], atol=1e-6)


class LeftArmPolicy(FakePolicy):
    """Moves the left arm +0.3 rad from the state; holds everything else."""

    def get_action(self, observation, options=None):
        action, info = super().get_action(observation, options)
        action["left_arm"] = action["left_arm"] + np.float32(0.3)
        return action, info


def test_left_arm_moves_in_the_robots_dims_whatever_order_the_checkpoint_lists(fake_gr00t, checkpoint, monkeypatch):
    import sys

    theirs = [("head", 3), ("right_arm", 6), ("left_arm", 6), ("base_velocity", 6)]
    monkeypatch.setattr(FakePolicy, "modalities", upstream_modalities(groups=theirs))
    monkeypatch.setattr(FakePolicy, "statistics", upstream_statistics(theirs))
    monkeypatch.setattr(sys.modules["gr00t.policy.gr00t_policy"], "Gr00tPolicy", LeftArmPolicy)
    service = serve(server_config(checkpoint))
    state = np.full(21, 0.1, dtype=np.float32)
    chunk = actions_of(service.respond(observation_request(state)))
    expected = np.repeat(state[None], 16, axis=0)
    expected[:, 6:12] += 0.3
    np.testing.assert_allclose(chunk, expected, atol=1e-6)
    assert list(service.status()["layout"]["groups"]) == [g.name for g in layout.LAYOUT_GROUPS]


def test_another_robots_groups_are_adopted_with_sizes(fake_gr00t, checkpoint, monkeypatch):
    theirs = [("arm", 7), ("gripper", 1), ("torso", 13)]
    monkeypatch.setattr(FakePolicy, "modalities", upstream_modalities(groups=theirs))
    monkeypatch.setattr(FakePolicy, "statistics", upstream_statistics(theirs))
    service = serve(server_config(checkpoint))
    assert service.status()["layout"]["groups"] == {"arm": 7, "gripper": 1, "torso": 13}
    assert "state_groups" in service.status()["layout"]["adopted"]
    state = np.linspace(0, 1, 21, dtype=np.float32)
    actions_of(service.respond(observation_request(state)))
    assert fake_gr00t.instances[-1].seen["state"]["gripper"][0, 0].tolist() == [state[7]]


def test_explicit_contradicting_language_key_refuses_naming_both(fake_gr00t, checkpoint):
    with pytest.raises(EngineError) as err:
        serve(server_config(checkpoint, language_key="instruction"))
    assert "parameter 'instruction'" in str(err.value)
    assert "checkpoint 'annotation.human.task_description'" in str(err.value)


def test_wrong_group_size_refuses(fake_gr00t, checkpoint):
    with pytest.raises(EngineError, match=r"state group 'left_arm': parameter size 5, checkpoint size 6 "
                                          r"\(statistics.json\)"):
        serve(server_config(checkpoint, state_group_sizes=(6, 5, 7, 3)))


def test_checkpoint_groups_not_adding_up_to_action_dim_refuse(fake_gr00t, checkpoint, monkeypatch):
    theirs = [("arm", 7), ("gripper", 1)]
    monkeypatch.setattr(FakePolicy, "modalities", upstream_modalities(groups=theirs))
    monkeypatch.setattr(FakePolicy, "statistics", upstream_statistics(theirs))
    with pytest.raises(EngineError, match=r"\[arm 7, gripper 1\] add up to 8 dims, action_dim is 21: "
                                          r"set action_dim:=8"):
        serve(server_config(checkpoint))


def test_camera_without_a_video_key_refuses(fake_gr00t, checkpoint, monkeypatch):
    monkeypatch.setattr(FakePolicy, "modalities", upstream_modalities(video=("left_wide", "right_wide", "ego")))
    with pytest.raises(EngineError) as err:
        serve(server_config(checkpoint))
    assert "camera(s) ['left_center', 'right_center'] have no video key" in str(err.value)
    assert "['left_wide', 'right_wide', 'ego']" in str(err.value)


def test_two_time_steps_refuse(fake_gr00t, checkpoint, monkeypatch):
    monkeypatch.setattr(FakePolicy, "modalities", upstream_modalities(state_steps=2))
    with pytest.raises(EngineError, match=r"state uses 2 time steps \(delta_indices \[0, 1\]\)"):
        serve(server_config(checkpoint))
    monkeypatch.setattr(FakePolicy, "modalities", upstream_modalities(video_steps=2))
    with pytest.raises(EngineError, match="video uses 2 time steps"):
        serve(server_config(checkpoint))


def test_statistics_for_another_embodiment_refuse(fake_gr00t, checkpoint):
    with pytest.raises(EngineError, match=r"no embodiment 'gr1' \(they have \['new_embodiment'\]\)"):
        class OtherTag(FakePolicy):
            def __init__(self, embodiment_tag, model_path, *, device, strict=True):
                super().__init__(embodiment_tag, model_path, device=device)
                self.processor.state_action_processor.statistics = {"new_embodiment": upstream_statistics()}

        import sys

        sys.modules["gr00t.policy.gr00t_policy"].Gr00tPolicy = OtherTag
        serve(server_config(checkpoint, embodiment_tag="gr1"))


def test_status_and_diagnostics_carry_the_layout(fake_gr00t, checkpoint):
    service = serve(server_config(checkpoint))
    status = service.status()
    assert status["layout"] == {
        "source": "checkpoint", "language_key": "annotation.human.task_description",
        "language_keys": ["annotation.human.task_description"],
        "video_keys": {cam: cam for cam in layout.CAMERA_NAMES},
        "groups": {"base_velocity": 6, "left_arm": 6, "right_arm": 6, "head": 3}, "adopted": ["language_key"]}
    values = dict(server_diagnostics(status).values)
    assert values["layout"] == ("checkpoint: language key 'annotation.human.task_description'; groups "
                                "base_velocity 6, left_arm 6, right_arm 6, head 3")
    assert values["layout.groups.head"] == "3" and values["layout.video_keys.left_wide"] == "left_wide"


def test_mock_and_single_graph_engines_serve_the_parameters_layout():
    config = ServerConfig(mock_mode=True, warmup_runs=0, decode_threads=1, language_key="prompt")
    service = serve(config)
    served = service.status()["layout"]
    assert served["source"] == "parameters" and served["language_key"] == "prompt" and served["adopted"] == []


def test_adoptable_defaults_are_the_engines_defaults():
    """The engine tells 'left at default' from 'set' by comparing with EngineConfig's defaults."""
    from alfie_gr00t.engines.base import EngineConfig

    ours, engine = ServerConfig().engine_config(), EngineConfig()
    for name in ("language_key", "video_keys", "state_groups", "camera_names"):
        assert getattr(ours, name) == getattr(engine, name), name


def test_with_layout_revalidates():
    served = dataclasses.replace(
        ServerConfig(), language_key="x").with_layout(
        type("L", (), {"language_key": "k", "video_keys": layout.CAMERA_NAMES,
                       "groups": layout.groups_from_sizes(["a"], [21])})())
    assert served.state_group_names == ("a",) and served.language_key == "k"
    with pytest.raises(ValueError, match="sum to 20, action_dim is 21"):
        ServerConfig().with_layout(type("L", (), {"language_key": "k", "video_keys": layout.CAMERA_NAMES,
                                                   "groups": layout.groups_from_sizes(["a"], [20])})())


def test_statistics_json_beside_the_checkpoint_gives_the_sizes(fake_gr00t, checkpoint, monkeypatch):
    """A policy object without processor statistics: the checkpoint's statistics.json (as
    Gr00tN1d6Processor.save_pretrained writes it: {tag: {modality: {group: {stat: [...]}}}}) decides."""
    import json
    import sys

    class NoProcessor(FakePolicy):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            del self.processor

    monkeypatch.setattr(sys.modules["gr00t.policy.gr00t_policy"], "Gr00tPolicy", NoProcessor)
    wrong = [("base_velocity", 6), ("left_arm", 6), ("right_arm", 6), ("head", 2)]
    (checkpoint / "statistics.json").write_text(json.dumps({"new_embodiment": upstream_statistics(wrong)}))
    with pytest.raises(EngineError, match=r"add up to 20 dims, action_dim is 21"):
        serve(server_config(checkpoint))
    with pytest.raises(EngineError, match=r"state group 'right_arm': parameter size 7, checkpoint size 6"):
        serve(server_config(checkpoint, state_group_sizes=(6, 6, 7, 2)))

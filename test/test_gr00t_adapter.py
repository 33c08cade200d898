"""The Isaac-GR00T adapter without gr00t or torch: pure conversions both ways, and the
engine class driven through stand-in `torch` / `gr00t` modules shaped like upstream's."""

import dataclasses
import sys
import types
from types import SimpleNamespace

import numpy as np
import pytest

from alfie_gr00t import layout
from alfie_gr00t.engines.base import EngineConfig, EngineError, ObservationBatch
from alfie_gr00t.engines.gr00t_policy_engine import (
    Gr00tPolicyEngine, adopt_layout, from_gr00t_action, to_gr00t_observation)

from support.fake_gr00t import UPSTREAM_LANGUAGE_KEY, FakePolicy, FakeTag, FakeTensor, install_fake_gr00t, modality, \
    upstream_modalities, upstream_statistics
from support.onnx_policy import random_batch

CONFIG = EngineConfig(mock_mode=False, model_checkpoint="/models/alfie", device="cpu")
GROUPS = layout.LAYOUT_GROUPS


def test_observation_layout_matches_gr00t_policy():
    batch = random_batch(2, language=("pick up the can", "wave"))
    obs = to_gr00t_observation(batch, CONFIG)
    assert set(obs) == {"video", "state", "language"}
    assert list(obs["video"]) == list(CONFIG.video_keys)
    for cam in layout.CAMERA_NAMES:
        video = obs["video"][cam]
        assert video.shape == (2, 1, layout.IMAGE_HEIGHT, layout.IMAGE_WIDTH, 3)
        assert video.dtype == np.uint8
        assert np.array_equal(video[:, 0], batch.images[cam])
    assert [k for k in obs["state"]] == [g.name for g in GROUPS]
    for group in GROUPS:
        part = obs["state"][group.name]
        assert part.shape == (2, 1, group.size) and part.dtype == np.float32
        assert np.array_equal(part[:, 0], batch.state[:, group.start:group.stop])
    assert obs["language"] == {"task": [["pick up the can"], ["wave"]]}


def test_camera_to_video_key_mapping_keeps_camera_order():
    keys = ("ego_left", "ego_right", "wrist_left", "wrist_right")
    config = EngineConfig(mock_mode=False, video_keys=keys, language_key="annotation.human.task")
    batch = random_batch(1, seed=4)
    obs = to_gr00t_observation(batch, config)
    for cam, key in zip(layout.CAMERA_NAMES, keys):
        assert np.array_equal(obs["video"][key][:, 0], batch.images[cam])
    assert obs["language"] == {"annotation.human.task": [["pick up the can"]]}


def test_observation_errors():
    batch = random_batch(1)
    with pytest.raises(EngineError, match="one video key per camera"):
        to_gr00t_observation(batch, EngineConfig(video_keys=("a", "b")))
    missing = {k: v for k, v in batch.images.items() if k != "right_wide"}
    with pytest.raises(EngineError, match="no image for camera 'right_wide'"):
        to_gr00t_observation(ObservationBatch(missing, batch.state, batch.language), CONFIG)
    with pytest.raises(EngineError, match="state has shape"):
        to_gr00t_observation(ObservationBatch(batch.images, np.zeros((1, 19), np.float32), batch.language), CONFIG)


def split_actions(chunk, prefix=""):
    """A (B, H, 21) chunk as Gr00tPolicy would return it: one (B, H, D) array per group."""
    return {f"{prefix}{g.name}": chunk[:, :, g.start:g.stop].copy() for g in GROUPS}


@pytest.mark.parametrize("prefix", ["", "action."])
def test_actions_concatenate_in_layout_order(prefix):
    chunk = np.random.default_rng(0).standard_normal((3, 16, 21)).astype(np.float32)
    out = from_gr00t_action(split_actions(chunk, prefix), CONFIG)
    assert out.shape == (3, 16, 21) and out.dtype == np.float32
    assert np.array_equal(out, chunk)


def test_actions_take_first_horizon_steps_and_accept_unbatched():
    chunk = np.random.default_rng(1).standard_normal((1, 32, 21)).astype(np.float64)
    out = from_gr00t_action(split_actions(chunk), CONFIG)
    assert out.shape == (1, 16, 21)
    np.testing.assert_allclose(out, chunk[:, :16].astype(np.float32))
    unbatched = {k: v[0] for k, v in split_actions(chunk).items()}
    assert from_gr00t_action(unbatched, CONFIG).shape == (1, 16, 21)


def test_round_trip_state_through_both_conversions():
    batch = random_batch(2, seed=8)
    obs = to_gr00t_observation(batch, CONFIG)
    hold = {k: np.repeat(v, 16, axis=1) for k, v in obs["state"].items()}  # "hold position" policy
    out = from_gr00t_action(hold, CONFIG)
    assert np.array_equal(out, np.repeat(batch.state[:, None], 16, axis=1))


def test_action_errors():
    chunk = np.zeros((2, 16, 21), np.float32)
    actions = split_actions(chunk)
    with pytest.raises(EngineError, match=r"no action for group 'head' \(keys: \['base_velocity'"):
        from_gr00t_action({k: v for k, v in actions.items() if k != "head"}, CONFIG)
    with pytest.raises(EngineError, match=r"action 'left_arm' has shape \(2, 16, 5\)"):
        from_gr00t_action(dict(actions, left_arm=np.zeros((2, 16, 5), np.float32)), CONFIG)
    with pytest.raises(EngineError, match=r"action 'head' has shape \(2, 8, 3\)"):
        from_gr00t_action(dict(actions, head=np.zeros((2, 8, 3), np.float32)), CONFIG)
    with pytest.raises(EngineError, match="batch 1, other groups have 2"):
        from_gr00t_action(dict(actions, head=np.zeros((1, 16, 3), np.float32)), CONFIG)
    bad = dict(actions, right_arm=np.full((2, 16, 6), np.inf, np.float32))
    with pytest.raises(EngineError, match="non-finite"):
        from_gr00t_action(bad, CONFIG)


def test_default_parameters_adopt_the_checkpoints_language_key():
    adopted, served = adopt_layout(upstream_modalities(), upstream_statistics(), CONFIG)
    assert CONFIG.language_key == "task"
    assert adopted.language_key == served.language_key == UPSTREAM_LANGUAGE_KEY
    assert served.source == "checkpoint" and served.adopted == ("language_key",)
    assert adopted.state_groups == GROUPS and adopted.video_keys == layout.CAMERA_NAMES
    obs = to_gr00t_observation(random_batch(1), adopted)
    assert list(obs["language"]) == [UPSTREAM_LANGUAGE_KEY]


def test_checkpoint_groups_are_adopted_with_their_sizes_and_order():
    theirs = [("arm", 7), ("gripper", 1), ("base", 3), ("neck", 10)]
    adopted, served = adopt_layout(upstream_modalities(groups=theirs), upstream_statistics(theirs), CONFIG)
    assert [(g.name, g.start, g.stop) for g in adopted.state_groups] == [
        ("arm", 0, 7), ("gripper", 7, 8), ("base", 8, 11), ("neck", 11, 21)]
    assert "state_groups" in served.adopted
    batch = random_batch(1, seed=2)
    obs = to_gr00t_observation(batch, adopted)
    assert np.array_equal(obs["state"]["gripper"][:, 0], batch.state[:, 7:8])


def test_refusals_name_both_sides_and_the_fix():
    with pytest.raises(EngineError, match=r"language_key: parameter 'prompt', checkpoint "
                                          r"'annotation.human.task_description' \(set language_key:="):
        adopt_layout(upstream_modalities(), upstream_statistics(), dataclasses.replace(CONFIG, language_key="prompt"))
    with pytest.raises(EngineError, match=r"camera\(s\) \['left_center', 'right_center'\] have no video key in the "
                                          r"checkpoint \(its video keys: \['left_wide', 'right_wide'\]\): remove"):
        adopt_layout(upstream_modalities(video=("left_wide", "right_wide")), upstream_statistics(), CONFIG)
    with pytest.raises(EngineError, match=r"checkpoint's state uses 2 time steps .*delta_indices \[0\]"):
        adopt_layout(upstream_modalities(state_steps=2), upstream_statistics(), CONFIG)
    with pytest.raises(EngineError, match=r"checkpoint's video uses 2 time steps"):
        adopt_layout(upstream_modalities(video_steps=2), upstream_statistics(), CONFIG)
    short = [("base_velocity", 6), ("left_arm", 7), ("right_arm", 6), ("head", 3)]
    with pytest.raises(EngineError, match=r"add up to 22 dims, action_dim is 21: set action_dim:=22"):
        adopt_layout(upstream_modalities(), upstream_statistics(short), CONFIG)


def test_explicit_groups_must_match_the_checkpoints_statistics():
    explicit = dataclasses.replace(CONFIG, state_groups=layout.groups_from_sizes(
        ["base_velocity", "left_arm", "right_arm", "head"], [6, 5, 7, 3]))
    with pytest.raises(EngineError) as err:
        adopt_layout(upstream_modalities(), upstream_statistics(), explicit)
    assert "state group 'left_arm': parameter size 5, checkpoint size 6" in str(err.value)
    assert "state group 'right_arm': parameter size 7, checkpoint size 6" in str(err.value)
    renamed = dataclasses.replace(CONFIG, state_groups=layout.groups_from_sizes(["a", "b"], [10, 11]))
    with pytest.raises(EngineError, match=r"state groups: parameters \[a 10, b 11\], checkpoint \[base_velocity 6"):
        adopt_layout(upstream_modalities(), upstream_statistics(), renamed)


def test_explicit_parameters_that_agree_are_kept():
    keys = ("ego_left", "ego_right", "wrist_left", "wrist_right")
    explicit = dataclasses.replace(CONFIG, video_keys=keys, language_key="annotation.human.action.task_description")
    modalities = upstream_modalities(video=keys[::-1], language="annotation.human.action.task_description")
    adopted, served = adopt_layout(modalities, upstream_statistics(), explicit)
    assert adopted.video_keys == keys and served.adopted == ()
    with pytest.raises(EngineError, match=r"video_keys: parameter \['ego_left'.*checkpoint \['left_wide'"):
        adopt_layout(upstream_modalities(), upstream_statistics(), explicit)


def test_checkpoint_layout_problems_are_precise():
    incomplete = upstream_modalities()
    del incomplete["language"]
    with pytest.raises(EngineError, match="no 'language' modality"):
        adopt_layout(incomplete, upstream_statistics(), CONFIG)
    with pytest.raises(EngineError, match=r"state keys .* and action keys .* differ"):
        modalities = upstream_modalities()
        modalities["action"] = modality(["base_velocity", "left_arm", "right_arm", "eef"], 16)
        adopt_layout(modalities, upstream_statistics(), CONFIG)
    with pytest.raises(EngineError, match="predicts 8 action steps, action_horizon is 16"):
        adopt_layout(upstream_modalities(action_steps=8), upstream_statistics(), CONFIG)


def test_sizes_the_checkpoint_states_are_checked_when_others_are_missing():
    """Statistics for only some groups: the ones present must still match (a left arm of 7 in the
    checkpoint is not the robot's arm of 6); only the missing ones fall back to the parameters."""
    partial = upstream_statistics([("base_velocity", 6), ("left_arm", 7), ("right_arm", 6), ("head", 3)])
    for modality in ("state", "action"):
        del partial[modality]["head"]
    with pytest.raises(EngineError, match=r"left_arm"):
        adopt_layout(upstream_modalities(), partial, CONFIG)
    agreeing = upstream_statistics()
    for modality in ("state", "action"):
        del agreeing[modality]["head"]
    adopted, served = adopt_layout(upstream_modalities(), agreeing, CONFIG)
    assert adopted.state_groups == GROUPS and "state_groups" not in served.adopted
    adopted, served = adopt_layout(upstream_modalities(), None, CONFIG)  # no statistics at all: the parameters'
    assert adopted.state_groups == GROUPS


# ---------------------------------------------------------------- the engine class, via stand-ins


class FakeDiTEngine:
    """A loaded DiT engine (trt_dit.DiTEngine's surface) that records what it was called with."""

    def __init__(self, output_dtype="float16", max_batch=1):
        self.output_dtype, self.max_batch, self.path, self.calls = output_dtype, max_batch, "dit.engine", []
        self._torch = SimpleNamespace(bfloat16="bfloat16")

    def __call__(self, sa_embs, vl_embs, timestep, image_mask=None, backbone_attention_mask=None):
        self.calls.append(dict(sa_embs=sa_embs, vl_embs=vl_embs, timestep=timestep, image_mask=image_mask,
                               backbone_attention_mask=backbone_attention_mask))
        return FakeTensor("engine_out", self.output_dtype)

    def describe(self):
        return {"dit_engine": self.path, "dit_output_dtype": self.output_dtype, "dit_max_batch": self.max_batch}


@pytest.fixture
def fake_gr00t(monkeypatch):
    return install_fake_gr00t(monkeypatch)


def test_engine_drives_gr00t_policy(fake_gr00t):
    config = EngineConfig(mock_mode=False, model_checkpoint="/models/alfie", device="cpu", denoising_steps=2)
    engine = Gr00tPolicyEngine(config)
    policy = fake_gr00t.instances[-1]
    assert policy.args == {"embodiment_tag": FakeTag.NEW_EMBODIMENT, "model_path": "/models/alfie", "device": "cpu"}
    assert policy.model.action_head.num_inference_timesteps == 2
    assert engine.max_batch_size == 8
    batch = random_batch(2, seed=6)
    out = engine.infer(batch)
    assert np.array_equal(out.actions, np.repeat(batch.state[:, None], 16, axis=1))
    assert set(out.stages_ms) == {"preprocess", "inference", "postprocess"}
    assert policy.seen["video"]["left_wide"].shape == (2, 1, 280, 320, 3)
    assert engine.describe()["denoising_steps"] == 2


def test_engine_accepts_tag_names_and_rejects_unknown(fake_gr00t):
    Gr00tPolicyEngine(EngineConfig(mock_mode=False, model_checkpoint="/m", device="cpu", embodiment_tag="GR1"))
    assert fake_gr00t.instances[-1].args["embodiment_tag"] is FakeTag.GR1
    with pytest.raises(EngineError, match=r"embodiment_tag 'alfie' is unknown .*'new_embodiment'"):
        Gr00tPolicyEngine(EngineConfig(mock_mode=False, model_checkpoint="/m", device="cpu", embodiment_tag="alfie"))


def test_engine_refuses_cuda_without_gpu(fake_gr00t):
    with pytest.raises(EngineError, match="torch sees no CUDA GPU.*device:=cpu"):
        Gr00tPolicyEngine(EngineConfig(mock_mode=False, model_checkpoint="/m", device="cuda:0"))


def test_engine_without_torch_names_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(EngineError, match="torch is not installed.*pip install torch.*Isaac-GR00T"):
        Gr00tPolicyEngine(CONFIG)


def test_engine_without_gr00t_names_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", types.ModuleType("torch"))
    monkeypatch.setitem(sys.modules, "gr00t", None)
    with pytest.raises(EngineError, match=r"Isaac-GR00T \(package 'gr00t'\) is not importable.*pip install -e"):
        Gr00tPolicyEngine(CONFIG)


def test_use_tensorrt_without_an_engine_beside_the_checkpoint(fake_gr00t, tmp_path):
    config = EngineConfig(mock_mode=False, model_checkpoint=str(tmp_path), device="cuda:0", use_tensorrt=True)
    with pytest.raises(EngineError, match=r"no DiT engine is beside .*dit\*.engine.*export_onnx_n1d6.py.*groot_build_engine"):
        Gr00tPolicyEngine(config)
    assert fake_gr00t.instances == [], "the slow policy load happens only once the engine is found"


def test_use_tensorrt_on_cpu_is_refused(fake_gr00t, tmp_path):
    config = EngineConfig(mock_mode=False, model_checkpoint=str(tmp_path), device="cpu", use_tensorrt=True)
    with pytest.raises(EngineError, match="use_tensorrt needs an NVIDIA GPU but device is 'cpu'"):
        Gr00tPolicyEngine(config)


def test_use_tensorrt_without_a_gpu_names_it(fake_gr00t, tmp_path, monkeypatch):

    (tmp_path / "dit_model_fp16.engine").write_bytes(b"engine")
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    config = EngineConfig(mock_mode=False, model_checkpoint=str(tmp_path), device="cuda:0", use_tensorrt=True)
    with pytest.raises(EngineError, match="TensorRT is not installed"):
        Gr00tPolicyEngine(config)
    from support.fake_tensorrt import make_fake_tensorrt

    monkeypatch.setitem(sys.modules, "tensorrt", make_fake_tensorrt(10))
    with pytest.raises(EngineError, match="torch sees no CUDA GPU"):
        Gr00tPolicyEngine(config)


def test_engine_path_parameter_wins_and_must_exist(tmp_path):
    from alfie_gr00t.engines.trt_dit import find_dit_engine

    (tmp_path / "dit_model_fp16.engine").write_bytes(b"a")
    assert find_dit_engine(tmp_path) == tmp_path / "dit_model_fp16.engine"
    (tmp_path / "dit_model_bf16.trt").write_bytes(b"b")
    with pytest.raises(EngineError, match="several DiT engines.*tensorrt_engine_path"):
        find_dit_engine(tmp_path)
    assert find_dit_engine(tmp_path, str(tmp_path / "dit_model_bf16.trt")).name == "dit_model_bf16.trt"
    with pytest.raises(EngineError, match="tensorrt_engine_path .* does not exist"):
        find_dit_engine(tmp_path, str(tmp_path / "none.engine"))


def test_server_config_carries_the_engine_path():
    from alfie_gr00t.server.config import ServerConfig

    config = ServerConfig(tensorrt_engine_path="/robot/dit_model_fp16.engine").engine_config()
    assert config.tensorrt_engine_path == "/robot/dit_model_fp16.engine"
    assert isinstance(config, EngineConfig)


def upstream_denoising_step(head, sa_embs, vl_embs, timesteps, backbone_output, embodiment_id="emb"):
    """One iteration of `Gr00tN1d6ActionHead.get_action_with_features` as upstream writes it:
    the encoder positionally, the DiT by keyword only (alternate-VL branch), the decoder positionally."""
    head.action_encoder(sa_embs, timesteps, embodiment_id)
    model_output = head.model(hidden_states=sa_embs, encoder_hidden_states=vl_embs, timestep=timesteps,
                              image_mask=backbone_output["image_mask"],
                              backbone_attention_mask=backbone_output["backbone_attention_mask"])
    return model_output, head.action_decoder(model_output, embodiment_id)


def test_installed_dit_maps_upstream_keywords_to_the_onnx_inputs():
    from alfie_gr00t.engines import trt_dit

    policy = FakePolicy(FakeTag.GR1, "/m", device="cuda:0")
    engine = FakeDiTEngine(output_dtype="float16")
    facts = trt_dit.install_dit_engine(policy, engine)
    assert facts["fp32_accumulation"] is True and facts["dit_max_batch"] == 1
    head = policy.model.action_head
    sa, vl, t = FakeTensor("sa"), FakeTensor("vl"), FakeTensor("t", "int64")
    masks = {"image_mask": FakeTensor("img", "bool"), "backbone_attention_mask": FakeTensor("bb", "bool")}
    model_output, velocity = upstream_denoising_step(head, sa, vl, t, masks)
    assert engine.calls == [dict(sa_embs=sa, vl_embs=vl, timestep=t, image_mask=masks["image_mask"],
                                 backbone_attention_mask=masks["backbone_attention_mask"])]
    assert model_output.dtype == "bfloat16", "handed back in the dtype the PyTorch DiT produced"
    assert velocity.dtype == "float32", "the Euler update runs in FP32 with a non-bf16 engine"
    head.model(hidden_states=sa, encoder_hidden_states=vl, timestep=t, kv_cache={})  # newer upstream threads one
    with pytest.raises(EngineError, match="only the final output"):
        head.model(hidden_states=sa, encoder_hidden_states=vl, timestep=t, return_all_hidden_states=True)


def test_fp32_accumulation_feeds_the_encoder_its_own_dtype():
    from alfie_gr00t.engines import trt_dit

    policy = FakePolicy(FakeTag.GR1, "/m", device="cuda:0")
    head = policy.model.action_head
    encoder = head.action_encoder
    trt_dit.install_dit_engine(policy, FakeDiTEngine(output_dtype="float32"))
    head.action_encoder(FakeTensor("actions", "float32"), "t", "emb")
    (fed, args), = encoder.calls
    assert fed.dtype == "bfloat16" and args == ("t", "emb")
    bf16 = FakePolicy(FakeTag.GR1, "/m", device="cuda:0")
    assert trt_dit.install_dit_engine(bf16, FakeDiTEngine(output_dtype="bfloat16"))["fp32_accumulation"] is False
    out = bf16.model.action_head.action_decoder(FakeTensor("x"), "emb")
    assert out.dtype == "bfloat16", "a bf16 engine leaves the upstream loop untouched"


def test_engine_batch_follows_the_dit_profile(fake_gr00t, monkeypatch):
    from alfie_gr00t.engines import gr00t_policy_engine as gpe
    from alfie_gr00t.engines import trt_dit

    monkeypatch.setattr(gpe, "open_dit_engine", lambda config, checkpoint: FakeDiTEngine(max_batch=1))
    monkeypatch.setattr(trt_dit, "free_pytorch_dit", lambda policy, torch: None)
    engine = Gr00tPolicyEngine(EngineConfig(mock_mode=False, model_checkpoint="/m", device="cpu", use_tensorrt=True))
    assert engine.max_batch_size == 1 and engine.describe()["max_batch_size"] == 1
    assert engine.describe()["tensorrt"] is True
    assert Gr00tPolicyEngine.max_batch_size == 8, "eager PyTorch keeps batching"

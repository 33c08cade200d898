"""Real-time chunking inside the denoising loop (engines/rtc.py), with real torch and ONNX Runtime, on the
package's policy double (tools/policy_double.py) served by the production engine and service."""

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch==2.13.0 (requirements-torch.txt, make test installs it)")
pytest.importorskip("onnxruntime", reason="onnxruntime is in requirements.txt")

from alfie_gr00t.engines import rtc  # noqa: E402
from alfie_gr00t.engines.base import ChunkPrefix, EngineConfig, EngineError, dummy_batch  # noqa: E402
from alfie_gr00t.engines.gr00t_policy_engine import Gr00tPolicyEngine, to_gr00t_observation  # noqa: E402
from alfie_gr00t.tools import policy_double as pd  # noqa: E402

CONFIG = EngineConfig(mock_mode=False, device="cpu")
DELAY, OVERLAP = 3, 8


def hinted(state, prefix=None, delay=DELAY):
    batch = dummy_batch(CONFIG)
    batch = dataclasses.replace(batch, state=np.asarray(state, np.float32)[None])
    return batch if prefix is None else dataclasses.replace(batch, prefixes=(ChunkPrefix(prefix, delay),))


def infer(engine, batch, seed):
    torch.manual_seed(seed)
    out = engine.infer(batch)
    return out.actions[0], out.rtc[0]


def replan(engine, seed):
    """A chunk, then the request a replanning client sends 4 steps into it: state where the chunk put the
    robot, prefix = the chunk's next OVERLAP steps."""
    previous, _ = infer(engine, dummy_batch(CONFIG), 1000 + seed)
    state = previous[3]
    prefix = previous[4:4 + OVERLAP].copy()
    # inside the double's statistics (relative keys +-0.5 around the state, base velocity +-0.5), as a chunk
    # of the checkpoint's own is; outside them upstream's decoding clips (test below)
    prefix[:, 6:] = state[6:] + np.clip(prefix[:, 6:] - state[6:], -0.45, 0.45)
    prefix[:, :6] = np.clip(prefix[:, :6], -0.45, 0.45)
    return state, prefix


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("rtc_dit")
    return {"pytorch": pd.make_engine(CONFIG, seed=3, trained=False),
            "onnxruntime": pd.make_engine(CONFIG, seed=3, trained=False, dit="onnxruntime", workdir=workdir)}


# ---------------------------------------------------------------- the prefix in the model's action space


def conversion_policy():
    stats = pd.default_statistics(CONFIG.state_groups)
    stats["action"]["base_velocity"].update(min=[-1.0, -0.5, 0.0, 0.2, 0.2, -2.0], max=[1.0, 0.5, 2.0, 0.2, 0.6, 2.0])
    stats["relative_action"]["left_arm"].update(min=[-0.2] * 6, max=[0.6] * 6)
    stats["relative_action"]["head"].update(mean=[0.1, 0.0, -0.1], std=[0.2, 0.5, 0.0])
    policy = pd.Gr00tPolicyDouble(CONFIG, statistics=stats)
    tag = pd.EMBODIMENT
    action = policy.processor.state_action_processor.modality_configs[tag]["action"]
    configs = list(action.action_configs)
    configs[2] = pd.ActionConfigDouble("RELATIVE", state_key="left_arm")  # right_arm relative to the left arm's state
    replaced = dataclasses.replace(action, action_configs=configs, mean_std_embedding_keys=["head"])
    policy.processor.state_action_processor.modality_configs[tag]["action"] = replaced
    return policy


def test_the_prefix_enters_the_model_space_as_upstream_normalizes_actions():
    space = rtc.ActionSpace.from_policy(conversion_policy(), CONFIG)
    state = np.zeros(21)
    state[6:12] = 0.1   # left arm
    state[12:18] = 5.0  # right arm: must not be used (right_arm is relative to the left arm)
    state[18:21] = [0.2, -0.3, 0.4]
    action = np.zeros((2, 21))
    action[:, 0:6] = [[0.5, 0.25, 1.5, 0.2, 0.5, 3.0], [-1.0, 0.0, 0.0, 0.2, 0.2, -2.0]]
    action[:, 6:12] = [[0.3] * 6, [0.9] * 6]
    action[:, 12:18] = [[0.1] * 6, [-0.4] * 6]
    action[:, 18:21] = [[0.5, 0.2, 0.9], [0.2, -0.3, 0.4]]
    model = space.to_model(action, state)
    assert model.shape == (2, 32) and model.dtype == np.float32
    # absolute, min/max to [-1, 1]; a dim whose min equals max is 0; 3.0 is outside [-2, 2]: 2.0, not clipped
    np.testing.assert_allclose(model[:, 0:6], [[0.5, 0.5, 0.5, 0.0, 0.5, 1.5], [-1.0, 0.0, -1.0, 0.0, -1.0, -1.0]],
                               atol=1e-6)
    # relative to its own state (0.1), relative statistics -0.2..0.6: 0.2 -> 0.0; 0.8 -> 1.5 (not clipped)
    np.testing.assert_allclose(model[:, 6:12], [[0.0] * 6, [1.5] * 6], atol=1e-6)
    # relative to the left arm's state (state_key), default relative statistics -0.5..0.5: 0.0 -> 0.0, -0.5 -> -1
    np.testing.assert_allclose(model[:, 12:18], [[0.0] * 6, [-1.0] * 6], atol=1e-6)
    # mean/std key, relative: (delta - mean) / std; std 0 keeps the value itself
    np.testing.assert_allclose(model[:, 18:21], [[(0.3 - 0.1) / 0.2, 0.5 / 0.5, 0.5], [-0.5, 0.0, 0.0]], atol=1e-6)
    assert not model[:, 21:].any(), "padding columns stay zero"


def test_the_conversion_round_trips_through_upstream_style_decoding():
    policy = pd.Gr00tPolicyDouble(CONFIG)
    space = rtc.ActionSpace.from_policy(policy, CONFIG)
    rng = np.random.default_rng(0)
    state = rng.uniform(-0.3, 0.3, 21).astype(np.float32)
    action = state + rng.uniform(-0.45, 0.45, (OVERLAP, 21)).astype(np.float32)
    action[:, 0:6] = rng.uniform(-0.45, 0.45, (OVERLAP, 6))  # base velocity is absolute
    model = space.to_model(action, state)
    states = {g.name: state[None, None, g.start:g.stop] for g in CONFIG.state_groups}
    decoded = policy.processor.decode_action(model[None], policy.embodiment_tag, states)
    back = np.concatenate([decoded[g.name][0] for g in CONFIG.state_groups], axis=1)
    np.testing.assert_allclose(back, action, atol=1e-6)


def test_a_policy_whose_actions_cannot_take_a_prefix_says_why_and_serves_unchanged():
    policy = pd.Gr00tPolicyDouble(CONFIG, seed=3)
    action = policy.processor.state_action_processor.modality_configs[pd.EMBODIMENT]["action"]
    configs = list(action.action_configs)
    configs[1] = pd.ActionConfigDouble("RELATIVE", type="EEF", format="XYZ_ROT6D")
    policy.processor.state_action_processor.modality_configs[pd.EMBODIMENT]["action"] = dataclasses.replace(
        action, action_configs=configs)
    engine = Gr00tPolicyEngine.from_policy(policy, CONFIG)
    assert engine.inpaints is False and "end-effector" in engine.describe()["rtc"]["unavailable"]
    state, prefix = np.zeros(21), np.full((OVERLAP, 21), 0.2, np.float32)
    plain, _ = infer(engine, hinted(state), 5)
    ignored, report = infer(engine, hinted(state, prefix), 5)
    assert report["applied"] is False and "end-effector" in report["reason"]
    assert np.array_equal(plain, ignored)


# ---------------------------------------------------------------- the loop: frozen, soft, free


@pytest.mark.parametrize("backend", ["pytorch", "onnxruntime"])
def test_frozen_steps_come_out_equal_to_the_prefix(engines, backend):
    engine = engines[backend]
    for seed in range(3):
        state, prefix = replan(engine, seed)
        reply, report = infer(engine, hinted(state, prefix), seed)
        assert report == {"applied": True, "frozen_steps": DELAY, "overlap_steps": OVERLAP}
        np.testing.assert_allclose(reply[:DELAY], prefix[:DELAY], atol=1e-5)
        free, _ = infer(engine, hinted(state), seed)
        assert np.abs(free[:DELAY] - prefix[:DELAY]).max() > 0.05, "without the hint they differ: the test can fail"


def test_frozen_values_outside_the_statistics_come_back_as_the_prefix_and_are_counted(engines):
    engine = engines["pytorch"]
    state = np.zeros(21, np.float32)
    prefix = np.full((OVERLAP, 21), 0.2, np.float32)
    prefix[:, 7] = 0.8  # left shoulder pitch 0.8 rad from the state: relative statistics end at 0.5
    reply, report = infer(engine, hinted(state, prefix), 4)
    assert report["applied"] is True and report["clipped_values"] == DELAY
    np.testing.assert_allclose(reply[:DELAY], prefix[:DELAY], atol=1e-5)


def test_eager_and_onnx_dit_agree_with_the_hint(engines):
    state, prefix = replan(engines["pytorch"], 7)
    eager, _ = infer(engines["pytorch"], hinted(state, prefix), 7)
    served, _ = infer(engines["onnxruntime"], hinted(state, prefix), 7)
    np.testing.assert_allclose(served, eager, atol=1e-4)


def test_the_overlap_continues_the_prefix_and_the_rest_is_the_policys(engines):
    engine = engines["pytorch"]
    rng = np.random.default_rng(0)
    excess_on, excess_off, tail_on, tail_off = [], [], [], []
    for seed in range(6):
        # a chunk playing: every joint moving at its own constant rate from the state
        state = rng.uniform(-0.2, 0.2, 21).astype(np.float32)
        rate = rng.uniform(-0.04, 0.04, 21).astype(np.float32)
        prefix = (state + rate * np.arange(1, OVERLAP + 1)[:, None]).astype(np.float32)
        on, _ = infer(engine, hinted(state, prefix), seed)
        off, _ = infer(engine, hinted(state), seed)
        own = np.abs(prefix[DELAY] - prefix[DELAY - 1])
        # what the robot executes: the frozen steps it is playing, then the reply from step DELAY on
        excess_on.append((np.abs(on[DELAY] - prefix[DELAY - 1]) - own).max())
        excess_off.append((np.abs(off[DELAY] - prefix[DELAY - 1]) - own).max())
        weights = rtc.row_weights(DELAY, OVERLAP, 16)
        # each soft row is within (1 - w) of the prefix's distance to what the policy makes of it alone
        for i in range(DELAY, OVERLAP):
            assert np.abs(on[i] - prefix[i]).max() <= (1 - weights[i]) * 1.5 + 1e-5  # |own - prefix| <= 1.5 here
        tail_on.append(np.abs(on[OVERLAP:]).mean())
        tail_off.append(np.abs(off[OVERLAP:]).mean())
    assert np.mean(excess_on) < 0.15 * np.mean(excess_off), (excess_on, excess_off)
    assert np.isclose(np.mean(tail_on), np.mean(tail_off), rtol=0.5), "the free steps stay the policy's own size"


def test_soft_weights_fall_from_the_frozen_steps_without_a_corner():
    w = rtc.row_weights(2, 6, 16, 1.0)
    c = (6 - np.arange(2, 6)) / 5
    np.testing.assert_allclose(w[2:6], 0.5 - 0.5 * np.cos(np.pi * c))
    assert list(w[:2]) == [1.0, 1.0] and not w[6:].any()
    assert (np.diff(w[1:7]) < 0).all() and w[2] > 0.9, "near 1 right after the frozen steps, falling to 0"
    assert rtc.row_weights(4, 4, 16)[:5].tolist() == [1, 1, 1, 1, 0], "a prefix all frozen has no soft rows"
    faster = rtc.row_weights(2, 6, 16, 2.0)
    assert (faster[2:6] < w[2:6]).all(), "a larger ramp rate lets go of the prefix sooner"


def test_without_a_prefix_or_with_rtc_off_the_output_is_upstreams_bit_for_bit():
    seed = 11
    reference = pd.Gr00tPolicyDouble(CONFIG, seed=3)  # no hook, no engine: upstream's loop alone
    state = np.linspace(-0.2, 0.2, 21).astype(np.float32)
    torch.manual_seed(seed)
    action, _ = reference.get_action(to_gr00t_observation(hinted(state), CONFIG))
    before = np.concatenate([action[g.name][0] for g in CONFIG.state_groups], axis=1)
    engine = pd.make_engine(CONFIG, seed=3, trained=False)
    no_prefix, report = infer(engine, hinted(state), seed)
    assert np.array_equal(no_prefix, before) and report["applied"] is False
    off = pd.make_engine(dataclasses.replace(CONFIG, rtc=False), seed=3, trained=False)
    assert off.inpaints is False and off.describe()["rtc"]["enabled"] is False
    ignored, report = infer(off, hinted(state, np.zeros((OVERLAP, 21), np.float32)), seed)
    assert np.array_equal(ignored, before)
    assert report == {"applied": False, "frozen_steps": 0, "overlap_steps": 0, "reason": "rtc:=false on this server"}


class Fp16DiTStandIn:
    """Stands in for trt_dit.DiTEngine (TensorRT needs an NVIDIA GPU): its surface (backend 'tensorrt',
    an fp16 output buffer, describe()) around the torch DiT run in fp16, as an fp16 engine computes."""

    backend, output_dtype, max_batch, inputs, path, precision = "tensorrt", torch.float16, 8, (), "dit.engine", "fp16"

    def __init__(self, dit):
        import copy

        self.dit = copy.deepcopy(dit).half()

    def __call__(self, sa_embs, vl_embs, timestep, image_mask=None, backbone_attention_mask=None):
        return self.dit(sa_embs.half(), vl_embs.half(), timestep, image_mask=image_mask,
                        backbone_attention_mask=backbone_attention_mask)

    def describe(self):
        return {"dit_engine": self.path, "dit_precision": self.precision}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_tensorrt_style_fp16_dit_and_a_bf16_policy_keep_the_frozen_steps(monkeypatch, dtype):
    from alfie_gr00t.engines import gr00t_policy_engine as gpe

    policy = pd.Gr00tPolicyDouble(CONFIG, seed=3, dtype=dtype)
    stand_in = Fp16DiTStandIn(policy.model.action_head.model.float())
    policy.model.action_head.model.to(dtype)
    if dtype == torch.float32:  # the TensorRT path: the production swap installs the stand-in
        monkeypatch.setattr(gpe, "open_dit_engine", lambda config, checkpoint: stand_in)
    engine = Gr00tPolicyEngine.from_policy(policy, CONFIG)
    assert engine.describe()["dit_backend"] == ("tensorrt" if dtype == torch.float32 else "pytorch")
    state, prefix = replan(engine, 2)
    reply, report = infer(engine, hinted(state, prefix), 2)
    assert report["applied"] is True
    np.testing.assert_allclose(reply[:DELAY], prefix[:DELAY], atol=1e-5)


def test_a_loop_that_is_not_n16s_is_refused_not_steered():
    head = pd.Gr00tPolicyDouble(CONFIG).model.action_head
    plan = rtc.Plan(torch, np.zeros((1, 16, 32), np.float32), np.ones((1, 16)), [], steps=4, buckets=1000)
    with pytest.raises(EngineError, match="timestep 100, expected 0"):
        plan.see(torch.zeros(1, 16, 32), torch.tensor([100]))
    hook = rtc.RtcHook(head)
    short = rtc.Plan(torch, np.zeros((1, 16, 32), np.float32), np.ones((1, 16)), [], steps=4, buckets=1000)
    with pytest.raises(EngineError, match="ran 0 of 4"):
        with hook.active(short):
            pass


def test_the_schedule_comparison_runs_and_ranks_inpainting_above_no_hint():
    from alfie_gr00t.tools import rtc_schedules

    result = rtc_schedules.measure(trials=3, train_steps=20)
    rows = result["schedules"]
    assert set(rows) == set(rtc_schedules.SCHEDULES)
    for name in ("ours", "paper", "linear", "hard", "n17"):
        assert rows[name]["frozen_error"]["max"] < 1e-5, name
    assert rows["off"]["frozen_error"]["max"] > 0.01
    assert rows["ours"]["seam_excess"]["mean"] < rows["off"]["seam_excess"]["mean"]
    assert rows["ours"]["seam_excess"]["mean"] < rows["paper"]["seam_excess"]["mean"]
    assert "ours" in rtc_schedules.format_table(result)

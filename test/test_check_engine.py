"""groot_check_engine: the comparison, the verdict, the timing and the refusals.

The full run needs a GPU, torch, Isaac-GR00T and an engine (test_trt_gpu.py); here the
pure parts and the command's exits run everywhere.
"""

import sys

import numpy as np
import pytest

from alfie_gr00t.tools import check_engine
from alfie_gr00t.engines.base import EngineConfig, EngineError

from support.onnx_policy import random_batch


def full_result(eager, engine, step_pairs=None) -> dict:
    """A check result as compare_dit returns it: DiT steps from `step_pairs` (default: the chunks
    themselves), the normalized prediction and the decoded actions from the two chunk arrays."""
    pairs = step_pairs if step_pairs is not None else list(zip(eager, engine))
    steps = check_engine.step_stats(pairs)
    return {"same_inputs": steps, "free_running": steps,
            "action_pred": {"cosine": steps["worst_cosine"], "max_abs_diff": steps["max_abs_diff"]},
            "decoded": check_engine.compare(eager, engine)}


def test_identical_chunks_pass():
    chunks = np.random.default_rng(0).standard_normal((4, 16, 21))
    result = check_engine.compare(chunks, chunks.copy())
    assert result["cosine"] == pytest.approx(1.0) and result["max_abs_diff"] == 0.0
    assert check_engine.dit_verdict(full_result(chunks, chunks.copy()), 0.99, None) == []


def test_a_drifting_engine_is_refused():
    rng = np.random.default_rng(1)
    eager = rng.standard_normal((4, 16, 21))
    drifted = eager + rng.standard_normal(eager.shape) * 0.8  # cosine ~0.78
    result = check_engine.compare(eager, drifted)
    assert result["cosine"] < 0.9 and result["worst_chunk_cosine"] <= result["cosine"] + 0.1
    reasons = check_engine.dit_verdict(full_result(eager, drifted), 0.99, None)
    worst = min(check_engine.cosine(a, b) for a, b in zip(eager, drifted))
    assert reasons[0] == f"DiT step, same inputs: worst cosine {worst:.5f} < 0.99"
    assert any(r.startswith("normalized action prediction: cosine") for r in reasons)


def test_max_abs_diff_threshold_and_nan():
    eager = np.ones((1, 16, 21))
    close = eager + 0.01
    same_steps = [(eager, eager)]
    reasons = check_engine.dit_verdict(full_result(eager, close, same_steps), 0.99, 0.001)
    assert reasons == ["decoded actions: max |diff| 0.01000 > 0.001"]
    broken = eager.copy()
    broken[0, 0, 0] = np.nan
    assert check_engine.dit_verdict(full_result(eager, broken, same_steps), 0.99, None), "NaN never passes"


def test_shape_mismatch_is_an_error():
    with pytest.raises(EngineError, match="differ in shape"):
        check_engine.compare(np.zeros((1, 16, 21)), np.zeros((1, 8, 21)))


def test_stage_clock_synchronises_and_times():
    calls = []
    clock = check_engine.StageClock(lambda: calls.append("sync"))
    timed = clock.wrap("dit", lambda x: x * 2)
    assert timed(3) == 6 and timed(4) == 8
    assert calls == ["sync"] * 4 and len(clock.samples["dit"]) == 2
    assert clock.mean("dit") >= 0 and np.isnan(clock.mean("backbone"))


def test_recorded_observations_split_per_observation(tmp_path):
    batch = random_batch(3, seed=2)
    np.savez(tmp_path / "obs.npz", **batch.images, state=batch.state, language=np.array(["a", "b", "c"]))
    config = EngineConfig()
    observations = check_engine.load_observations(tmp_path, config.camera_names, config.action_dim)
    assert len(observations) == 3 and observations[2].language == ("c",)
    assert np.array_equal(observations[1].images["left_wide"][0], batch.images["left_wide"][1])
    np.savez(tmp_path / "bad.npz", state=batch.state)
    with pytest.raises(EngineError, match=r"bad.npz lacks \['left_wide'"):
        check_engine.load_observations(tmp_path / "bad.npz", config.camera_names, config.action_dim)


def test_random_observations_are_seeded():
    config = EngineConfig()
    a = check_engine.random_observations(2, 5, config, "wave")
    b = check_engine.random_observations(2, 5, config, "wave")
    assert np.array_equal(a[1].images["right_center"], b[1].images["right_center"]) and a[0].language == ("wave",)


def test_without_torch_it_exits_2_and_says_why(tmp_path, monkeypatch, capsys):
    (tmp_path / "dit_model_fp16.engine").write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "torch", None)
    assert check_engine.main([str(tmp_path)]) == 2
    assert "torch is not installed" in capsys.readouterr().err


def test_without_an_engine_it_exits_2(tmp_path, capsys):
    assert check_engine.main([str(tmp_path), "--device", "cuda:0"]) == 2
    assert "no DiT engine is beside" in capsys.readouterr().err


def test_without_a_selected_engine_on_cpu_it_exits_2(tmp_path, capsys):
    assert check_engine.main([str(tmp_path), "--device", "cpu"]) == 2
    assert "use_tensorrt needs an NVIDIA GPU but device is 'cpu'" in capsys.readouterr().err


def test_cosine_and_step_stats():
    a = np.arange(6.0)
    assert check_engine.cosine(a, a) == pytest.approx(1.0) and check_engine.cosine(np.zeros(3), np.zeros(3)) == 1.0
    stats = check_engine.step_stats([(a, a), (a, -a)])
    assert stats["cosines"] == pytest.approx([1.0, -1.0]) and stats["worst_cosine"] == pytest.approx(-1.0)
    assert stats["max_abs_diff"] == 10.0 and stats["steps"] == 2


# ---------------------------------------------------------------- the full check, real torch + ONNX Runtime


def _double_check(tmp_path, monkeypatch, capsys, wrong: bool, *extra):
    torch = pytest.importorskip("torch", reason="torch==2.13.0 (requirements-torch.txt)")
    pytest.importorskip("onnxruntime")
    import dit_double

    config = EngineConfig(mock_mode=False, device="cpu")
    policy = dit_double.Gr00tPolicyDouble(config, seed=11)
    dit = policy.model.action_head.model
    path = dit_double.export_dit(dit_double.perturbed(dit) if wrong else dit, tmp_path / "dit_model_fp32.onnx")
    monkeypatch.setattr(check_engine, "_load_policy", lambda cfg, checkpoint: (torch, policy, cfg, None))
    code = check_engine.main([str(tmp_path), "--engine", str(path), "--device", "cpu", "--samples", "3", "--json",
                              *extra])
    import json

    return code, json.loads(capsys.readouterr().out)


def test_check_passes_a_correct_onnx_dit_on_cpu(tmp_path, monkeypatch, capsys):
    code, result = _double_check(tmp_path, monkeypatch, capsys, wrong=False)
    assert code == 0 and result["pass"] is True and result["reasons"] == []
    assert result["dit_calls_per_chunk"] == 4 and result["same_inputs"]["steps"] == 12
    assert result["same_inputs"]["worst_cosine"] > 0.99999 and result["free_running"]["worst_cosine"] > 0.99999
    assert result["action_pred"]["cosine"] > 0.99999 and result["decoded"]["max_abs_diff"] < 1e-4
    assert result["engine"]["dit_backend"] == "onnxruntime"


def test_check_fails_a_wrong_dit_whose_decoded_actions_look_right(tmp_path, monkeypatch, capsys):
    """Six weight matrices scaled 1.6: decoded (state-relative) actions still score cosine > 0.999
    and stay inside the 0.05 tolerance; the per-step DiT outputs give it away."""
    code, result = _double_check(tmp_path, monkeypatch, capsys, wrong=True)
    assert result["decoded"]["cosine"] > 0.999 and result["decoded"]["max_abs_diff"] < 0.05
    assert code == 1 and result["pass"] is False
    assert result["same_inputs"]["worst_cosine"] < 0.99
    assert any(r.startswith("DiT step, same inputs: worst cosine") for r in result["reasons"])
    assert not any(r.startswith("decoded") for r in result["reasons"])


def test_report_lists_the_dit_comparison_and_stages():
    times = {"backbone_ms": 120.0, "dit_step_ms": 30.0, "dit_steps": 4, "total_ms": 300.0}
    steps = {"cosines": [0.99999], "worst_cosine": 0.99999, "max_abs_diff": 0.001, "steps": 4}
    result = {"engine": {"dit_engine": "e.onnx", "dit_backend": "onnxruntime", "dit_precision": "fp32",
                         "dit_output_dtype": "float32", "fp32_accumulation": True},
              "chunks": 2, "observations": "random", "seed": 0, "dit_calls_per_chunk": 4.0,
              "same_inputs": steps, "free_running": steps, "action_pred": {"cosine": 0.99998, "max_abs_diff": 0.002},
              "decoded": check_engine.compare(np.ones((2, 16, 21)), np.ones((2, 16, 21))),
              "eager": times, "engine_timing": {**times, "dit_step_ms": 9.5, "total_ms": 175.0}}
    text = check_engine.report(result, [], 0.995, 0.05)
    assert "DiT step, same inputs    worst cosine 0.999990" in text and "normalized action_pred" in text
    assert "backbone ms" in text and "DiT/step ms" in text and "PASS" in text
    assert "engine           120.0         9.50      4     175.0" in text
    assert check_engine.dit_verdict(result, 0.995, 0.05) == []
    worse = {**result, "same_inputs": {**steps, "worst_cosine": 0.97}}
    assert check_engine.dit_verdict(worse, 0.995, 0.05) == ["DiT step, same inputs: worst cosine 0.97000 < 0.995"]

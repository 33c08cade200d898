"""The DiT swap on real torch and real ONNX Runtime: our own DiT exported by torch.onnx, served by
ort_dit.OrtDiT, swapped by the production code (dit_swap / gr00t_policy_engine) into a
Gr00tPolicy DOUBLE (test/dit_double.py), plus the file selection rules (dit_engine_path)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch==2.13.0 (requirements-torch.txt, make test installs it)")
onnx = pytest.importorskip("onnx", reason="onnx is in requirements.txt")
pytest.importorskip("onnxruntime", reason="onnxruntime is in requirements.txt")

from onnx import TensorProto, helper  # noqa: E402

from alfie_gr00t.engines import dit_swap, ort_dit, trt_dit  # noqa: E402
from alfie_gr00t.engines import gr00t_policy_engine as gpe  # noqa: E402
from alfie_gr00t.engines.base import EngineConfig, EngineError  # noqa: E402
from alfie_gr00t.tools import check_engine  # noqa: E402

import dit_double  # noqa: E402
from dit_double import Gr00tPolicyDouble, export_dit  # noqa: E402

CONFIG = EngineConfig(mock_mode=False, device="cpu")


@pytest.fixture
def policy():
    return Gr00tPolicyDouble(CONFIG, seed=3)


@pytest.fixture
def onnx_dit(policy, tmp_path):
    return export_dit(policy.model.action_head.model, tmp_path / "dit_model_fp32.onnx")


def observations(count=3, seed=0):
    return check_engine.random_observations(count, seed, CONFIG, "pick up the can")


def run(policy, batches, seed=0):
    return check_engine.run_policy(policy, torch, batches, CONFIG, seed, check_engine.StageClock())


def dit_inputs(batch, vl_tokens, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(batch, vl_tokens, generator=g) > 0.3
    mask[:, 0] = True
    return dict(hidden_states=torch.randn(batch, 17, dit_double.SA_DIM, generator=g),
                encoder_hidden_states=torch.randn(batch, vl_tokens, dit_double.VL_DIM, generator=g),
                timestep=torch.tensor([250] * batch), image_mask=mask,
                backbone_attention_mask=torch.ones(batch, vl_tokens, dtype=torch.bool))


def test_onnx_dit_matches_the_pytorch_dit_at_any_batch_and_sequence(policy, onnx_dit):
    engine = ort_dit.OrtDiT(onnx_dit, "cpu")
    assert engine.inputs == ("sa_embs", "vl_embs", "timestep", "image_mask", "backbone_attention_mask")
    assert engine.output_dtype == torch.float32 and engine.backend == "onnxruntime"
    assert engine.max_batch == ort_dit.DYNAMIC_MAX_BATCH, "the export's batch axis is dynamic"
    facts = engine.describe()
    assert facts["dit_precision"] == "fp32" and facts["onnxruntime_providers"] == ["CPUExecutionProvider"]
    dit = policy.model.action_head.model
    for batch, vl_tokens in ((1, dit_double.VL_TOKENS), (3, 23)):
        inputs = dit_inputs(batch, vl_tokens, seed=batch)
        with torch.no_grad():
            eager = dit(**inputs)
        out = engine(inputs["hidden_states"], inputs["encoder_hidden_states"], inputs["timestep"],
                     image_mask=inputs["image_mask"], backbone_attention_mask=inputs["backbone_attention_mask"])
        assert isinstance(out, torch.Tensor) and out.shape == eager.shape
        assert torch.allclose(out, eager, atol=1e-5), float((out - eager).abs().max())


def test_swapped_dit_is_called_once_per_denoising_step_and_matches_eager(policy, onnx_dit, tmp_path, monkeypatch):
    batches = observations(3)
    eager = run(policy, batches)
    config = EngineConfig(mock_mode=False, device="cpu", model_checkpoint=str(tmp_path), dit_engine_path=str(onnx_dit))
    engine = gpe.open_dit_engine(config, tmp_path)
    assert isinstance(engine, ort_dit.OrtDiT)
    facts = dit_swap.install_dit_engine(policy, engine)
    dit_swap.free_pytorch_dit(policy, torch)
    assert facts["dit_backend"] == "onnxruntime" and facts["fp32_accumulation"] is True
    assert all(p.numel() == 0 for p in policy.model.action_head.model.parameters()), "PyTorch DiT weights freed"
    calls = []
    real_call = ort_dit.OrtDiT.__call__
    monkeypatch.setattr(ort_dit.OrtDiT, "__call__", lambda self, *a, **k: calls.append(a[2]) or real_call(self, *a, **k))
    served = run(policy, batches)
    assert len(calls) == 4 * len(batches), "one engine call per denoising step (num_inference_timesteps=4)"
    assert [int(t[0]) for t in calls[:4]] == [0, 250, 500, 750], "upstream's t_discretized buckets"
    np.testing.assert_allclose(served, eager, atol=1e-5)
    calls.clear()
    policy.model.action_head.num_inference_timesteps = 2
    run(policy, batches[:1])
    assert len(calls) == 2


def test_a_bf16_policy_feeds_the_fp32_onnx_its_declared_types(tmp_path):
    policy = Gr00tPolicyDouble(CONFIG, seed=4, dtype=torch.bfloat16)
    path = export_dit(policy.model.action_head.model, tmp_path / "dit_fp32.onnx")  # a float32 copy exported
    batches = observations(2, seed=5)
    eager = run(policy, batches)
    engine = ort_dit.OrtDiT(path, "cpu")
    seen = []
    real_run = engine._session.run
    engine._session.run = lambda names, feeds: seen.append({k: v.dtype for k, v in feeds.items()}) or real_run(names, feeds)
    dit_swap.install_dit_engine(policy, engine)
    served = run(policy, batches)
    assert seen[0] == {"sa_embs": np.float32, "vl_embs": np.float32, "timestep": np.int64, "image_mask": np.bool_,
                       "backbone_attention_mask": np.bool_}
    assert np.all(np.isfinite(served)) and np.max(np.abs(served - eager)) < 0.02, "bf16 eager vs fp32 engine"


def tiny_onnx(path, dtype=TensorProto.FLOAT, names=("sa_embs", "vl_embs", "timestep"), output="output"):
    """A graph with the DiT's I/O names (output = sa_embs), written with onnx.helper."""
    inputs = [helper.make_tensor_value_info(names[0], dtype, ["b", 17, 4]),
              helper.make_tensor_value_info(names[1], dtype, ["b", "v", 4]),
              helper.make_tensor_value_info(names[2], TensorProto.INT64, ["b"])]
    graph = helper.make_graph([helper.make_node("Identity", [names[0]], [output])], "dit", inputs,
                              [helper.make_tensor_value_info(output, dtype, ["b", 17, 4])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)], ir_version=10), str(path))
    return path


def test_a_bf16_onnx_on_the_cpu_provider_is_refused_with_the_fp32_route(tmp_path, monkeypatch):
    path = tiny_onnx(tmp_path / "dit_model.onnx", TensorProto.BFLOAT16)
    with pytest.raises(EngineError, match=r"bf16 ONNX .*CPU provider has no bf16 Gemm.*fp32.*"
                                          r"GR00T_ONNX_EXPORTER_MODE=legacy.*use_bf16=False"):
        ort_dit.OrtDiT(path, "cpu")
    # onnx < 1.19 maps bfloat16 to float32 through numpy: the check reads the TensorProto enum instead
    monkeypatch.setattr(helper, "tensor_dtype_to_np_dtype", lambda elem_type: np.dtype(np.float32))
    with pytest.raises(EngineError, match="bf16 ONNX"):
        ort_dit.OrtDiT(path, "cpu")
    assert ort_dit.OrtDiT(tiny_onnx(tmp_path / "dit_fp32.onnx"), "cpu").output_dtype == torch.float32


def test_an_onnx_that_is_not_a_dit_is_refused(tmp_path):
    with pytest.raises(EngineError, match=r"not a GR00T N1.6 DiT: missing \['sa_embs'\].*unexpected inputs \['x'\]"):
        ort_dit.OrtDiT(tiny_onnx(tmp_path / "m.onnx", names=("x", "vl_embs", "timestep")), "cpu")
    with pytest.raises(EngineError, match=r"missing \['output'\]"):
        ort_dit.OrtDiT(tiny_onnx(tmp_path / "n.onnx", output="actions"), "cpu")
    with pytest.raises(EngineError, match="does not exist"):
        ort_dit.OrtDiT(tmp_path / "none.onnx", "cpu")


def test_providers_follow_the_device_and_what_onnxruntime_has():
    everything = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert ort_dit.choose_dit_providers("cuda:1", everything) == [
        ("TensorrtExecutionProvider", {"device_id": 1}), ("CUDAExecutionProvider", {"device_id": 1}),
        "CPUExecutionProvider"]
    assert ort_dit.choose_dit_providers("cpu", everything) == ["CPUExecutionProvider"]
    assert ort_dit.choose_dit_providers("cuda:0", ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]


def touch(path):
    path.write_bytes(b"x")
    return path


def test_dit_engine_path_suffix_picks_the_backend(tmp_path):
    for name, backend in (("a.engine", "tensorrt"), ("b.plan", "tensorrt"), ("c.trt", "tensorrt"),
                          ("dit_model_fp32.onnx", "onnxruntime")):
        path = touch(tmp_path / name)
        assert dit_swap.select_dit_file(tmp_path, dit_engine_path=str(path)) == (path, backend)
        assert dit_swap.select_dit_file(tmp_path, dit_engine_path=str(path), use_tensorrt=True)[1] == backend
    with pytest.raises(EngineError, match=r"unknown suffix '.pt'.*\.onnx"):
        dit_swap.select_dit_file(tmp_path, dit_engine_path=str(touch(tmp_path / "dit.pt")))
    with pytest.raises(EngineError, match="dit_engine_path .*none.onnx does not exist"):
        dit_swap.select_dit_file(tmp_path, dit_engine_path=str(tmp_path / "none.onnx"))
    with pytest.raises(EngineError, match="name different DiT files"):
        dit_swap.select_dit_file(tmp_path, dit_engine_path=str(tmp_path / "a.engine"),
                                 tensorrt_engine_path=str(tmp_path / "b.plan"))
    with pytest.raises(EngineError, match="not a TensorRT engine.*dit_engine_path"):
        dit_swap.select_dit_file(tmp_path, tensorrt_engine_path=str(tmp_path / "dit_model_fp32.onnx"))
    assert dit_swap.select_dit_file(tmp_path, tensorrt_engine_path=str(tmp_path / "a.engine")) == \
        (tmp_path / "a.engine", "tensorrt")


def test_empty_paths_eager_unless_use_tensorrt_and_never_an_onnx_unasked(tmp_path):
    touch(tmp_path / "dit_model_fp32.onnx")
    assert dit_swap.select_dit_file(tmp_path) is None, "a dit*.onnx beside the checkpoint is not picked up unasked"
    with pytest.raises(EngineError, match="no DiT engine is beside"):
        dit_swap.select_dit_file(tmp_path, use_tensorrt=True)
    engine = touch(tmp_path / "dit_model_fp16.engine")
    assert dit_swap.select_dit_file(tmp_path, use_tensorrt=True) == (engine, "tensorrt")
    touch(tmp_path / "dit_model_bf16.plan")
    with pytest.raises(EngineError, match=r"several DiT engines .*\['dit_model_bf16.plan', 'dit_model_fp16.engine'\]"):
        dit_swap.select_dit_file(tmp_path, use_tensorrt=True)
    assert trt_dit.find_dit_engine is not None and trt_dit.install_dit_engine is dit_swap.install_dit_engine


def test_open_dit_engine_refuses_tensorrt_on_cpu_and_runs_onnx_there(tmp_path, onnx_dit):
    def config(**values):
        return EngineConfig(mock_mode=False, model_checkpoint=str(tmp_path), **values)

    assert gpe.open_dit_engine(config(device="cpu"), tmp_path) is None
    with pytest.raises(EngineError, match="use_tensorrt needs an NVIDIA GPU but device is 'cpu'"):
        gpe.open_dit_engine(config(device="cpu", use_tensorrt=True), tmp_path)
    with pytest.raises(EngineError, match="is a TensorRT engine, which needs an NVIDIA GPU, but device is 'cpu'"):
        gpe.open_dit_engine(config(device="cpu", dit_engine_path=str(touch(tmp_path / "dit.engine"))), tmp_path)
    engine = gpe.open_dit_engine(config(device="cpu", use_tensorrt=True, dit_engine_path=str(onnx_dit)), tmp_path)
    assert isinstance(engine, ort_dit.OrtDiT)


def test_gr00t_policy_engine_serves_the_onnx_dit_on_cpu(policy, onnx_dit, tmp_path, monkeypatch):
    batches = observations(2, seed=7)
    eager = run(policy, batches)
    monkeypatch.setattr(gpe, "_import_gr00t", lambda: (torch, None, None))
    monkeypatch.setattr(gpe, "load_adopted", lambda config, path: (torch, policy, config, None))
    engine = gpe.Gr00tPolicyEngine(EngineConfig(mock_mode=False, model_checkpoint=str(tmp_path), device="cpu",
                                                dit_engine_path=str(onnx_dit)))
    facts = engine.describe()
    assert facts["dit_backend"] == "onnxruntime" and facts["tensorrt"] is False
    assert facts["dit_engine"] == str(onnx_dit) and facts["fp32_accumulation"] is True
    for i, (batch, expected) in enumerate(zip(batches, eager)):
        torch.manual_seed(i)  # run_policy's noise seed for observation i
        np.testing.assert_allclose(engine.infer(batch).actions[0], expected, atol=1e-5)

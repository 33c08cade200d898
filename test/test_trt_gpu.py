"""The DiT engine path for real: TensorRT + torch + an NVIDIA GPU. Skipped, with the
reason, wherever one of them is missing (no CI machine here has a GPU)."""

import pytest


def _ready():
    try:
        import tensorrt  # noqa: F401
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


pytestmark = pytest.mark.skipif(not _ready(), reason="needs tensorrt, torch with CUDA and an NVIDIA GPU")


def test_real_dit_engine_builds_runs_and_matches(tmp_path):
    import numpy as np
    import onnx
    import torch
    from onnx import TensorProto, helper, numpy_helper

    from alfie_gr00t.engines import dit_build, trt_dit

    weight = np.random.default_rng(0).standard_normal((8, 8)).astype(np.float32) * 0.1
    inputs = [helper.make_tensor_value_info("sa_embs", TensorProto.FLOAT, ["batch_size", 17, 8]),
              helper.make_tensor_value_info("vl_embs", TensorProto.FLOAT, ["batch_size", "vl_seq_len", 8]),
              helper.make_tensor_value_info("timestep", TensorProto.INT64, ["batch_size"])]
    nodes = [helper.make_node("MatMul", ["sa_embs", "W"], ["mm"]),
             helper.make_node("ReduceMean", ["vl_embs", "axes"], ["ctx"], keepdims=1),
             helper.make_node("Add", ["mm", "ctx"], ["output"])]
    graph = helper.make_graph(nodes, "dit", inputs,
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch_size", 17, 8])],
                              [numpy_helper.from_array(weight, "W"), numpy_helper.from_array(np.array([1]), "axes")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "dit.onnx"))
    gpu = (torch.cuda.get_device_name(0), tuple(torch.cuda.get_device_capability(0)))
    summary = dit_build.build_dit_engine(tmp_path / "dit.onnx", tmp_path / "dit_fp32.engine", precision="fp32",
                                         gpu=gpu, sa_seq_len=17, vl_seq_len=32, max_batch=2)
    assert summary["size_bytes"] > 0
    engine = trt_dit.DiTEngine(tmp_path / "dit_fp32.engine", "cuda:0")
    sa, vl = torch.randn(2, 17, 8, device="cuda"), torch.randn(2, 32, 8, device="cuda")
    out = engine(sa, vl, torch.zeros(2, dtype=torch.int64, device="cuda"))
    torch.cuda.synchronize()
    expected = sa @ torch.from_numpy(weight).cuda() + vl.mean(dim=1, keepdim=True)
    torch.testing.assert_close(out, expected, atol=1e-3, rtol=1e-3)

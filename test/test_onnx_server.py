"""A real ONNX policy end to end through the server over IPC (ONNX Runtime, CPU)."""

import numpy as np
import pytest

from alfie_gr00t.wire import images
from alfie_gr00t.wire import protocol
from alfie_gr00t.server.config import ServerConfig
from alfie_gr00t.engines.base import ObservationBatch
from alfie_gr00t.engines.registry import create_engine
from alfie_gr00t.server.service import BackgroundServer, PolicyService
from alfie_gr00t.wire.transport import ReqClient

pytest.importorskip("onnx", reason="onnx (pip install onnx) builds the reference policy these tests run")
pytest.importorskip("onnxruntime", reason="onnxruntime (pip install onnxruntime) runs the ONNX engine")

from support.onnx_policy import build_reference_policy, random_batch, reference_actions


@pytest.mark.parametrize("nchw", [False, True], ids=["uint8-nhwc", "float-nchw"])
@pytest.mark.parametrize("encoding", ["raw", "jpeg"])
def test_onnx_policy_served_over_ipc_matches_numpy_reference(tmp_path, ipc_path, nchw, encoding):
    model = str(build_reference_policy(str(tmp_path / "policy.onnx"), nchw=nchw))
    config = ServerConfig(model_checkpoint=model, device="cpu", ipc_path=ipc_path, warmup_runs=1)
    engine = create_engine(config.engine_config())
    assert engine.name == "onnxruntime"
    service = PolicyService(engine, config)
    batch = random_batch(1, seed=3)
    frames = {name: batch.images[name][0] for name in config.camera_names}
    if encoding == "raw":
        sent = {n: protocol.RawImage(f.shape[1], f.shape[0], f.tobytes()) for n, f in frames.items()}
        seen = frames
    else:
        sent = {n: images.encode_jpeg(f, 95) for n, f in frames.items()}
        seen = {n: images.decode_jpeg(data, 2048) for n, data in sent.items()}  # what the server decodes
    expected = reference_actions(ObservationBatch({n: f[None] for n, f in seen.items()}, batch.state,
                                                  batch.language))[0]
    with BackgroundServer(service):
        client = ReqClient(config.address, timeout_ms=10000)
        reply = protocol.parse_action_response(
            client.request(protocol.encode_observation(1.0, 5, sent, batch.state[0], batch.language[0])), 16, 21)
        client.close()
    assert reply.actions.shape == (16, 21)
    np.testing.assert_allclose(reply.actions, expected, rtol=1e-4, atol=1e-5)
    assert service.errors == 0
    assert {"engine_preprocess", "engine_postprocess"} <= set(service.stages.summary())
    engine.close()

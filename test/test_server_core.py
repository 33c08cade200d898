"""The policy service over real IPC and TCP sockets with the mock engine."""

import math

import msgpack
import numpy as np
import pytest

from alfie_gr00t.wire import images
from alfie_gr00t.wire import protocol
from alfie_gr00t.server.config import ServerConfig
from alfie_gr00t.engines.base import Engine, EngineOutput
from alfie_gr00t.engines.mock import MockEngine
from alfie_gr00t.server.service import BackgroundServer, PolicyService
from alfie_gr00t.wire.transport import ReqClient

from support.frames import hold_chunk, make_frame


def make_service(**overrides) -> PolicyService:
    config = ServerConfig(mock_mode=True, **overrides)
    return PolicyService(MockEngine(config.engine_config()), config)


def expected_chunk(state):
    state = np.asarray(state, np.float32)
    return hold_chunk(state)


def observation(jpeg_images, frame_id, state=None, **extra):
    state = np.full(21, 0.01 * (frame_id % 50), np.float32) if state is None else state
    return protocol.encode_observation(1.0, frame_id, jpeg_images, state, "pick", **extra), state


@pytest.mark.parametrize("transport_kind", ["ipc", "tcp"])
def test_thousand_sequential_requests(transport_kind, ipc_path, free_tcp_port, jpeg_images):
    service = make_service(transport=transport_kind, ipc_path=ipc_path, bind_port=free_tcp_port)
    with BackgroundServer(service):
        client = ReqClient(service.config.address.replace("*", "127.0.0.1"), timeout_ms=5000)
        for frame_id in range(1000):
            payload, state = observation(jpeg_images, frame_id)
            reply = protocol.parse_action_response(client.request(payload), 16, 21)
            assert reply.frame_id == frame_id
            np.testing.assert_allclose(reply.actions, expected_chunk(state), rtol=1e-6, atol=1e-7)
        client.close()
    assert service.total_requests == 1000 and service.errors == 0
    assert {"unpack", "decode", "inference", "pack"} <= set(service.stages.summary())


def test_malformed_interleaved_with_valid_all_answered(ipc_path, jpeg_images):
    bad_payloads = [
        b"\xc1", msgpack.packb([1, 2]), msgpack.packb({"frame_id": 5}),
        protocol.encode_observation(1.0, 9, {**jpeg_images, "left_wide": b"not a jpeg"}, [0.0] * 21, ""),
        protocol.encode_observation(1.0, 9, jpeg_images, [0.0] * 20, ""),
        msgpack.packb({"timestamp": 1.0, "frame_id": 1, "images": jpeg_images, "state": [math.nan] * 21,
                       "language": ""}),
    ]
    service = make_service(ipc_path=ipc_path)
    with BackgroundServer(service):
        client = ReqClient(service.config.address, timeout_ms=5000)
        for frame_id in range(60):
            bad = bad_payloads[frame_id % len(bad_payloads)]
            error = msgpack.unpackb(client.request(bad), raw=False)
            assert error["status"] == "error" and error["actions"] == [] and error["error_message"]
            payload, state = observation(jpeg_images, frame_id)
            reply = protocol.parse_action_response(client.request(payload), 16, 21)
            np.testing.assert_allclose(reply.actions, expected_chunk(state), rtol=1e-6, atol=1e-7)
        client.close()
    assert service.errors == 60 and service.total_requests == 120
    assert service.status()["errors"] == 60 and service.status()["last_error"]


def test_other_resolutions_are_resized(ipc_path):
    service = make_service(ipc_path=ipc_path)
    frames = {name: images.encode_jpeg(make_frame(640, 480, i), 90) for i, name in enumerate(service.config.camera_names)}
    raw = {name: protocol.RawImage(160, 120, make_frame(160, 120).tobytes()) for name in service.config.camera_names}
    with BackgroundServer(service):
        client = ReqClient(service.config.address, timeout_ms=5000)
        for imgs in (frames, raw):
            payload = protocol.encode_observation(1.0, 1, imgs, [0.5] * 21, "")
            reply = protocol.parse_action_response(client.request(payload), 16, 21)
            np.testing.assert_allclose(reply.actions[0], 0.5, rtol=1e-6)
        client.close()
    assert service.errors == 0


def test_response_echoes_frame_id_and_stage_timings(ipc_path, jpeg_images):
    service = make_service(ipc_path=ipc_path)
    with BackgroundServer(service):
        client = ReqClient(service.config.address, timeout_ms=5000)
        message = msgpack.unpackb(client.request(observation(jpeg_images, 77)[0]), raw=False)
        client.close()
    assert message["frame_id"] == 77 and message["status"] == "ok"
    assert {"unpack", "decode", "preprocess", "inference", "pack"} <= set(message["stages_ms"])
    assert message["inference_time_ms"] >= 0.0


class ExplodingEngine(Engine):
    name = "exploding"

    def infer(self, batch):
        raise RuntimeError("CUDA error: out of memory")


class WrongShapeEngine(Engine):
    name = "wrong"

    def infer(self, batch):
        return EngineOutput(np.zeros((batch.batch_size, 8, 21), np.float32))


@pytest.mark.parametrize("engine, fragment", [(ExplodingEngine(), "Model inference failed: RuntimeError: CUDA error"),
                                              (WrongShapeEngine(), "shape")])
def test_engine_failures_become_error_replies(engine, fragment, jpeg_images):
    service = PolicyService(engine, ServerConfig(mock_mode=True))
    reply = msgpack.unpackb(service.respond(observation(jpeg_images, 3)[0]), raw=False)
    assert reply["status"] == "error" and fragment in reply["error_message"] and reply["frame_id"] == 3
    assert service.errors == 1


def test_api_token_required_when_configured(jpeg_images):
    service = make_service(api_token="s3cret")
    refused = msgpack.unpackb(service.respond(observation(jpeg_images, 1)[0]), raw=False)
    assert refused["status"] == "error" and "unauthorized" in refused["error_message"]
    wrong = msgpack.unpackb(service.respond(observation(jpeg_images, 1, api_token="nope")[0]), raw=False)
    assert wrong["status"] == "error"
    ok = msgpack.unpackb(service.respond(observation(jpeg_images, 1, api_token="s3cret")[0]), raw=False)
    assert ok["status"] == "ok"


def test_status_has_seed_keys_and_percentiles(jpeg_images):
    service = make_service()
    for i in range(5):
        service.respond(observation(jpeg_images, i)[0])
    status = service.status()
    for key in ("total_requests", "average_inference_ms", "last_inference_ms", "mock_mode", "tensorrt",
                "bind_address", "inference_p50_ms", "inference_p95_ms", "errors", "engine", "uptime_s", "last_error"):
        assert key in status
    assert status["total_requests"] == 5 and status["engine"] == "mock" and status["tensorrt"] is False


def test_ping_reply_carries_the_latency_a_client_should_expect(jpeg_images):
    """client/latency.py sets an activation's first timeout from this figure: the warm-up before any
    request, then the p95 of the requests actually served; nothing when neither exists."""
    service = make_service()

    def ping():
        return msgpack.unpackb(service.respond(msgpack.packb({"endpoint": "ping"}, use_bin_type=True)), raw=False)

    assert "inference_p95_ms" not in ping() and ping()["status"] == "ok"
    service.warmup_ms = [40.0, 2500.0, 30.0]
    assert ping()["inference_p95_ms"] == 2500.0
    payload, _ = observation(jpeg_images, 1)
    assert msgpack.unpackb(service.respond(payload), raw=False)["status"] == "ok"
    served = ping()["inference_p95_ms"]
    assert 0.0 < served < 2500.0 and served == service.inference_ms.snapshot()["p95"]

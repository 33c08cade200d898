"""Real-time chunking through the server: the reply's rtc report on our protocol and in Isaac-GR00T's info
(N1.6 and N1.7 wire generations), the ping's rtc capability and the status counters, on the policy double
served by the production engine (real torch) and on the mock engines."""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch==2.13.0 (requirements-torch.txt, make test installs it)")

from alfie_gr00t import layout  # noqa: E402
from alfie_gr00t.engines.base import ChunkPrefix  # noqa: E402
from alfie_gr00t.engines.mock import MockEngine  # noqa: E402
from alfie_gr00t.server.config import ServerConfig  # noqa: E402
from alfie_gr00t.server.service import BackgroundServer, PolicyService  # noqa: E402
from alfie_gr00t.tools import policy_double as pd  # noqa: E402
from alfie_gr00t.wire import protocol  # noqa: E402
from alfie_gr00t.wire.transport import ReqClient  # noqa: E402

from support.gr00t_wire import N16, N17, WireClient  # noqa: E402
from support.upstream_requests import upstream_observation  # noqa: E402

DELAY, OVERLAP = 3, 8


def moving_prefix(state: np.ndarray) -> np.ndarray:
    """A chunk playing: each joint at its own constant rate from the state (inside the double's statistics)."""
    rate = np.linspace(-0.03, 0.03, 21, dtype=np.float32)
    return (state + rate * np.arange(1, OVERLAP + 1)[:, None]).astype(np.float32)


@pytest.fixture
def double_server(ipc_path):
    config = ServerConfig(ipc_path=ipc_path, device="cpu", warmup_runs=0)
    service = pd.make_service(config, seed=3, trained=False)
    server = BackgroundServer(service).start()
    yield service
    server.stop()
    service.close()


def test_our_protocol_reply_says_what_was_applied_and_the_frozen_steps_are_the_prefix(double_server, jpeg_images):
    service = double_server
    state = np.linspace(-0.2, 0.2, 21).astype(np.float32)
    prefix = moving_prefix(state)
    client = ReqClient(service.config.address, 10000)
    try:
        raw = client.request(protocol.encode_observation(1.0, 1, jpeg_images, state, "go",
                                                         prefix=ChunkPrefix(prefix, DELAY)))
        plain = protocol.parse_action_response(client.request(
            protocol.encode_observation(2.0, 2, jpeg_images, state, "go")), 16, 21)
    finally:
        client.close()
    reply = protocol.parse_action_response(raw, 16, 21)
    assert reply.rtc == {"applied": True, "frozen_steps": DELAY, "overlap_steps": OVERLAP}
    np.testing.assert_allclose(reply.actions[:DELAY], prefix[:DELAY], atol=1e-5)
    assert plain.rtc is None, "no prefix, no report"
    status = service.status()["rtc"]
    assert status["inpaints"] is True and status["enabled"] is True and status["ramp_rate"] == 1.0
    assert (status["requests_with_prefix"], status["applied"]) == (1, 1)
    assert status["last"] == {"applied": True, "frozen_steps": DELAY, "overlap_steps": OVERLAP}


@pytest.mark.parametrize("generation", [N16, N17])
def test_isaac_gr00t_options_are_honoured_in_both_wire_generations(double_server, generation):
    service = double_server
    state = np.linspace(0.1, -0.1, 21).astype(np.float32)
    prefix = moving_prefix(state)
    with WireClient(service.config.address, generation=generation, timeout_ms=10000) as client:
        ping = client.call_endpoint("ping", requires_input=False)
        # N1.7's msgpack-numpy carries a numpy scalar delay; N1.6's wire cannot send one (a plain int)
        delay = np.int64(DELAY) if generation == N17 else DELAY
        action, info = client.get_action(upstream_observation(state[None]),
                                         {"action_prefix": prefix, "inference_delay": delay})
    assert ping["rtc"] is True
    assert info["rtc"] == {"applied": True, "frozen_steps": DELAY, "overlap_steps": OVERLAP}
    chunk = np.concatenate([np.asarray(action[g.name])[0] for g in layout.LAYOUT_GROUPS], axis=1)
    np.testing.assert_allclose(chunk[:DELAY], prefix[:DELAY], atol=1e-5)


def test_a_prefix_for_a_batch_of_several_is_reported_not_applied(double_server):
    states = np.zeros((2, 21), np.float32)
    with WireClient(double_server.config.address, timeout_ms=10000) as client:
        _action, info = client.get_action(upstream_observation(states),
                                          {"action_prefix": moving_prefix(states[0]), "inference_delay": DELAY})
    assert info["rtc"]["applied"] is False and "one observation" in info["rtc"]["reason"]


@pytest.mark.parametrize("policy, inpaints", [("hold", False), ("trajectory", True)])
def test_mock_servers_advertise_what_they_do_with_a_prefix(ipc_path, jpeg_images, policy, inpaints):
    config = ServerConfig(ipc_path=ipc_path, mock_mode=True, mock_policy=policy)
    service = PolicyService(MockEngine(config.engine_config()), config)
    with BackgroundServer(service):
        with WireClient(config.address) as client:
            assert client.call_endpoint("ping", requires_input=False)["rtc"] is inpaints
        requester = ReqClient(config.address, 5000)
        try:
            raw = requester.request(protocol.encode_observation(
                3.0, 1, jpeg_images, np.zeros(21), "go", prefix=ChunkPrefix(np.zeros((5, 21), np.float32), 2)))
        finally:
            requester.close()
    report = protocol.parse_action_response(raw, 16, 21).rtc
    assert report["applied"] is inpaints and report["frozen_steps"] == (2 if inpaints else 0)
    if not inpaints:
        assert report["reason"] == "mock_policy hold ignores the prefix"
    service.close()


@pytest.mark.parametrize("value", [None, "yes", {"applied": 1},
                                   {"applied": True, "frozen_steps": -1, "overlap_steps": 2},
                                   {"applied": True, "frozen_steps": True, "overlap_steps": 2}])
def test_a_malformed_rtc_report_is_no_report(value):
    assert protocol.parse_rtc_report(value) is None


def test_a_report_keeps_only_its_known_fields():
    report = protocol.parse_rtc_report({"applied": False, "frozen_steps": 0, "overlap_steps": 0, "reason": "x" * 900,
                                        "extra": 1})
    assert report == {"applied": False, "frozen_steps": 0, "overlap_steps": 0, "reason": "x" * 500}


# -- through Triton: each request's hint in one batch, each observation's report back ---------------

@pytest.fixture(scope="module")
def triton_models():
    from support.triton_server import serving_triton

    with serving_triton({"groot_policy": {"params": {"mock_policy": "trajectory"}},
                         "groot_hold": {"params": {"mock_policy": "hold"}}}, "ag_triton_rtc_") as server:
        yield server


def test_triton_carries_each_observations_hint_and_brings_its_report_back(triton_models):
    import dataclasses

    from alfie_gr00t.engines.base import EngineConfig, dummy_batch
    from alfie_gr00t.engines.registry import create_engine

    config = EngineConfig(engine="triton", triton_url=triton_models.grpc_url, triton_timeout_ms=5000.0)
    hint = ChunkPrefix(np.full((6, 21), 0.05, np.float32), DELAY)
    batch = dataclasses.replace(dummy_batch(config, 3), timestamps=(10.0, 10.0, 10.0),
                                prefixes=(hint, None, ChunkPrefix(np.zeros((2, 21), np.float32), 1)))
    reference = MockEngine(EngineConfig(mock_mode=True, mock_policy="trajectory")).infer(batch)
    engine = create_engine(config)
    hold = create_engine(dataclasses.replace(config, triton_model="groot_hold"))
    try:
        out = engine.infer(batch)
        assert engine.inpaints is True and hold.inpaints is False
        assert hold.describe()["rtc"] == {"inpaints": False, "reported": True}
    finally:
        engine.close()
        hold.close()
    np.testing.assert_allclose(out.actions, reference.actions, atol=1e-5)
    np.testing.assert_allclose(out.actions[0, :DELAY], hint.actions[:DELAY], atol=1e-6)
    assert out.rtc == ({"applied": True, "frozen_steps": DELAY, "overlap_steps": DELAY + 4},
                       {"applied": False, "frozen_steps": 0, "overlap_steps": 0},
                       {"applied": True, "frozen_steps": 1, "overlap_steps": 5})

"""The real-time-chunking hint: the still-executing prefix of the current chunk and the expected delay
travel with a request in both protocols, reach the engine, and the `trajectory` mock honours them."""

from alfie_gr00t import discovery  # noqa: E402  (before anything imports rclpy)

discovery.confine_to_localhost()

import msgpack  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from alfie_gr00t.wire import protocol  # noqa: E402
from alfie_gr00t.server.config import ServerConfig  # noqa: E402
from alfie_gr00t.engines.base import ChunkPrefix, EngineConfig, ObservationBatch  # noqa: E402
from alfie_gr00t.engines.mock import MockEngine, trajectory_at  # noqa: E402
from alfie_gr00t.client.latency import RefillConfig, RefillPolicy  # noqa: E402
from alfie_gr00t.client.scheduler import ActionScheduler, SchedulerConfig  # noqa: E402
from alfie_gr00t.server.service import BackgroundServer, PolicyService  # noqa: E402
from alfie_gr00t.wire.transport import ReqClient  # noqa: E402

from support.frames import make_frame  # noqa: E402
from support.gr00t_wire import WireClient  # noqa: E402
from support.upstream_requests import CountingEngine, states_for, upstream_observation  # noqa: E402

PREFIX = ChunkPrefix(np.linspace(-0.2, 0.2, 5 * 21, dtype=np.float32).reshape(5, 21), 4)


def test_prefix_round_trips_through_our_protocol(jpeg_images):
    payload = protocol.encode_observation(12.5, 3, jpeg_images, np.zeros(21), "go", prefix=PREFIX)
    obs = protocol.parse_observation(msgpack.unpackb(payload, raw=False), list(jpeg_images), 21,
                                     protocol.RequestLimits())
    np.testing.assert_array_equal(obs.prefix.actions, PREFIX.actions)
    assert obs.prefix.delay_steps == 4
    plain = protocol.encode_observation(12.5, 3, jpeg_images, np.zeros(21), "go")
    assert protocol.parse_observation(msgpack.unpackb(plain, raw=False), list(jpeg_images), 21,
                                      protocol.RequestLimits()).prefix is None


@pytest.mark.parametrize("actions, delay, fragment", [
    ([[0.0] * 20], 0, "21 numbers"),
    ([[0.0] * 21] * 17, 0, "1..16 steps"),
    ([[float("nan")] * 21], 0, "finite"),
    ([[0.0] * 21], 2, "prefix_delay_steps"),
    ([[0.0] * 21], True, "prefix_delay_steps"),
])
def test_bad_prefixes_are_refused(actions, delay, fragment):
    with pytest.raises(protocol.ProtocolError, match=fragment):
        protocol.parse_prefix(actions, delay, 16, 21)


@pytest.fixture
def served(ipc_path):
    config = ServerConfig(mock_mode=True, mock_policy="trajectory", ipc_path=ipc_path)
    engine = CountingEngine(MockEngine(config.engine_config()))
    service = PolicyService(engine, config)
    server = BackgroundServer(service).start()
    yield config, engine
    server.stop()
    service.close()


def test_prefix_reaches_the_engine_through_our_protocol_and_the_mock_honours_it(served, jpeg_images):
    config, engine = served
    client = ReqClient(config.address, 5000)
    try:
        raw = client.request(protocol.encode_observation(50.0, 1, jpeg_images, np.zeros(21), "go", prefix=PREFIX))
    finally:
        client.close()
    reply = protocol.parse_action_response(raw, 16, 21)
    assert engine.last_batch.timestamps == (50.0,)
    np.testing.assert_array_equal(engine.last_batch.prefixes[0].actions, PREFIX.actions)
    np.testing.assert_allclose(reply.actions[:4], PREFIX.actions[:4], atol=1e-6)  # the frozen prefix
    np.testing.assert_allclose(reply.actions[12:], trajectory_at(50.0 + np.arange(12, 16) / 15.0), atol=1e-5)


def test_prefix_reaches_the_engine_through_isaac_gr00t_options(served):
    config, engine = served
    states = states_for(1)
    with WireClient(config.address) as client:
        client.get_action(upstream_observation(states), {"action_prefix": PREFIX.actions, "inference_delay": 4})
    np.testing.assert_array_equal(engine.last_batch.prefixes[0].actions, PREFIX.actions)
    assert engine.last_batch.prefixes[0].delay_steps == 4


def test_trajectory_mock_without_a_prefix_is_the_trajectory():
    engine = MockEngine(EngineConfig(mock_policy="trajectory"))
    batch = ObservationBatch(images={}, state=np.zeros((1, 21), np.float32), language=("x",), timestamps=(7.0,))
    actions = engine.infer(batch).actions[0]
    np.testing.assert_allclose(actions, trajectory_at(7.0 + np.arange(16) / 15.0), atol=1e-6)


def test_client_prefix_is_the_schedule_on_the_new_observations_step_grid():
    """What the worker sends: the current schedule sampled at capture + k / 15 Hz, k < expected delay."""
    from alfie_gr00t.client.worker import InferenceWorker

    clock = [100.0]
    scheduler = ActionScheduler(SchedulerConfig(), clock=lambda: clock[0])
    chunk = np.stack([np.full(21, 0.01 * k) for k in range(16)])
    scheduler.add_chunk(chunk, observation_time=100.0)
    refill = RefillPolicy(RefillConfig())
    for _ in range(3):
        refill.record(0.2, 0.2)  # 200 ms: 3 steps of delay
    worker = InferenceWorker.__new__(InferenceWorker)  # only the prefix logic, no socket or thread
    from alfie_gr00t.client.config import ClientConfig
    from alfie_gr00t.client.normalization import Normalizer

    worker._cfg, worker._scheduler, worker.refill = ClientConfig(), scheduler, refill
    worker._normalizer = Normalizer.identity(21)
    clock[0] = 100.4
    prefix = worker._prefix(capture=100.4)
    assert prefix.delay_steps == 3
    # 0.4 s after the chunk's capture is its step 6: the prefix is steps 6, 7, 8
    np.testing.assert_allclose(prefix.actions[:, 0], [0.06, 0.07, 0.08], atol=1e-6)
    clock[0] = 100.0 + 14.5 / 15.0  # 1.5 steps left: only those are sent (what will really execute)
    late = worker._prefix(capture=clock[0])
    assert late.delay_steps == len(late.actions) == 2

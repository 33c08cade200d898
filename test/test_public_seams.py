"""The public hooks the benchmarks use instead of reaching into internals: the gate's listener, the mock
engine's trajectory, and whether a BackgroundServer still serves."""

import dataclasses

import numpy as np

from alfie_gr00t import layout
from alfie_gr00t.client.robot_state import MeasuredState, required_dims
from alfie_gr00t.client.safety import CommandKind, MotionGate, MotionLimits
from alfie_gr00t.engines.base import EngineConfig, dummy_batch
from alfie_gr00t.engines.mock import BLEND_STEPS, TRAJECTORY_DIMS, MockEngine, trajectory_at
from alfie_gr00t.server.config import ServerConfig
from alfie_gr00t.server.service import BackgroundServer, PolicyService

TICK = 0.01


def test_a_gate_listener_sees_each_command_after_the_output():
    now = [100.0]
    measured = MeasuredState(list(layout.JOINT_NAMES), required_dims("joint_state", layout.ACTION_DIM),
                             clock=lambda: now[0])
    sent, seen = [], []
    limits = MotionLimits(np.asarray(layout.LOWER_LIMITS), np.asarray(layout.UPPER_LIMITS),
                          np.full(15, 1.5), np.full(6, 0.5), TICK)
    gate = MotionGate(limits, measured, 0.25, output=sent.append, clock=lambda: now[0])
    gate.watch(lambda command: seen.append((command, len(sent))))
    middle = (np.asarray(layout.LOWER_LIMITS) + np.asarray(layout.UPPER_LIMITS)) / 2.0
    measured.update(dict(enumerate(middle)))
    gate.arm()
    gate.step(middle)
    gate.step(None)  # disarmed by nothing: no target is a hold
    assert [c for c, _ in seen] == sent and len(sent) >= 2
    assert [n for _, n in seen] == list(range(1, len(sent) + 1)), "the output ran before the listener"
    assert seen[0][0].kind is CommandKind.POLICY


def test_the_mock_trajectory_is_the_engines_own_and_can_be_swapped():
    engine = MockEngine(EngineConfig(mock_policy="trajectory"))
    batch = dataclasses.replace(dummy_batch(EngineConfig(mock_policy="trajectory"), 1), timestamps=(1000.0,))
    before = engine.infer(batch).actions[0]
    assert engine.trajectory is trajectory_at and set(TRAJECTORY_DIMS) <= set(range(layout.ACTION_DIM))
    moved = [d for d in range(layout.ACTION_DIM) if np.ptp(before[:, d]) > 0]
    assert set(moved) <= set(TRAJECTORY_DIMS) and BLEND_STEPS > 0
    engine.trajectory = lambda times, dim: trajectory_at(times, dim) + 0.5
    np.testing.assert_allclose(engine.infer(batch).actions[0], before + 0.5, atol=1e-5)
    assert MockEngine(EngineConfig(mock_policy="trajectory")).trajectory is trajectory_at  # one engine only


def test_background_server_says_whether_it_serves(ipc_path):
    config = ServerConfig(mock_mode=True, ipc_path=ipc_path, warmup_runs=0)
    server = BackgroundServer(PolicyService(MockEngine(config.engine_config()), config))
    assert not server.alive
    with server:
        assert server.alive
    assert not server.alive


def test_scheduler_observers_see_each_chunk_and_command_as_returned():
    from alfie_gr00t.client.scheduler import ActionScheduler, SchedulerConfig

    now = [50.0]
    scheduler = ActionScheduler(SchedulerConfig(action_step_hz=15.0, action_horizon=16, crossfade_steps=0,
                                                ema_alpha=1.0, watchdog_timeout_s=5.0, action_dim=3),
                                clock=lambda: now[0])
    chunks, commands = [], []
    scheduler.watch(on_chunk=lambda *args: chunks.append(args), on_command=lambda t, out: commands.append((t, out)))
    assert scheduler.command() is None and commands == [(50.0, None)]
    actions = np.arange(48, dtype=np.float64).reshape(16, 3)
    dropped = scheduler.add_chunk(actions, observation_time=50.0)
    assert chunks == [(50.0, actions, 50.0, dropped, False)]
    now[0] = 50.2
    out = scheduler.command()
    assert commands[-1][0] == 50.2 and np.array_equal(commands[-1][1], out) and out is not None
    scheduler.add_chunk(actions + 1.0, observation_time=50.2)
    assert chunks[-1][4] is True, "a chunk that came while another played"
    assert scheduler.command(50.3) is not None and commands[-1][0] == 50.3

"""Two defects an adversarial review found, kept as regression tests; each failed on the
code as reviewed and states the behaviour the contract (docs/design.md) asks for.

1. A ROS clock that jumps back (use_sim_time: `ros2 bag play --loop`, a simulator reset) used to defeat
   the watchdog and the staleness checks: the scheduler played the newest chunk's first step (base
   velocity included) for as long as the jump, never asked for a new chunk, and state measured before
   the jump counted as fresh. Now: the scheduler treats a clock before the newest chunk's arrival as
   expired, stamps from the future are stale, the worker re-paces, and the core's clock-jump handler moves
   the client to ERROR with a soft hold (test_motion_safety_node.py drives that through /clock).
2. Race between the inference thread's `_on_inference_error` and an `activate:true` handled on the
   executor: the worker's late `gate.hold()` disarmed the new activation, leaving the client ACTIVE
   while the gate dropped every policy step. Now transitions are serialized and a failure only holds
   for its own activation (epoch).
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from alfie_gr00t import layout
from alfie_gr00t.client.inputs import LatestInputs
from alfie_gr00t.client.state_machine import ClientState, ClientStateMachine
from alfie_gr00t.client.worker import InferenceWorker
from alfie_gr00t.client.config import ClientConfig
from alfie_gr00t.client.latency import RefillPolicy
from alfie_gr00t.client.normalization import Normalizer
from alfie_gr00t.client.robot_state import MeasuredState, required_dims
from alfie_gr00t.client.scheduler import ActionScheduler, SchedulerConfig

TICK = 0.01


class Clock:
    """A settable clock (seconds), like the node's ROS clock under use_sim_time."""

    def __init__(self, t: float = 1000.0):
        self.t = t
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.t

    def set(self, t: float) -> None:
        with self._lock:
            self.t = t

    def advance(self, dt: float) -> None:
        with self._lock:
            self.t += dt


def _default_pipeline(clock):
    """Scheduler, gate and measured state of the client's core, with the default config."""
    from alfie_gr00t.client.core import ClientCore

    out = []
    core = ClientCore(ClientConfig(), output=out.append, clock=clock)
    return core.config, core.scheduler, core.measured, core.gate, out


def _posture(cfg) -> np.ndarray:
    lower, upper = np.asarray(cfg.joint_lower_limits), np.asarray(cfg.joint_upper_limits)
    posture = (lower + upper) / 2.0
    posture[layout.BASE_DIMS] = 0.0
    return posture


# -- 1. the ROS clock jumps back ------------------------------------------------------------------

def test_clock_jump_back_does_not_replay_a_chunk_forever():
    """Sim time is reset 60 s back while a chunk plays. Afterwards time runs normally again and no new
    chunk ever arrives. The chunk's steps belong to times that now lie 60 s in the future: after at
    most the chunk's duration plus the watchdog timeout of ticking, the scheduler must be dry (the
    caller holds). As reviewed it returns the chunk's first step (base velocity 0.1 m/s) for all 60 s,
    and `remaining_steps` stays at the full horizon, so the worker never even asks for a new chunk."""
    clock = Clock(1000.0)
    cfg, scheduler, _, _, _ = _default_pipeline(clock)
    chunk = np.tile(_posture(cfg), (cfg.action_horizon, 1))
    chunk[:, 0] = 0.1  # the policy drives the base forward
    scheduler.add_chunk(chunk, observation_time=clock())
    clock.advance(0.2)
    assert scheduler.command() is not None  # playing

    clock.set(940.0)  # /clock jumps back (bag loop, simulator reset)
    budget_s = scheduler.chunk_duration_s + cfg.watchdog_timeout_s + 0.5
    last = None
    for _ in range(int(budget_s / TICK)):
        clock.advance(TICK)
        last = scheduler.command()
    refill = RefillPolicy(cfg.refill_config())
    assert last is None, (
        f"{budget_s:.1f} s after the clock jumped back, with no new chunk, the scheduler still commands "
        f"base velocity {last[0]:.3f} m/s (remaining_steps={scheduler.remaining_steps():.1f}, request due: "
        f"{refill.request_due(scheduler.remaining_steps())})")


def test_clock_jump_back_the_gate_keeps_the_base_moving_without_any_inference():
    """The same jump seen at the robot: the node's tick feeds the scheduler's step to the gate. With
    no chunk arriving for 3.6 s of ticking, the base must have been ramped to zero (a soft hold when
    the queue runs dry / the watchdog fires); as reviewed it keeps driving at 0.1 m/s."""
    clock = Clock(1000.0)
    cfg, scheduler, measured, gate, out = _default_pipeline(clock)
    posture = _posture(cfg)
    measured.update({i: float(posture[i]) for i in range(layout.BASE_DIMS.stop, cfg.action_dim)})
    gate.arm()
    chunk = np.tile(posture, (cfg.action_horizon, 1))
    chunk[:, 0] = 0.1
    scheduler.add_chunk(chunk, observation_time=clock())
    for _ in range(30):  # 0.3 s of normal play: the base ramps up to 0.1 m/s
        clock.advance(TICK)
        measured.update({i: float(posture[i]) for i in range(layout.BASE_DIMS.stop, cfg.action_dim)})
        gate.step(scheduler.command())
    assert out and out[-1].vector[0] == pytest.approx(0.1)

    clock.set(940.0)
    budget_s = scheduler.chunk_duration_s + cfg.watchdog_timeout_s + 0.5
    for _ in range(int(budget_s / TICK)):
        clock.advance(TICK)
        measured.update({i: float(posture[i]) for i in range(layout.BASE_DIMS.stop, cfg.action_dim)})
        gate.step(scheduler.command())
    assert out[-1].vector[0] == 0.0, (
        f"{budget_s:.1f} s after the clock jumped back, no chunk arrived, and the last command still drives "
        f"the base at {out[-1].vector[0]:.3f} m/s ({out[-1].kind.value})")


def test_clock_jump_back_state_measured_before_the_jump_is_not_fresh():
    """State stamped before the clock jumped back lies 60 s in the future of the new clock. If the
    driver stops reporting at the jump, nothing says the robot is still there: the state must count
    as stale (activation refused, no request built from it, never a hold target). As reviewed its
    age is -60 s, which passes `now - stamp <= max_age`, so it stays 'fresh' for a whole minute."""
    clock = Clock(1000.0)
    cfg, _, measured, gate, _ = _default_pipeline(clock)
    posture = _posture(cfg)
    measured.update({i: float(posture[i]) for i in range(layout.BASE_DIMS.stop, cfg.action_dim)})
    clock.set(940.0)  # the clock jumps back; the driver publishes nothing after this
    clock.advance(1.0)  # a whole second without any measurement: far past max_observation_age_ms
    problems = measured.reading().problems(clock(), cfg.max_observation_age_ms / 1000.0)
    assert problems.get("stale"), ("a state last measured 1 s ago (before the clock jumped back) counts as "
                                   "fresh: no joint is reported stale")


def test_clock_jump_back_does_not_stall_the_inference_thread():
    """The worker paces requests with `next_allowed = now + 1/target_fps` on the same clock. After a
    60 s jump back it sends nothing for 60 s (`now < next_allowed`). A request that is due must go out
    within a few request periods of the jump."""
    clock = Clock(1000.0)
    cfg = ClientConfig()
    scheduler = ActionScheduler(SchedulerConfig(action_step_hz=cfg.action_step_hz,
                                                action_horizon=cfg.action_horizon,
                                                watchdog_timeout_s=cfg.watchdog_timeout_s,
                                                action_dim=cfg.action_dim), clock=clock)
    measured = MeasuredState(cfg.joint_names, required_dims(cfg.state_msg_type), clock=clock)
    inputs = LatestInputs(cfg.camera_names, measured, "task", clock=clock)
    machine = ClientStateMachine()
    machine.activate(True)  # CONNECTING: wants inference; the queue is empty, so a request is due
    worker = InferenceWorker(cfg, inputs, scheduler, machine, Normalizer.identity(cfg.action_dim),
                             RefillPolicy(cfg.refill_config()), clock=clock)
    calls = []
    worker.step = lambda: calls.append(clock()) or False  # count the attempts only (no server needed)
    worker.start()
    try:
        deadline = time.monotonic() + 2.0
        while not calls and time.monotonic() < deadline:
            time.sleep(0.005)
        assert calls, "the worker never tried a first request"
        clock.set(clock() - 60.0)  # /clock jumps back
        seen = len(calls)
        for _ in range(100):  # 1 s of clock time, in 10 ms ticks, real time in between
            clock.advance(TICK)
            time.sleep(0.005)
        assert len(calls) > seen, (
            f"1 s after the clock jumped back 60 s no request was attempted (target_fps={cfg.target_fps}); "
            "the worker waits for the clock to catch up with its pre-jump pacing")
    finally:
        worker.stop()


# -- 2. worker error vs a re-activation on the executor ---------------------------------------------

def test_inference_error_hold_racing_a_reactivation_leaves_active_without_motion(ipc_path):
    """Interleaving (each line is the thread that runs it; the worker is preempted between the two
    halves of `_record_failure`, which is all a 5 ms GIL switch needs):

      worker:    machine.fail(epoch) -> ERROR                (ACTIVE -> ERROR logged to /rosout)
      stop path: ~/activate true -> gate.arm(), CONNECTING   (a supervisor re-activating on ERROR)
      worker:    core.on_inference_error -> gate.hold()      (disarms the NEW activation)
      worker:    next chunk arrives -> ACTIVE

    The client now reports ACTIVE, requests succeed, but the gate is disarmed: every policy step is
    dropped and nothing is published, silently, until someone sends activate:false then true.
    Driven on the ROS-free core, each thread's part by hand (no threads started)."""
    from alfie_gr00t.client.core import ClientCore

    clock = Clock(1000.0)
    out = []
    client = ClientCore(ClientConfig(ipc_path=ipc_path), output=out.append, clock=clock).start(threads=False)
    try:
        cfg = client.config
        posture = _posture(cfg)

        def measure():
            client.measured.update({i: float(posture[i]) for i in range(layout.BASE_DIMS.stop, cfg.action_dim)})

        def chunk_arrives():
            measure()
            chunk = np.tile(posture, (cfg.action_horizon, 1))
            chunk[:, layout.JOINT_DIMS.start] += 0.05  # the policy moves a joint
            client.scheduler.add_chunk(chunk, clock())
            assert client.machine.chunk_arrived(client.machine.epoch)

        def tick():
            clock.advance(TICK)
            measure()
            client.tick()

        measure()
        assert client.activate(True)[0]
        assert client.machine.state is ClientState.CONNECTING
        chunk_arrives()
        assert client.machine.state is ClientState.ACTIVE
        for _ in range(10):  # the policy plays normally
            tick()
        assert client.gate.policy_commands > 0

        epoch = client.machine.epoch
        left = client.machine.fail(epoch)  # worker: too many consecutive failures
        assert left is ClientState.ACTIVE
        measure()
        assert client.activate(True)[0]  # stop path: re-activation from ERROR
        assert client.machine.state is ClientState.CONNECTING
        client.on_inference_error(left, "5 consecutive failures", epoch)  # worker, resumed
        chunk_arrives()  # the new activation's first chunk
        assert client.machine.state is ClientState.ACTIVE

        before = client.gate.policy_commands
        for _ in range(20):
            tick()
        assert client.gate.policy_commands > before, (
            f"state {client.machine.state.value} with a fresh chunk queued, but the gate is "
            f"{'armed' if client.gate.armed else 'disarmed'} and published no policy command in 20 ticks "
            f"(last hold reason: {client.gate.last_hold_reason!r})")
    finally:
        client.close(publish_stop=False)


# -- 3. a reply checked for its activation, then deactivate + reactivate before it is queued ---------
class _FakeLink:
    last_sent = None

    def __init__(self, chunk):
        self.chunk = chunk

    def exchange(self, snap, state, timer, prefix, timeout_ms):
        from alfie_gr00t.client.links import ChunkReply
        return ChunkReply(self.chunk.copy())


def test_reply_of_an_old_activation_is_not_queued_into_a_new_one():
    """The worker checks `may_play(epoch)` and then queues the chunk. If the executor handles
    activate:false and activate:true in between (the GIL switches threads every 5 ms), the old
    activation's chunk lands in the new activation's freshly reset schedule: the new activation's
    first request is held back while it drains (`request_due` sees a full queue) and the new chunk
    then crossfades in from it, so the robot first follows a plan computed from an observation taken
    before the deactivation. The chunk must be queued atomically with its activation being current."""
    clock = Clock(1000.0)
    cfg, scheduler, measured, _, _ = _default_pipeline(clock)
    posture = _posture(cfg)
    measured.update({i: float(posture[i]) for i in range(cfg.action_dim)})
    inputs = LatestInputs(cfg.camera_names, measured, "task", clock=clock)
    for name in cfg.camera_names:
        inputs.store_frame(name, np.zeros((4, 4, 3), np.uint8))

    class RacingMachine(ClientStateMachine):
        race = True

        def may_play(self, epoch):
            allowed = super().may_play(epoch)
            if allowed and self.race:  # the stop path runs here: what ClientCore.activate does
                self.race = False
                self.activate(False)
                scheduler.reset()
                scheduler.reset()
                self.activate(True)
            return allowed

    machine = RacingMachine()
    machine.activate(True)
    worker = InferenceWorker(cfg, inputs, scheduler, machine, Normalizer.identity(cfg.action_dim),
                             RefillPolicy(cfg.refill_config()), clock=clock)
    try:
        worker._probe = lambda epoch: True  # the server answered the ping
        worker._link = _FakeLink(np.tile(posture, (cfg.action_horizon, 1)))
        assert worker.step() is False
        assert machine.state is ClientState.CONNECTING and machine.epoch == 2
        assert scheduler.remaining_steps() == 0, (
            "the first activation's chunk was queued into the second activation's schedule")
        assert worker.refill.request_due(scheduler.remaining_steps())  # the new activation asks at once
        assert worker.consecutive_failures == 0
    finally:
        worker._client.close()  # never started: nothing to join
        worker._codec.close()

"""The client's ROS-free core (client/core.py), without rclpy: every transition and its service answer,
e-stop precedence over a queued chunk and over a reply in flight, a stop that wins over the tick while
it is still on its way, the deadman's refusal, hold and resume, clock jumps, races between the
inference thread and stop requests, the typed status, and the command loop's deadlines.

The server, where one is needed, is the real PolicyService on real ZeroMQ IPC; its engine is the
mock `hold` policy, gated where a test must hold a reply in flight. Commands are read from the gate's
output sink (their kind: policy, hold, stop)."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from alfie_gr00t import layout
from alfie_gr00t.client.command_loop import CommandLoop
from alfie_gr00t.client.config import ClientConfig
from alfie_gr00t.client.core import ClientCore, activation_outcome, clock_jump_cause
from alfie_gr00t.client.safety import CommandKind
from alfie_gr00t.client.state_machine import ClientState
from alfie_gr00t.engines.mock import MockEngine
from alfie_gr00t.server.config import ServerConfig
from alfie_gr00t.server.service import BackgroundServer, PolicyService

from support.frames import image_message, make_frame
from support.ros_helpers import wait_for

POSTURE = np.asarray((0.0,) * 6 + (0.3, 0.4, -0.5, 0.2, 0.1, 0.4, -0.3, 0.4, 0.5, 0.2, -0.1, 0.4, 0.2, -0.3, 0.05))
BOUND_S = 15.0  # only catches hangs


class WallClock:
    """A settable monotonic clock for the deadman and the command period."""

    def __init__(self, t: float = 100.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


class GatedEngine(MockEngine):
    """The mock `hold` policy whose replies wait until the test releases them (a reply in flight)."""

    def __init__(self, config):
        super().__init__(config)
        self.received = threading.Event()
        self.release = threading.Event()
        self.gated = False

    def infer(self, batch):
        self.received.set()
        if self.gated:
            assert self.release.wait(BOUND_S)
        return super().infer(batch)


class Rig:
    """A ClientCore with every command kept. threads=False: the test drives the tick and the worker."""

    def __init__(self, ipc_path: str, threads: bool = False, **overrides):
        self.commands = []
        self.wall = WallClock()
        values = dict(ipc_path=ipc_path, image_width=64, image_height=56, encode_threads=1,
                      inference_timeout_ms=3000, max_consecutive_failures=3)
        values.update(overrides)
        self.core = ClientCore(ClientConfig(**values), output=self.commands.append,
                               wall_clock=time.monotonic if threads else self.wall)
        self.frame = image_message(make_frame(64, 48))
        self.measure()
        self.core.start(threads=threads)

    def measure(self) -> None:
        self.core.measured.update({i: float(v) for i, v in enumerate(POSTURE)})
        for name in self.core.config.camera_names:
            self.core.inputs.store_frame(name, self.frame)

    def tick(self, n: int = 1) -> None:
        for _ in range(n):
            self.measure()
            self.core.tick()

    def kinds(self, start: int = 0) -> list[str]:
        return [c.kind.value for c in self.commands[start:]]

    def queue_chunk(self, offset: float = 0.05) -> None:
        """A chunk for the current activation, as the worker queues it; CONNECTING -> ACTIVE."""
        chunk = np.tile(POSTURE, (layout.ACTION_HORIZON, 1))
        chunk[:, layout.JOINT_DIMS] += offset
        machine = self.core.machine
        assert machine.play_if_current(machine.epoch, lambda: self.core.scheduler.add_chunk(chunk, self.core.now())) \
            is not None
        machine.chunk_arrived(machine.epoch)

    def close(self) -> None:
        self.core.close(publish_stop=False)


@pytest.fixture
def rig(ipc_path):
    r = Rig(ipc_path)
    yield r
    r.close()


def served(ipc_path: str, engine_cls=MockEngine):
    config = ServerConfig(mock_mode=True, ipc_path=ipc_path, mock_policy="hold")
    engine = engine_cls(config.engine_config())
    return BackgroundServer(PolicyService(engine, config)), engine


STOP_REASONS = ("estop", "activate:false")


def no_policy_after_first_stop(kinds: list[str], stop_kind: str = "stop") -> None:
    assert stop_kind in kinds, kinds
    after = kinds[kinds.index(stop_kind):]
    assert "policy" not in after, f"a policy command after the {stop_kind}: {after}"


def first_stop_index(commands) -> int:
    """Where the stop's first command is (from the request, or from the tick for a stop on its way)."""
    return next(i for i, c in enumerate(commands) if c.reason in STOP_REASONS)


# -- transitions and their answers --------------------------------------------------------------------

def test_every_transition_answers_what_happened(rig):
    core = rig.core
    assert core.activate(False) == (True, "already IDLE")
    assert core.estop(False) == (True, "not in E_STOP (IDLE): nothing to release")
    assert core.activate(True) == (True, "activated: CONNECTING, policy motion starts with the first chunk")
    assert core.activate(True) == (True, "already active (CONNECTING)")
    rig.queue_chunk()
    assert core.machine.state is ClientState.ACTIVE
    assert core.activate(True) == (True, "already active (ACTIVE)")
    rig.tick(5)
    assert core.activate(False) == (True, "deactivated: IDLE (was ACTIVE); holding where the robot is")
    assert rig.kinds()[-1] == "hold" and core.status().last_stop.startswith("activate:false: deactivated")
    ok, message = core.estop(True)
    assert ok and message.startswith("E_STOP latched (was IDLE)"), message
    assert core.estop(True) == (True, "already in E_STOP")
    assert core.activate(True) == (False, "refused: in E_STOP (latched); release it first with ~/estop false")
    assert core.activate(False) == (True, "not active: E_STOP stays latched; release it with ~/estop false")
    assert core.machine.state is ClientState.E_STOP
    assert core.estop(False) == (True, "E_STOP released: IDLE; activate again to move")
    assert core.machine.state is ClientState.IDLE


def test_activation_refused_names_the_joints_never_measured_then_retries_from_error(ipc_path):
    commands = []
    core = ClientCore(ClientConfig(ipc_path=ipc_path), output=commands.append).start(threads=False)
    try:
        ok, message = core.activate(True)  # nothing measured at all
        assert not ok and message.startswith("refused: robot state not usable: never measured: left_shoulder_yaw")
        assert core.machine.state is ClientState.ERROR
        assert "never measured" in core.status().activation_error
        core.measured.update({i: float(v) for i, v in enumerate(POSTURE)})
        assert core.activate(True)[0] and core.machine.state is ClientState.CONNECTING
        assert core.status().activation_error == ""
        assert not commands, "a refused activation commands nothing"
    finally:
        core.close(publish_stop=False)


def test_activation_outcome_texts():
    S = ClientState
    assert activation_outcome(True, S.ERROR, S.CONNECTING)[1].startswith("activated: CONNECTING")
    assert activation_outcome(True, S.IDLE, S.ERROR) == (False, "refused: state ERROR")
    assert activation_outcome(False, S.ERROR, S.IDLE) == (True, "deactivated: IDLE (was ERROR)")
    assert activation_outcome(False, S.CONNECTING, S.IDLE)[1].endswith("holding where the robot is")


# -- e-stop precedence ---------------------------------------------------------------------------------

def test_estop_wins_over_a_queued_chunk(rig):
    core = rig.core
    core.activate(True)
    rig.queue_chunk()
    rig.tick(5)
    assert rig.kinds()[-1] == "policy"
    assert core.scheduler.remaining_steps() > 10  # most of the chunk still queued
    start = len(rig.commands)
    core.estop(True)
    assert rig.kinds(start)[:1] == ["stop"], "the stop goes out at once, from the request itself"
    assert np.all(rig.commands[start].base == 0.0), "e-stop: zero base velocity at once"
    assert core.scheduler.remaining_steps() == 0
    rig.tick(100)
    assert core.machine.play_if_current(core.machine.epoch, lambda: 1) is None, "E_STOP queues no chunk"
    no_policy_after_first_stop(rig.kinds(start))
    assert set(rig.kinds(start)) == {"stop"}, "the e-stop ramp is all stop commands, then silence"


@pytest.mark.parametrize("stop", ["estop", "deactivate"])
def test_a_stop_wins_over_a_reply_in_flight(ipc_path, stop):
    server, engine = served(ipc_path, GatedEngine)
    with server:
        r = Rig(ipc_path)
        try:
            core = r.core
            core.activate(True)
            engine.gated = True
            exchange = threading.Thread(target=core.worker.step)  # the inference thread's part
            exchange.start()
            assert engine.received.wait(BOUND_S), "the request never reached the server"
            start = len(r.commands)
            if stop == "estop":
                assert core.estop(True)[1].startswith("E_STOP latched (was CONNECTING)")
            else:
                assert core.activate(False)[1].startswith("deactivated: IDLE (was CONNECTING)")
            engine.release.set()  # the reply arrives after the stop
            exchange.join(BOUND_S)
            assert not exchange.is_alive()
            assert core.worker.requests_ok == 0 and core.scheduler.remaining_steps() == 0, \
                "the reply of a stopped activation was queued"
            r.tick(50)
            assert core.machine.state is (ClientState.E_STOP if stop == "estop" else ClientState.IDLE)
            assert "policy" not in r.kinds(start)
        finally:
            r.close()


def test_a_stop_on_its_way_wins_over_the_tick(rig):
    """The stop request raised its flag and then lost the CPU before it could move the state machine
    (here: it waits inside `machine.estop`). A tick in that window sends a hold, not the policy step it
    would have sent; the stop follows when the request resumes."""
    core = rig.core
    core.activate(True)
    rig.queue_chunk()
    rig.tick(5)
    inside, resume = threading.Event(), threading.Event()
    estop = core.machine.estop

    def preempted(on):
        inside.set()
        assert resume.wait(BOUND_S)
        return estop(on)

    core.machine.estop = preempted
    start = len(rig.commands)
    request = threading.Thread(target=core.estop, args=(True,))
    request.start()
    assert inside.wait(BOUND_S)
    assert core.stop_pending
    rig.tick(3)  # the tick thread runs while the request is stalled
    assert rig.kinds(start) and set(rig.kinds(start)) == {"stop"}, rig.kinds(start)
    assert all(np.all(c.base == 0.0) for c in rig.commands[start:]), "an e-stop on its way stops hard"
    assert core.machine.state is ClientState.ACTIVE  # the request has not moved the state yet
    resume.set()
    request.join(BOUND_S)
    assert core.machine.state is ClientState.E_STOP and not core.stop_pending
    rig.tick(50)
    kinds = rig.kinds(start)
    assert "stop" in kinds and "policy" not in kinds
    assert np.all(rig.commands[-1].base == 0.0)


# -- races between the inference thread and stop requests ---------------------------------------------

def test_stop_requests_racing_the_inference_thread_and_the_loop(ipc_path):
    """Real threads: the worker against the real server, the 100 Hz loop, and stop requests fired at
    whatever moment they land. After every e-stop or deactivation no policy command follows the stop's
    first command, and every activation that follows plays again."""
    server, _ = served(ipc_path)
    with server:
        r = Rig(ipc_path, threads=True, target_fps=50.0)
        done = threading.Event()

        def keep_measuring():  # the sensor callbacks, on their own thread
            while not done.wait(0.005):
                r.measure()

        feeder = threading.Thread(target=keep_measuring, daemon=True)
        feeder.start()
        try:
            core = r.core
            for round_ in range(6):
                begin = len(r.commands)
                assert core.activate(True)[0]
                assert wait_for(lambda: "policy" in r.kinds(begin), timeout=BOUND_S), core.status()
                start = len(r.commands)
                assert (core.activate(False) if round_ % 2 else core.estop(True))[0]
                assert wait_for(lambda: not core.gate.engaged, timeout=BOUND_S)
                after = r.commands[start:]
                assert any(c.reason in STOP_REASONS for c in after), [(c.kind.value, c.reason) for c in after]
                stop = first_stop_index(after)
                # at most the one tick already inside the gate when the request came, then the stop
                assert [c.kind.value for c in after[:stop]].count("policy") <= 1, r.kinds(start)
                assert all(c.kind is not CommandKind.POLICY for c in after[stop:]), r.kinds(start)
                core.estop(False)
        finally:
            done.set()
            feeder.join(2.0)
            r.close()


# -- the deadman ------------------------------------------------------------------------------------------

def test_deadman_refuses_activation_holds_on_silence_and_resumes_with_a_fresh_chunk(ipc_path):
    r = Rig(ipc_path, deadman_topic="/teleop/heartbeat", deadman_timeout_ms=500.0)
    try:
        core = r.core
        assert core.status().deadman_state == "never"
        ok, message = core.activate(True)
        assert not ok and message == ("refused: no heartbeat on /teleop/heartbeat yet (deadman); publish "
                                      "heartbeats first")
        assert core.machine.state is ClientState.IDLE and "(deadman)" in core.status().activation_error
        core.heartbeat()
        r.wall.t += 0.6
        ok, message = core.activate(True)
        assert not ok and "last heartbeat on /teleop/heartbeat 600 ms ago, timeout 500 ms" in message
        core.heartbeat()
        assert core.activate(True)[0]
        r.queue_chunk()
        r.tick(5)
        assert r.kinds()[-1] == "policy"

        r.wall.t += 0.4  # within the timeout: still moving
        r.tick(1)
        assert r.kinds()[-1] == "policy"
        r.wall.t += 0.2  # 600 ms of silence: a hold through the gate, not ERROR
        start = len(r.commands)
        r.tick(1)
        assert r.kinds(start) == ["hold"] and core.gate.last_hold_reason == "deadman: no heartbeat"
        status = core.status()
        assert status.state == "ACTIVE" and status.deadman_holding and status.deadman_state == "silent"
        old_epoch = core.machine.epoch
        r.queue_chunk()  # the worker keeps computing; nothing of it moves the robot
        r.tick(60)
        assert "policy" not in r.kinds(start)

        core.heartbeat()  # back: a new epoch, the queue emptied; motion waits for a fresh chunk
        r.tick(1)
        assert core.machine.state is ClientState.CONNECTING and core.machine.epoch == old_epoch + 1
        assert core.scheduler.remaining_steps() == 0 and not core.status().deadman_holding
        assert core.machine.play_if_current(old_epoch, lambda: 1) is None, "an old reply would be dropped"
        r.tick(5)
        assert "policy" not in r.kinds(start)
        r.queue_chunk()
        r.tick(3)
        assert r.kinds()[-1] == "policy" and core.machine.state is ClientState.ACTIVE
    finally:
        r.close()


def test_deadman_off_by_default_and_after_deactivation_no_hold_state(rig):
    assert rig.core.status().deadman_state == "off" and rig.core.deadman.fresh()
    r = rig
    r.core.activate(True)
    r.queue_chunk()
    r.wall.t += 100.0
    r.tick(3)
    assert r.kinds()[-1] == "policy", "without a deadman topic silence means nothing"


# -- clock jumps ------------------------------------------------------------------------------------------

def test_clock_jump_holds_softly_and_needs_a_fresh_activation(rig):
    core = rig.core
    core.activate(True)
    rig.queue_chunk()
    rig.tick(5)
    start = len(rig.commands)
    core.clock_jumped(clock_jump_cause(False, -60.0))
    assert core.machine.state is ClientState.ERROR
    assert core.status().last_error == "the ROS clock jumped back 60.000 s"
    assert rig.kinds(start)[:1] == ["hold"] and core.scheduler.remaining_steps() == 0
    rig.tick(50)
    assert "policy" not in rig.kinds(start)
    assert clock_jump_cause(True, 5.0) == "the ROS time source changed"
    assert clock_jump_cause(False, 3.0) is None


# -- status -----------------------------------------------------------------------------------------------

def test_status_is_typed_json_with_the_stop_path_and_deadman_keys(rig):
    rig.core.activate(True)
    rig.core.estop(True)
    status = rig.core.status()
    data = json.loads(json.dumps(status.to_dict()))
    for key in ("state", "requests_ok", "command_period_p99_ms", "recording", "stages_ms", "activation_error",
                "command_thread", "command_deadlines_missed", "stop_requests", "last_stop",
                "last_stop_handled_ms", "deadman_topic", "deadman_state", "deadman_age_ms", "deadman_holding",
                "frame_age_p50_ms", "frame_age_p99_ms"):
        assert key in data, key
    assert data["state"] == "E_STOP" and data["stop_requests"] == 1
    assert data["last_stop"].startswith("estop: E_STOP latched (was CONNECTING)")
    assert data["recording"]["recording"] is False


# -- the command loop -------------------------------------------------------------------------------------

class SimulatedTime:
    """The loop's clock and wait, simulated: a wait advances the clock by exactly its delay."""

    def __init__(self):
        self.t = 0.0
        self.loop = None

    def clock(self) -> float:
        return self.t

    def wait(self, seconds: float) -> bool:
        self.t += seconds
        return self.loop.stopping if self.loop else False


def test_command_loop_keeps_absolute_deadlines_and_skips_missed_ones_without_a_burst():
    sim, ticks = SimulatedTime(), []

    def tick():
        ticks.append(round(sim.t, 6))
        if len(ticks) == 3:
            sim.t += 0.0355  # a stall of 3.55 periods inside the third tick
        elif len(ticks) == 4:
            sim.t += 0.004  # a late tick does not shift the grid
        if len(ticks) == 8:
            loop.stop()

    loop = CommandLoop(0.01, tick, clock=sim.clock, wait=sim.wait)
    sim.loop = loop
    loop.run()  # on this thread, under the simulated clock
    assert ticks[:3] == [0.0, 0.01, 0.02]
    assert ticks[3] == pytest.approx(0.0555), "after the stall: one tick at once, no catch-up burst"
    assert ticks[4:] == pytest.approx([0.06, 0.07, 0.08, 0.09]), "back on the original grid"
    assert loop.deadlines_missed == 2, "0.03 and 0.04 skipped; 0.05 ran late"


def test_command_loop_survives_a_failing_tick_and_reports_a_refused_priority(monkeypatch):
    logs, calls = [], []

    def refuse(*args):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr("os.sched_setscheduler", refuse)
    sim = SimulatedTime()

    def tick():
        calls.append(sim.t)
        if len(calls) == 5:
            loop.stop()
        raise RuntimeError("broken")

    loop = CommandLoop(0.01, tick, priority=50, log=lambda level, message: logs.append((level, message)),
                       clock=sim.clock, wait=sim.wait)
    sim.loop = loop
    loop.run()
    assert len(calls) == 5 and loop.tick_errors == 5
    assert loop.scheduling == "normal (SCHED_FIFO 50 refused: Operation not permitted)"
    assert any(level == "warning_now" and "refused" in message for level, message in logs)
    assert sum(level == "error" for level, _ in logs) == 1, "a failing tick is logged once, not at 100 Hz"


# -- what /diagnostics makes of it ------------------------------------------------------------------------

def test_diagnostics_warn_on_the_deadman_and_the_command_thread(ipc_path):
    from alfie_gr00t.nodes.diagnostics import ERROR, OK, WARN, client_diagnostics

    r = Rig(ipc_path, deadman_topic="/teleop/deadman")
    try:
        core = r.core
        assert client_diagnostics(core.status().to_dict()).level == OK
        core.activate(True)  # refused: no heartbeat yet
        refused = client_diagnostics(core.status().to_dict())
        assert refused.level == WARN and "no heartbeat on /teleop/deadman yet (deadman)" in refused.message
        core.heartbeat()
        core.activate(True)
        r.queue_chunk()
        r.tick(3)
        r.wall.t += 1.0
        r.tick(1)
        holding = client_diagnostics(core.status().to_dict())
        assert holding.level == WARN and "deadman: holding, last heartbeat 1000 ms ago on /teleop/deadman" \
            in holding.message
        status = core.status().to_dict()
        starved = client_diagnostics({**status, "command_thread": "normal (SCHED_FIFO 50 refused: Operation not "
                                                                  "permitted)"}, recent={"command_deadlines_missed": 7})
        assert starved.level == WARN and "7 command deadline(s) missed" in starved.message
        assert "SCHED_FIFO 50 refused" in starved.message
        assert client_diagnostics({**status, "state": "ERROR"}).level == ERROR
    finally:
        r.close()

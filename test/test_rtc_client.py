"""The client's side of real-time chunking: replanning every few executed steps against a server that
inpaints, the splice at the frozen steps, the fallback when a reply's frozen steps disagree, and the
unchanged behaviour against a server without it (or a policy slower than its chunk).

The scheduler tests run on a fake clock. The end-to-end ones drive the real worker, scheduler and
refill policy on a fake clock against a real `PolicyService` (the `trajectory` mock, which inpaints
the prefix) over real ZeroMQ (support/rtc_sim.py)."""

from alfie_gr00t import discovery  # noqa: E402  (before anything imports rclpy)

discovery.confine_to_localhost()

import math  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from alfie_gr00t.client import rtc  # noqa: E402
from alfie_gr00t.client.config import ClientConfig  # noqa: E402
from alfie_gr00t.client.latency import RefillConfig, RefillPolicy  # noqa: E402
from alfie_gr00t.client.scheduler import ActionScheduler, SchedulerConfig  # noqa: E402
from alfie_gr00t.engines import mock as mock_engine  # noqa: E402
from alfie_gr00t.engines.mock import MockEngine  # noqa: E402
from alfie_gr00t.server.config import ServerConfig  # noqa: E402
from alfie_gr00t.server.service import BackgroundServer, PolicyService  # noqa: E402

from alfie_gr00t.tools.bench_rtc import disagreeing  # noqa: E402
from support.rtc_sim import ClientSim, FakeClock  # noqa: E402

HZ = 15.0
DIM = 21
TRAJECTORY_DIMS = list(mock_engine.TRAJECTORY_DIMS)


def ramp(start: float, slope: float = 0.01, steps: int = 16) -> np.ndarray:
    return np.stack([np.full(DIM, start + slope * k) for k in range(steps)])


# -- the scheduler's splice ------------------------------------------------------------------------
def playing_scheduler(crossfade_steps=3):
    clock = FakeClock(100.0)
    scheduler = ActionScheduler(SchedulerConfig(crossfade_steps=crossfade_steps), clock=clock)
    scheduler.add_chunk(ramp(0.0), observation_time=100.0)  # step k plays at 100 + k / 15, value 0.01 k
    return clock, scheduler


def next_chunk(capture: float, frozen: int, jump: float) -> np.ndarray:
    """A chunk captured at `capture` whose first `frozen` steps are the playing ramp on its grid,
    and whose later steps jump away by `jump` (a policy that disagrees after the prefix)."""
    k0 = (capture - 100.0) * HZ
    chunk = ramp(0.01 * k0)
    chunk[frozen:] += jump
    return chunk


def test_a_chunk_arriving_inside_its_frozen_steps_takes_over_without_a_crossfade():
    clock, scheduler = playing_scheduler()
    capture = 100.2  # step 3 of the playing chunk
    clock.t = capture + 0.1  # 1.5 steps later: still inside 3 frozen steps
    chunk = next_chunk(capture, frozen=3, jump=0.5)
    dropped = scheduler.add_chunk(chunk, capture, frozen_steps=3)
    assert dropped == 1 and scheduler.splices == 1 and scheduler.splices_late == 0
    # from now on it is the new chunk alone: at step 1.5 (between frozen steps) the ramp; at step 2.5
    # halfway from the last frozen step to the jump, where a crossfade would still weigh the old chunk
    np.testing.assert_allclose(scheduler.command(capture + 1.5 / HZ), np.full(DIM, 0.01 * 4.5), atol=1e-9)
    np.testing.assert_allclose(scheduler.command(capture + 2.5 / HZ), np.full(DIM, 0.01 * 5.5 + 0.25), atol=1e-9)


def test_a_splice_is_continuous_where_a_crossfade_of_disagreeing_chunks_is_not_needed():
    """The command just after the splice is the command the old schedule would have given."""
    clock, scheduler = playing_scheduler()
    capture = 100.2
    clock.t = capture + 0.05
    before = scheduler.preview([clock.t + 0.01])[0]
    scheduler.add_chunk(next_chunk(capture, frozen=3, jump=0.5), capture, frozen_steps=3)
    np.testing.assert_allclose(scheduler.command(clock.t + 0.01), before, atol=1e-9)


def test_a_splice_switches_at_the_new_chunks_next_step_where_old_and_new_are_the_same_point():
    """Old chunk with sharp kinks on its own grid; the new chunk's grid is half a step off. The new
    chunk's frozen steps are the old schedule sampled on its grid, so the two agree exactly at its
    steps but not between them: the old schedule plays until the new chunk's next step, and the
    command there is the old schedule's own value (the switch moves nothing)."""
    clock = FakeClock(100.0)
    scheduler = ActionScheduler(SchedulerConfig(), clock=clock)
    scheduler.add_chunk(np.stack([np.full(DIM, 0.1 * (k % 2)) for k in range(16)]), 100.0)  # zigzag
    capture = 100.0 + 2.5 / HZ
    grid = [capture + k / HZ for k in range(16)]
    chunk = scheduler.preview(grid).copy()  # the frozen steps: the old schedule on the new grid
    chunk[4:] += 0.3  # and a policy that disagrees after them
    clock.t = capture + 0.3 / HZ
    times = [clock.t + 0.004 * i for i in range(1, 30)]
    old = scheduler.preview(times)
    scheduler.add_chunk(chunk, capture, frozen_steps=4)
    assert scheduler.splices == 1
    switch = capture + 1 / HZ
    for t, before in zip(times, old):
        if t < switch:
            np.testing.assert_allclose(scheduler.command(t), before, atol=1e-12)  # still the old schedule
    np.testing.assert_allclose(scheduler.command(switch), scheduler.preview([switch])[0], atol=1e-12)
    np.testing.assert_allclose(scheduler.command(switch), chunk[1], atol=1e-12)  # = the old schedule there
    np.testing.assert_allclose(scheduler.command(capture + 1.5 / HZ), (chunk[1] + chunk[2]) / 2, atol=1e-12)


def test_a_chunk_arriving_after_its_frozen_steps_is_crossfaded_and_counted_late():
    clock, scheduler = playing_scheduler()
    capture = 100.2
    clock.t = capture + 2.5 / HZ  # past frozen steps 0 and 1: interpolating toward step 2... but frozen = 2
    chunk = next_chunk(capture, frozen=2, jump=0.5)
    old = scheduler.preview([clock.t + 0.01])[0]
    scheduler.add_chunk(chunk, capture, frozen_steps=2)
    assert scheduler.splices == 0 and scheduler.splices_late == 1
    # a crossfade: 10 ms into a 200 ms fade, the command is still nearly the old one
    command = scheduler.command(clock.t + 0.01)
    assert np.max(np.abs(command - old)) < 0.5 * 0.1


def test_without_frozen_steps_a_chunk_crossfades_as_before():
    clock, scheduler = playing_scheduler()
    clock.t = 100.3
    old = scheduler.preview([100.31])[0]
    scheduler.add_chunk(next_chunk(100.2, frozen=16, jump=0.0) + 0.5, 100.2)
    assert scheduler.splices == 0 and scheduler.splices_late == 0
    assert np.max(np.abs(scheduler.command(100.31) - old)) < 0.5 * 0.1


def test_after_a_hold_a_chunk_with_frozen_steps_just_starts_and_the_plan_clock_decides_its_alignment():
    """The robot held since capture (queue dry): nothing plays, so there is nothing to splice into; the
    chunk starts where the robot's plan stopped (plan time), as any chunk does."""
    clock, scheduler = playing_scheduler()
    capture = 100.0 + 14 / HZ  # 2 steps before the end
    clock.t = 100.0 + 16 / HZ + 0.5  # the queue ran dry half a second ago
    assert scheduler.command() is None
    dropped = scheduler.add_chunk(ramp(0.14), capture, frozen_steps=3)
    assert dropped == 2  # only the 2 steps the robot executed after capture
    assert scheduler.splices == 0 and scheduler.splices_late == 0
    np.testing.assert_allclose(scheduler.command(), np.full(DIM, 0.16), atol=1e-9)


def test_after_the_clock_jumped_back_nothing_is_spliced():
    clock, scheduler = playing_scheduler()
    clock.t = 99.0  # sim time reset: the queued steps belong to another time line
    scheduler.add_chunk(ramp(0.0), 98.95, frozen_steps=3)
    assert scheduler.splices == 0 and scheduler.splices_late == 0


# -- when to replan ---------------------------------------------------------------------------------
def test_replanning_needs_a_server_that_inpaints_and_a_policy_faster_than_its_chunk():
    policy = RefillPolicy(RefillConfig())
    assert not policy.replan_due(10)  # no ping answered yet
    policy.probe_answered(None, rtc=False)
    assert not policy.replanning() and not policy.replan_due(10)
    policy.probe_answered(None, rtc=True)
    assert policy.replanning() and policy.replan_due(4) and not policy.replan_due(3.9)
    for _ in range(3):
        policy.record(1.5, 1.5)  # slower than the 1.07 s chunk: synchronous, RTC off
    assert policy.budget() == "too_slow" and not policy.replanning() and not policy.replan_due(16)
    off = RefillPolicy(RefillConfig(replan_every_steps=0))
    off.probe_answered(None, rtc=True)
    assert not off.replanning()


def test_the_replanning_cadence_counts_executed_steps_not_wall_time():
    """A robot that held (queue dry) executed nothing: holding adds no steps toward the next replan."""
    from alfie_gr00t.client.worker import InferenceWorker

    clock, scheduler = playing_scheduler()
    worker = InferenceWorker.__new__(InferenceWorker)  # only the cadence logic, no socket or thread
    worker._cfg, worker._scheduler, worker._plan_at_request = ClientConfig(), scheduler, None
    assert math.isinf(worker.executed_steps_since_request(100.0))  # nothing sent yet: due at once
    worker._plan_at_request = scheduler.plan_time(100.0)
    assert worker.executed_steps_since_request(100.0 + 3 / HZ) == pytest.approx(3.0)
    assert worker.executed_steps_since_request(100.0 + 16 / HZ + 1.5) == pytest.approx(16.0)  # ran dry, held


def test_no_replanning_without_the_prefix_it_splices_on():
    policy = RefillPolicy(ClientConfig(send_action_prefix=False).refill_config())
    policy.probe_answered(None, rtc=True)
    assert not policy.replanning()


@pytest.mark.parametrize("value", [-1, 17, float("nan")])
def test_replan_every_steps_is_validated(value):
    with pytest.raises(ValueError, match="replan_every_steps"):
        RefillConfig(replan_every_steps=value)


@pytest.mark.parametrize("reply, expected", [
    ({"status": "ok", "rtc": {"enabled": True}}, True),
    ({"status": "ok", "rtc": True}, True),
    ({"status": "ok", "rtc": {"enabled": "yes"}}, False),
    ({"status": "ok", "rtc": {"enabled": False}}, False),
    ({"status": "ok", "rtc": {"enabled": True, "inpaints": False}}, False),  # switched on, but cannot
    ({"status": "ok", "rtc": {"enabled": True, "inpaints": True}}, True),
    ({"status": "ok"}, False),
    ("ok", False),
])
def test_what_counts_as_advertised(reply, expected):
    assert rtc.advertised(reply) is expected


def test_frozen_deviation_compares_in_robot_units_and_refuses_a_short_prefix():
    sent = rtc.SentPrefix(ramp(0.0, steps=5), 3)
    reply = ramp(0.0)
    reply[2, 4] += 0.02
    assert rtc.frozen_deviation(reply, sent, 3) == pytest.approx(0.02)
    assert rtc.frozen_deviation(reply, sent, 2) == 0.0
    assert math.isinf(rtc.frozen_deviation(reply, sent, 6))


# -- end to end: the real worker against a real server ------------------------------------------------
class ClaimingService(PolicyService):
    """Our server, its ping reply claiming that it inpaints whatever its engine does."""

    def _gr00t_endpoint(self, endpoint, data, generation=None):
        reply = super()._gr00t_endpoint(endpoint, data, generation)
        if endpoint == "ping" and not rtc.advertised(reply):
            reply = {**reply, rtc.RTC_KEY: {"enabled": True}}
        return reply


class OlderService(PolicyService):
    """Our server with no real-time-chunking entry in its ping reply (a server that predates it)."""

    def _gr00t_endpoint(self, endpoint, data, generation=None):
        reply = super()._gr00t_endpoint(endpoint, data, generation)
        if endpoint == "ping" and isinstance(reply, dict):
            reply = {k: v for k, v in reply.items() if k != rtc.RTC_KEY}
        return reply


class ShiftingEngine:
    """Wraps the mock: moves every step of each reply by `shift` (a server claiming RTC that breaks it)."""

    def __init__(self, engine, shift: float):
        self._engine, self._shift = engine, shift

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def infer(self, batch):
        out = self._engine.infer(batch)
        out.actions[..., TRAJECTORY_DIMS] += self._shift
        return out


def serve(ipc_path, service_cls=PolicyService, shift: float = 0.0, disagree: float = 0.0, server_rtc: bool = True):
    config = ServerConfig(mock_mode=True, mock_policy="trajectory", ipc_path=ipc_path, warmup_runs=0, rtc=server_rtc)
    engine = MockEngine(config.engine_config())
    if disagree:
        engine.trajectory = disagreeing(engine.trajectory, disagree)
    if shift:
        engine = ShiftingEngine(engine, shift)
    service = service_cls(engine, config)
    return service, BackgroundServer(service).start()


def simulate(ipc_path, latency_s, seconds=6.0, service_cls=PolicyService, shift=0.0, disagree=0.0, server_rtc=True,
             **client):
    service, server = serve(ipc_path, service_cls, shift, disagree, server_rtc)
    sim = ClientSim(ClientConfig(ipc_path=ipc_path, **client), latency_s)
    try:
        return sim.run(seconds)
    finally:
        sim.close()
        server.stop()
        service.close()


def plan_intervals_steps(sim) -> np.ndarray:
    plans = [r.plan for r in sim.record.requests]
    return np.diff(plans) * HZ


@pytest.mark.parametrize("protocol", ["alfie", "gr00t"])
def test_against_a_server_that_inpaints_the_client_replans_every_four_executed_steps(ipc_path, protocol):
    sim = simulate(ipc_path, latency_s=0.05, server_protocol=protocol)
    status = sim.worker.rtc_status()
    assert status["server"] and status["replanning"], status
    intervals = plan_intervals_steps(sim)[2:]  # after the activation's first chunks
    assert intervals.size >= 15
    # one request every 4 executed steps (the worker polls at 10 ms ticks here: +1 tick at most)
    assert np.all(intervals >= 4 - 1e-6) and np.all(intervals <= 4 + 0.15 + 1e-6), intervals
    # every replanning request carries the schedule that still plays, with the frozen steps
    later = sim.record.requests[2:]
    assert all(r.prefix_rows > r.frozen_steps >= 1 for r in later), [(r.prefix_rows, r.frozen_steps) for r in later]
    assert status["replans"] >= len(later)
    assert status["splices"] >= len(later) - 1 and status["fallback_crossfades"] == 0
    assert status["late_crossfades"] == 0 and status["frozen_max_deviation"] < 1e-5


def test_a_server_without_rtc_gets_todays_requests(ipc_path):
    """The same client against a server that predates real-time chunking: the requests, prefixes and
    commands are those of a client with replanning switched off (today's client), exactly."""
    silent = simulate(ipc_path, latency_s=0.25, seconds=5.0, service_cls=OlderService)
    off = simulate(ipc_path, latency_s=0.25, seconds=5.0, replan_every_steps=0)
    assert not silent.worker.rtc_status()["server"] and off.worker.rtc_status()["server"]
    for sim in (silent, off):
        status = sim.worker.rtc_status()
        assert status["replans"] == status["splices"] == status["fallback_crossfades"] == 0, status
        assert all(r.prefix_rows == r.frozen_steps for r in sim.record.requests)  # the prefix is the delay
    assert [(r.sent, r.prefix_rows, r.frozen_steps) for r in silent.record.requests] == \
        [(r.sent, r.prefix_rows, r.frozen_steps) for r in off.record.requests]
    assert [t for t, _ in silent.record.commands] == [t for t, _ in off.record.commands]
    for (_, a), (_, b) in zip(silent.record.commands, off.record.commands):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_allclose(a, b, atol=1e-6)
    intervals = plan_intervals_steps(silent)[2:]
    assert np.all(intervals > 5), intervals  # min_refill_steps (8), not the replanning cadence


def test_a_server_with_rtc_switched_off_gets_no_replanning(ipc_path):
    sim = simulate(ipc_path, latency_s=0.1, seconds=3.0, server_rtc=False)
    status = sim.worker.rtc_status()
    assert not status["server"] and not status["replanning"] and status["replans"] == 0, status
    assert all(r.prefix_rows == r.frozen_steps for r in sim.record.requests)  # today's prefix: the delay
    assert np.all(plan_intervals_steps(sim)[2:] > 5)


@pytest.mark.parametrize("latency_s", [0.05, 0.25])
def test_splices_continue_the_motion_with_chunks_that_disagree(ipc_path, latency_s):
    """Each chunk is offset by up to 0.05 rad (a policy's samples disagree); the server still freezes
    the prefix. At every splice the command is the one the old schedule would have given."""
    sim = simulate(ipc_path, latency_s=latency_s, disagree=0.05)
    spliced = [(t, old) for t, old, splice in sim.record.arrivals if splice]
    assert len(spliced) >= 10, sim.worker.rtc_status()
    commands = dict(sim.record.commands)
    for t, old in spliced:
        # the new chunk interpolates the same frozen values on its own grid: the same motion within a
        # small fraction of the 0.05 rad disagreement
        assert np.max(np.abs(commands[round(t, 9)] - old)) < 0.003, (t, commands[round(t, 9)] - old)
    assert sim.worker.rtc_status()["fallback_crossfades"] == 0


def test_a_server_whose_frozen_steps_disagree_is_crossfaded_and_counted(ipc_path):
    sim = simulate(ipc_path, latency_s=0.1, seconds=4.0, shift=0.05)
    status = sim.worker.rtc_status()
    assert status["server"] and status["replans"] >= 5
    assert status["splices"] == 0 and status["fallback_crossfades"] >= 5, status
    assert "frozen steps moved by 0.05" in status["last_fallback"]
    assert status["frozen_max_deviation"] == pytest.approx(0.05, abs=1e-4)
    commands = dict(sim.record.commands)
    for t, old, _ in sim.record.arrivals[2:]:
        if old is not None:  # a crossfade: 10 ms into the 200 ms fade, no jump to the new chunk
            assert np.max(np.abs(commands[round(t, 9)] - old)) < 0.05 * 0.2, t


def test_a_reply_that_says_it_did_not_inpaint_is_crossfaded_with_the_servers_reason(ipc_path):
    """The server advertises real-time chunking but its engine (the `hold` mock) ignores the prefix, and
    each reply says so: the client crossfades, whatever the values, and reports the server's reason."""
    config = ServerConfig(mock_mode=True, mock_policy="hold", ipc_path=ipc_path, warmup_runs=0)
    service = ClaimingService(MockEngine(config.engine_config()), config)
    server = BackgroundServer(service).start()
    sim = ClientSim(ClientConfig(ipc_path=ipc_path), 0.1)
    try:
        sim.run(3.0)
    finally:
        sim.close()
        server.stop()
        service.close()
    status = sim.worker.rtc_status()
    assert status["replans"] >= 5 and status["splices"] == 0
    assert status["fallback_crossfades"] == status["replans"], status
    assert "did not apply" in status["last_fallback"] and "hold" in status["last_fallback"], status["last_fallback"]


def test_a_policy_slower_than_its_chunk_runs_synchronously_without_replanning(ipc_path):
    sim = simulate(ipc_path, latency_s=1.5, seconds=8.0)
    status = sim.worker.rtc_status()
    assert status["server"] and not status["replanning"]
    assert sim.refill.budget() == "too_slow"
    assert status["replans"] == 0 and status["splices"] == 0, status
    # execute, hold, execute: the requests leave as the queue runs dry
    holds = sum(1 for _, c in sim.record.commands if c is None)
    assert holds > 100

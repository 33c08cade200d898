"""Latency-aware refill with a fake clock: the real ActionScheduler and RefillPolicy driven the way
the client drives them (100 Hz ticks, one request in flight, a server that takes L seconds)."""

import math
import random

import numpy as np
import pytest

from alfie_gr00t.client.latency import MIN_TIMEOUT_MS, RefillConfig, RefillPolicy
from alfie_gr00t.client.scheduler import ActionScheduler, SchedulerConfig

HZ = 15.0
TICK = 0.01
DIM = 21
CHUNK_S = 16 / HZ


class Clock:
    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t


def ideal(t):
    """The chunk content: step k of an observation captured at plan time p is ideal(p + k / HZ)."""
    return np.full(DIM, math.sin(t))


def simulate(latency_s, jitter_s=0.0, seconds=20.0, crossfade_steps=3, **refill):
    """Returns per-tick records after the first chunk: (t, command or None, remaining steps, plan time).

    The policy plans on the plan's clock (docs/design.md#the-plan-clock): what it answers for an observation is the
    continuation from where the robot was in its plan at capture time."""
    clock = Clock()
    scheduler = ActionScheduler(SchedulerConfig(watchdog_timeout_s=2.0, crossfade_steps=crossfade_steps), clock=clock)
    policy = RefillPolicy(RefillConfig(**refill))
    rng = random.Random(1)
    in_flight = None  # (capture time, arrival time, sent)
    records, timeouts = [], []
    start = clock.t
    while clock.t - start < seconds:
        now = clock.t
        if in_flight and now >= in_flight[1]:
            capture, arrival, sent = in_flight
            plan_at_capture = scheduler.plan_time(capture)
            chunk = np.stack([ideal(plan_at_capture + k / HZ) for k in range(16)])
            scheduler.add_chunk(chunk, capture)
            policy.record(now - capture, now - sent)
            in_flight = None
        if in_flight is None and policy.request_due(scheduler.remaining_steps(now)):
            timeouts.append(policy.timeout_ms())
            in_flight = (now, now + latency_s + rng.uniform(-jitter_s, jitter_s), now)
        command = scheduler.command(now)
        if scheduler.chunks_received:
            records.append((now, command, scheduler.remaining_steps(now), scheduler.plan_time(now)))
        clock.t = round(clock.t + TICK, 9)
    return records, timeouts, policy


@pytest.mark.parametrize("latency_s, jitter_s", [(0.001, 0.0), (0.05, 0.01), (0.25, 0.05), (0.5, 0.0)])
def test_queue_never_runs_dry_after_the_first_chunk(latency_s, jitter_s):
    records, _, policy = simulate(latency_s, jitter_s)
    dry = [t for t, command, _, _ in records if command is None]
    assert dry == [], f"queue ran dry {len(dry)} times at {latency_s * 1000:.0f} ms"
    assert policy.budget() == "ok"


@pytest.mark.parametrize("latency_s", [0.001, 0.25, 0.55])
def test_every_played_command_is_aligned_to_its_capture_time(latency_s):
    """Linear interpolation of ideal() samples on the plan's clock: a step skipped for wall time the
    robot spent holding, or a stale step, would be off by far more. (A chunk's last step is held for
    its own period, not interpolated: those ticks are left out, and so is the crossfade, which blends
    onto that held step when a reply lands in an old chunk's last step.)"""
    records, _, _ = simulate(latency_s, seconds=10.0, crossfade_steps=0)
    played = [(p, c) for t, c, remaining, p in records if c is not None and remaining > 1.0]
    assert len(played) > 0.8 * len(records)
    errors = [abs(c[0] - math.sin(p)) for p, c in played]
    assert max(errors) < 0.003  # h^2/8 * max|sin''| = (1/15)^2 / 8 = 0.00056, plus float slack


def test_at_550_ms_the_queue_runs_dry_only_at_seams_and_says_so():
    """One request in flight: a chunk lasts 1.067 s, two 550 ms exchanges take 1.1 s, so each seam
    holds for about 33 ms. The policy reports it instead of replaying stale steps."""
    records, _, policy = simulate(0.55, seconds=20.0)
    dry = np.array([c is None for _, c, _, _ in records])
    assert 0.0 < dry.mean() < 0.08
    runs = np.diff(np.flatnonzero(np.diff(np.concatenate([[0], dry.astype(int), [0]]))))[::2]
    assert runs.max() <= 5  # at most ~(2 x 550 - 1067) ms = 33 ms per seam, in 10 ms ticks
    assert policy.budget() == "seams_hold"


def test_too_slow_policy_is_reported():
    policy = RefillPolicy(RefillConfig())
    for _ in range(5):
        policy.record(1.05, 1.04)
    assert policy.budget() == "too_slow"


@pytest.mark.parametrize("latency_s", [1.2, 2.5, 3.0])
def test_policy_slower_than_its_chunk_runs_execute_hold_execute(latency_s):
    """Slower than the 1.07 s chunk: every chunk plays from (almost) step 0 to its end, the robot holds
    while the next one is computed; nothing is ever stale and the budget says too_slow."""
    clock = Clock()
    scheduler = ActionScheduler(SchedulerConfig(watchdog_timeout_s=2.0), clock=clock)
    policy = RefillPolicy(RefillConfig())
    in_flight, playing_ticks, dry_ticks, skipped = None, 0, 0, []
    start = clock.t
    while clock.t - start < 20.0:
        now = clock.t
        if in_flight and now >= in_flight[1]:
            skipped.append(scheduler.add_chunk(np.zeros((16, DIM)), in_flight[0]))
            policy.record(now - in_flight[0], now - in_flight[0])
            in_flight = None
        if in_flight is None and policy.request_due(scheduler.remaining_steps(now)):
            in_flight = (now, now + latency_s)
        if scheduler.chunks_received:
            if scheduler.command(now) is None:
                dry_ticks += 1
            else:
                playing_ticks += 1
        clock.t = round(clock.t + TICK, 9)
    assert scheduler.chunks_stale == 0
    assert max(skipped) == 0  # the robot never moved between a capture and its reply
    assert policy.budget() == "too_slow" and policy.synchronous()
    cycle = CHUNK_S + latency_s - 0.06  # the request leaves with the margin (60 ms) left
    assert len(skipped) == pytest.approx(20.0 / cycle, abs=1.5)
    assert playing_ticks / (playing_ticks + dry_ticks) == pytest.approx(CHUNK_S / cycle, abs=0.05)


def test_slow_policy_requests_only_as_the_queue_runs_dry():
    policy = RefillPolicy(RefillConfig(latency_margin_ms=60))
    for _ in range(5):
        policy.record(2.5, 2.49)
    assert policy.synchronous()
    assert not policy.request_due(15.0) and not policy.request_due(1.0)
    assert policy.request_due(0.06 * HZ) and policy.request_due(0.0)
    fixed = RefillPolicy(RefillConfig(refill_threshold_steps=12))
    for _ in range(5):
        fixed.record(2.5, 2.49)
    assert not fixed.synchronous() and fixed.request_due(11.0)  # a fixed threshold is obeyed as set


def test_timeout_follows_the_measured_latency_and_nothing_known_gets_the_cap():
    policy = RefillPolicy(RefillConfig(inference_timeout_ms=10000))
    assert policy.timeout_ms() == 10000  # nothing measured or reported: the longest wait
    for _ in range(10):
        policy.record(0.26, 0.25)
    assert policy.timeout_ms() == pytest.approx(2 * 250 + 60)
    policy.activated()
    assert policy.timeout_ms() == pytest.approx(2 * 250 + 60)  # a new activation keeps what was measured
    policy.record(0.002, 0.001)
    assert policy.timeout_ms() == pytest.approx(2 * 250 + 60)  # the window still remembers 250 ms
    slow = RefillPolicy(RefillConfig(inference_timeout_ms=10000))
    slow.record(3.1, 3.0)
    assert slow.timeout_ms() == pytest.approx(2 * 3000 + 60)  # a 3 s policy is never cut at 2 s
    capped = RefillPolicy(RefillConfig(inference_timeout_ms=4000))
    capped.record(3.1, 3.0)
    assert capped.timeout_ms() == 4000
    fast = RefillPolicy(RefillConfig())
    for _ in range(25):
        fast.record(0.002, 0.001)
    assert fast.timeout_ms() == MIN_TIMEOUT_MS


def test_first_request_timeout_follows_the_latency_the_server_reports():
    policy = RefillPolicy(RefillConfig(inference_timeout_ms=10000))
    policy.activated()
    assert policy.probe_due() and policy.probe_timeout_ms() == 1000
    policy.probe_answered(2.8)  # the server's own figure, e.g. its p95 inference time
    assert not policy.probe_due()
    assert policy.timeout_ms() == pytest.approx(2 * 2800 + 60)
    policy.record(1.1, 1.0)  # once measured, the measurement wins
    assert policy.timeout_ms() == pytest.approx(2 * 1000 + 60)
    silent = RefillPolicy(RefillConfig(inference_timeout_ms=10000))
    silent.activated()
    silent.probe_answered(None)  # alive, no figure: the first observation may take up to the cap
    assert silent.timeout_ms() == 10000


def test_probe_repeats_after_failures_until_the_activation_gets_a_chunk():
    policy = RefillPolicy(RefillConfig(inference_timeout_ms=300))
    policy.activated()
    assert policy.probe_timeout_ms() == 300  # never longer than the cap
    policy.probe_answered()
    policy.request_failed()
    assert policy.probe_due()  # the next attempt is a short ping again
    policy.probe_answered()
    policy.record(0.1, 0.1)
    policy.request_failed()
    assert not policy.probe_due()  # known alive and measured: plain adaptive timeouts
    policy.activated()
    assert policy.probe_due()


def test_request_lead_grows_with_latency():
    policy = RefillPolicy(RefillConfig(min_refill_steps=8, latency_margin_ms=60))
    assert policy.lead_s() == pytest.approx(8 / HZ)  # at low latency: re-plan every half chunk
    for _ in range(20):
        policy.record(0.5, 0.49)
    assert policy.lead_s() == pytest.approx(0.56)
    assert policy.request_due(0.56 * HZ) and not policy.request_due(0.57 * HZ)
    assert policy.delay_steps() == 8  # ceil(0.5 s x 15 Hz)


def test_fixed_threshold_overrides_the_latency_aware_refill():
    policy = RefillPolicy(RefillConfig(refill_threshold_steps=12))
    for _ in range(20):
        policy.record(0.5, 0.5)
    assert policy.request_due(11.9) and not policy.request_due(12.0)


@pytest.mark.parametrize("values, fragment", [
    ({"refill_threshold_steps": 17}, "refill_threshold_steps"),
    ({"min_refill_steps": -1}, "min_refill_steps"),
    ({"latency_margin_ms": 1100}, "latency_margin_ms"),
    ({"inference_timeout_ms": 50}, "inference_timeout_ms"),
])
def test_bad_refill_config_is_refused(values, fragment):
    with pytest.raises(ValueError, match=fragment):
        RefillConfig(**values)


def _attempts_until_a_chunk(policy, server_latency_s, max_failures=5):
    """Drive first contact as the worker does: ping when due (answered, no figure: Isaac-GR00T's own
    server), then an observation with timeout_ms(); failures until one waits long enough, or None."""
    failures = 0
    while failures < max_failures:
        if policy.probe_due():
            policy.probe_answered(None)
        if policy.timeout_ms() >= server_latency_s * 1000.0:
            policy.record(server_latency_s + 0.01, server_latency_s)
            return failures
        policy.request_failed()  # the observation timed out
    return None


def test_a_server_that_became_slower_than_the_measured_history_is_not_timed_out_forever():
    """The client measured a fast server (40 ms); the server is restarted on a CPU (2.5 s). The
    history would cut every first-contact observation at 250 ms: ERROR on every activation, for good.
    Once an observation failed before the activation's first chunk (the ping proved the server alive),
    the next one waits the cap, as when nothing is known."""
    policy = RefillPolicy(RefillConfig(inference_timeout_ms=10000))
    for _ in range(20):
        policy.record(0.05, 0.04)
    for _activation in range(3):
        policy.activated()
        failures = _attempts_until_a_chunk(policy, 2.5)
        assert failures is not None and failures < 5, "every attempt timed out: the client goes to ERROR"
        for _ in range(20):
            policy.record(0.05, 0.04)  # back to the fast server for the next round
    # Mid-activation (a chunk already came) the measured timeout still applies: a dead server is found
    # in N adaptive timeouts.
    policy.request_failed()
    assert not policy.probe_due() and policy.timeout_ms() == MIN_TIMEOUT_MS

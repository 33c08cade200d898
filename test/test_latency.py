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
    """The chunk content: step k of an observation captured at c is ideal(c + k / HZ)."""
    return np.full(DIM, math.sin(t))


def simulate(latency_s, jitter_s=0.0, seconds=20.0, **refill):
    """Returns per-tick records after the first chunk: (t, command or None, remaining steps)."""
    clock = Clock()
    scheduler = ActionScheduler(SchedulerConfig(watchdog_timeout_s=2.0), clock=clock)
    policy = RefillPolicy(RefillConfig(**refill))
    rng = random.Random(1)
    in_flight = None  # (capture time, arrival time, sent)
    records, timeouts = [], []
    start = clock.t
    while clock.t - start < seconds:
        now = clock.t
        if in_flight and now >= in_flight[1]:
            capture, arrival, sent = in_flight
            chunk = np.stack([ideal(capture + k / HZ) for k in range(16)])
            scheduler.add_chunk(chunk, capture)
            policy.record(now - capture, now - sent)
            in_flight = None
        if in_flight is None and policy.request_due(scheduler.remaining_steps(now)):
            timeouts.append(policy.timeout_ms())
            in_flight = (now, now + latency_s + rng.uniform(-jitter_s, jitter_s), now)
        command = scheduler.command(now)
        if scheduler.chunks_received:
            records.append((now, command, scheduler.remaining_steps(now)))
        clock.t = round(clock.t + TICK, 9)
    return records, timeouts, policy


@pytest.mark.parametrize("latency_s, jitter_s", [(0.001, 0.0), (0.05, 0.01), (0.25, 0.05), (0.5, 0.0)])
def test_queue_never_runs_dry_after_the_first_chunk(latency_s, jitter_s):
    records, _, policy = simulate(latency_s, jitter_s)
    dry = [t for t, command, _ in records if command is None]
    assert dry == [], f"queue ran dry {len(dry)} times at {latency_s * 1000:.0f} ms"
    assert policy.budget() == "ok"


@pytest.mark.parametrize("latency_s", [0.001, 0.25, 0.55])
def test_every_played_command_is_aligned_to_its_capture_time(latency_s):
    """Linear interpolation of ideal() samples: a stale or shifted step would be off by far more.
    (A chunk's last step is held for its own period, not interpolated: those ticks are left out.)"""
    records, _, _ = simulate(latency_s, seconds=10.0)
    played = [(t, c) for t, c, remaining in records if c is not None and remaining > 1.0]
    assert len(played) > 0.8 * len(records)
    errors = [abs(c[0] - math.sin(t)) for t, c in played]
    assert max(errors) < 0.003  # h^2/8 * max|sin''| = (1/15)^2 / 8 = 0.00056, plus float slack


def test_at_550_ms_the_queue_runs_dry_only_at_seams_and_says_so():
    """One request in flight: a chunk lasts 1.067 s, two 550 ms exchanges take 1.1 s, so each seam
    holds for about 33 ms. The policy reports it instead of replaying stale steps."""
    records, _, policy = simulate(0.55, seconds=20.0)
    dry = np.array([c is None for _, c, _ in records])
    assert 0.0 < dry.mean() < 0.08
    runs = np.diff(np.flatnonzero(np.diff(np.concatenate([[0], dry.astype(int), [0]]))))[::2]
    assert runs.max() <= 5  # at most ~(2 x 550 - 1067) ms = 33 ms per seam, in 10 ms ticks
    assert policy.budget() == "seams_hold"


def test_too_slow_policy_is_reported():
    policy = RefillPolicy(RefillConfig())
    for _ in range(5):
        policy.record(1.05, 1.04)
    assert policy.budget() == "too_slow"


def test_timeout_follows_latency_and_the_first_request_gets_the_cap():
    policy = RefillPolicy(RefillConfig(inference_timeout_ms=2000))
    assert policy.timeout_ms() == 2000  # nothing measured: a cold server gets the cap
    for _ in range(10):
        policy.record(0.26, 0.25)
    assert policy.timeout_ms() == pytest.approx(2 * 250 + 60)
    policy.activated()
    assert policy.timeout_ms() == 2000  # the first request of an activation: the cap again
    policy.record(0.002, 0.001)
    assert policy.timeout_ms() == pytest.approx(2 * 250 + 60)  # the window still remembers 250 ms
    fast = RefillPolicy(RefillConfig())
    for _ in range(25):
        fast.record(0.002, 0.001)
    assert fast.timeout_ms() == MIN_TIMEOUT_MS


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

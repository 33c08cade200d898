"""ActionScheduler: interpolation, refill, latency alignment, crossfade, EMA, watchdog.

All time comes from a fake clock; nothing here sleeps or measures wall time.
"""

import threading

import numpy as np
import pytest

from alfie_gr00t.client.scheduler import ActionScheduler, SchedulerConfig

HZ = 15.0
STEP = 1.0 / HZ
DIM = 21
T0 = 100.0


class FakeClock:
    def __init__(self, now=T0):
        self.now = now

    def __call__(self):
        return self.now


def curved_chunk(steps=16, dim=DIM):
    """Step k, dim d = k**2 + d: non-linear in k, so interpolation is distinguishable."""
    k = np.arange(steps, dtype=np.float64)[:, None]
    return k**2 + np.arange(dim, dtype=np.float64)[None, :]


def constant_chunk(value, steps=16, dim=DIM):
    return np.full((steps, dim), float(value))


def make(clock=None, **overrides):
    # A long watchdog unless a test is about the watchdog: a 16-step chunk lasts 1.07 s.
    config = SchedulerConfig(**{"watchdog_timeout_s": 10.0, **overrides})
    clock = clock or FakeClock()
    return ActionScheduler(config, clock=clock), clock


# -- config ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value",
    [
        ("action_step_hz", 0.0),
        ("action_step_hz", float("nan")),
        ("action_horizon", 0),
        ("crossfade_steps", -1),
        ("crossfade_steps", 1.5),
        ("ema_alpha", 0.0),
        ("ema_alpha", 1.5),
        ("watchdog_timeout_s", 0.0),
        ("action_dim", 0),
    ],
)
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        SchedulerConfig(**{field: value})


def test_config_defaults_follow_spec():
    config = SchedulerConfig()
    assert (config.action_step_hz, config.action_horizon, config.action_dim) == (15.0, 16, 21)
    assert config.watchdog_timeout_s == 2.0  # a backstop: a 16-step chunk runs dry after 1.07 s on its own
    assert config.ema_alpha == 1.0


# -- playing one chunk ----------------------------------------------------------------


def test_nothing_to_play_before_the_first_chunk():
    scheduler, _ = make()
    assert scheduler.command() is None
    assert scheduler.remaining_steps() == 0.0
    assert scheduler.watchdog_expired()


@pytest.mark.parametrize("k", [0, 1, 7, 14, 15])
def test_command_at_step_points_equals_the_step(k):
    scheduler, _ = make()
    chunk = curved_chunk()
    assert scheduler.add_chunk(chunk, observation_time=T0) == 0
    np.testing.assert_allclose(scheduler.command(T0 + k * STEP), chunk[k], atol=1e-9)


@pytest.mark.parametrize("k", [0, 5, 13])
def test_command_midway_interpolates_linearly(k):
    scheduler, _ = make()
    chunk = curved_chunk()
    scheduler.add_chunk(chunk, observation_time=T0)
    expected = 0.5 * (chunk[k] + chunk[k + 1])
    np.testing.assert_allclose(scheduler.command(T0 + (k + 0.5) * STEP), expected, atol=1e-9)
    expected_quarter = 0.75 * chunk[k] + 0.25 * chunk[k + 1]
    np.testing.assert_allclose(scheduler.command(T0 + (k + 0.25) * STEP), expected_quarter, atol=1e-9)


def test_last_step_is_held_for_its_period_then_the_queue_is_dry():
    scheduler, _ = make()
    chunk = curved_chunk()
    scheduler.add_chunk(chunk, observation_time=T0)
    np.testing.assert_allclose(scheduler.command(T0 + 15.5 * STEP), chunk[15], atol=1e-9)
    assert scheduler.command(T0 + 16.01 * STEP) is None
    assert scheduler.remaining_steps(T0 + 16.01 * STEP) == 0.0


def test_command_returns_a_copy_the_caller_can_keep():
    scheduler, _ = make()
    scheduler.add_chunk(constant_chunk(1.0), observation_time=T0)
    first = scheduler.command(T0)
    first[:] = 99.0
    np.testing.assert_array_equal(scheduler.command(T0), np.ones(DIM))


def test_input_buffer_is_copied():
    scheduler, _ = make()
    buffer = constant_chunk(1.0)
    scheduler.add_chunk(buffer, observation_time=T0)
    buffer[:] = 50.0  # the caller reuses its buffer
    np.testing.assert_array_equal(scheduler.command(T0), np.ones(DIM))


@pytest.mark.parametrize(
    "bad",
    [np.zeros((16, DIM - 1)), np.zeros(DIM), np.zeros((0, DIM)), np.full((16, DIM), np.nan)],
    ids=["wrong-dim", "1-d", "empty", "nan"],
)
def test_add_chunk_rejects_malformed_chunks(bad):
    scheduler, _ = make()
    with pytest.raises(ValueError):
        scheduler.add_chunk(bad, observation_time=T0)
    assert scheduler.command(T0) is None


def test_action_horizon_caps_a_longer_chunk():
    scheduler, _ = make(action_horizon=8)
    chunk = curved_chunk(steps=16)
    scheduler.add_chunk(chunk, observation_time=T0)
    assert scheduler.remaining_steps(T0) == pytest.approx(8.0)
    np.testing.assert_allclose(scheduler.command(T0 + 7.5 * STEP), chunk[7], atol=1e-9)
    assert scheduler.command(T0 + 8.01 * STEP) is None


# -- refill ---------------------------------------------------------------------------


def test_remaining_steps_count_down_with_time():
    scheduler, _ = make()
    scheduler.add_chunk(curved_chunk(), observation_time=T0)
    assert scheduler.remaining_steps(T0) == pytest.approx(16.0)
    assert scheduler.remaining_steps(T0 + 7.5 * STEP) == pytest.approx(8.5)
    assert scheduler.remaining_steps(T0 + 8.5 * STEP) == pytest.approx(7.5)


def test_preview_reads_ahead_without_changing_the_schedule():
    clock = FakeClock(T0)
    scheduler, _ = make(clock)
    chunk = curved_chunk()
    scheduler.add_chunk(chunk, observation_time=T0)
    ahead = scheduler.preview([T0 + k * STEP for k in range(4)])
    np.testing.assert_allclose(ahead, chunk[:4])
    np.testing.assert_allclose(scheduler.command(), chunk[0])  # nothing was pruned or smoothed
    assert scheduler.preview([T0 + 20 * STEP]) is None  # past the end: nothing plays
    assert len(scheduler.preview([T0 + k * STEP for k in range(12, 20)])) == 4  # only the steps still covered


def test_remaining_steps_uses_the_injected_clock_by_default():
    scheduler, clock = make()
    scheduler.add_chunk(curved_chunk(), observation_time=T0)
    clock.now = T0 + 4 * STEP
    assert scheduler.remaining_steps() == pytest.approx(12.0)


# -- latency compensation -------------------------------------------------------------


def test_chunk_is_aligned_by_the_steps_the_robot_moved_since_capture():
    """A chunk plays since T0; a new one captured at T0 arrives at T0 + 0.2 s: the robot executed
    0.2 s of plan since the capture, so 3 steps are skipped."""
    clock = FakeClock(T0)
    scheduler, _ = make(clock, crossfade_steps=0)
    scheduler.add_chunk(constant_chunk(0.0), observation_time=T0)
    clock.now = T0 + 0.2
    chunk = curved_chunk()
    assert scheduler.add_chunk(chunk, observation_time=T0) == 3
    np.testing.assert_allclose(scheduler.command(), chunk[3], atol=1e-9)
    assert scheduler.remaining_steps() == pytest.approx(13.0)
    assert scheduler.steps_dropped_total == 3


def test_partial_step_of_motion_is_played_in_time():
    clock = FakeClock(T0)
    scheduler, _ = make(clock, crossfade_steps=0)
    scheduler.add_chunk(constant_chunk(0.0), observation_time=T0)
    clock.now = T0 + 3.4 * STEP
    chunk = curved_chunk()
    assert scheduler.add_chunk(chunk, observation_time=T0) == 3
    np.testing.assert_allclose(scheduler.command(), 0.6 * chunk[3] + 0.4 * chunk[4], atol=1e-9)


@pytest.mark.parametrize("age_s", [0.2, 0.5, 2.5, 5.0])
def test_robot_that_held_still_since_capture_starts_the_chunk_at_step_0(age_s):
    """No chunk played since the capture (the first chunk of an activation, or a slow policy): however
    long the policy took, nothing of the new chunk was executed, so all of it plays."""
    clock = FakeClock(T0 + age_s)
    scheduler, _ = make(clock)
    chunk = curved_chunk()
    assert scheduler.add_chunk(chunk, observation_time=T0) == 0
    np.testing.assert_allclose(scheduler.command(), chunk[0], atol=1e-9)
    assert scheduler.remaining_steps() == pytest.approx(16.0)
    assert scheduler.plan_time() == pytest.approx(0.0)
    assert scheduler.chunks_stale == 0


def test_robot_that_moved_part_of_the_latency_skips_exactly_the_steps_it_moved():
    """Captured 0.2 s before the queue ran dry, the reply comes 0.5 s after capture: the robot moved
    0.2 s (3 steps at 15 Hz) and held 0.3 s, so 3 steps are skipped, not floor(0.5 x 15) = 7."""
    clock = FakeClock(T0)
    scheduler, _ = make(clock)
    scheduler.add_chunk(constant_chunk(0.0), observation_time=T0)
    dry_at = T0 + 16 * STEP
    capture = dry_at - 0.2
    clock.now = capture + 0.5
    assert scheduler.command() is None  # the robot holds here
    chunk = curved_chunk()
    assert scheduler.add_chunk(chunk, observation_time=capture) == 3
    np.testing.assert_allclose(scheduler.command(), chunk[3], atol=1e-9)  # no crossfade: nothing played
    assert scheduler.plan_time() - scheduler.plan_time(capture) == pytest.approx(0.2)


def test_hold_then_motion_since_capture_counts_only_the_motion():
    """Captured during a hold; another chunk then played 0.2 s before this reply arrived: 3 steps."""
    clock = FakeClock(T0)
    scheduler, _ = make(clock, crossfade_steps=0)
    scheduler.add_chunk(constant_chunk(0.0, steps=2), observation_time=T0)
    capture = T0 + 0.5  # the 2-step chunk ran dry at T0 + 0.133
    clock.now = T0 + 0.8
    assert scheduler.add_chunk(constant_chunk(1.0), observation_time=T0 + 0.8) == 0
    clock.now = T0 + 1.0
    chunk = curved_chunk()
    assert scheduler.add_chunk(chunk, observation_time=capture) == 3
    np.testing.assert_allclose(scheduler.command(), chunk[3], atol=1e-9)


def test_reply_is_stale_only_when_the_robot_moved_past_all_of_its_steps():
    clock = FakeClock(T0)
    scheduler, _ = make(clock)
    scheduler.add_chunk(constant_chunk(0.0), observation_time=T0)
    clock.now = T0 + 3.0  # the chunk played its 16 steps, then the robot held ~1.9 s
    assert scheduler.add_chunk(curved_chunk(), observation_time=T0 + STEP) == 15  # moved 15 steps: 1 left
    assert scheduler.chunks_stale == 0
    scheduler.reset()
    scheduler.add_chunk(constant_chunk(0.0), observation_time=clock.now)
    clock.now += 3.0
    assert scheduler.add_chunk(curved_chunk(), observation_time=clock.now - 3.0) == 16  # moved all 16
    assert scheduler.chunks_stale == 1
    assert scheduler.command() is None


def test_plan_time_stops_when_the_watchdog_expires_and_on_reset():
    clock = FakeClock(T0)
    scheduler, _ = make(clock, watchdog_timeout_s=0.5)
    scheduler.add_chunk(constant_chunk(0.0), observation_time=T0)
    assert scheduler.plan_time(T0 + 1.0) == pytest.approx(0.5)  # commands stopped at T0 + 0.5
    clock.now = T0 + 1.0
    assert scheduler.add_chunk(curved_chunk(), observation_time=T0) == 7  # floor(0.5 x 15)
    clock.now = T0 + 1.2
    scheduler.reset()
    assert scheduler.plan_time(T0 + 5.0) == pytest.approx(0.7)


def test_slow_policy_cycles_execute_hold_execute_and_never_goes_stale():
    """A 2.5 s policy asked when the queue runs dry: each chunk plays all 16 steps from step 0,
    then the robot holds while the next is computed."""
    clock = FakeClock(T0)
    scheduler, _ = make(clock, watchdog_timeout_s=2.0)
    capture, played, held = T0, 0, 0
    for cycle in range(4):
        clock.now = capture + 2.5
        assert scheduler.add_chunk(curved_chunk(), observation_time=capture) == 0
        while scheduler.remaining_steps() > 0:
            assert scheduler.command() is not None
            played += 1
            clock.now = round(clock.now + 0.01, 9)
        capture = clock.now  # the next request leaves as the queue runs dry
        held += 1
        assert scheduler.command() is None
    assert scheduler.chunks_stale == 0 and scheduler.steps_dropped_total == 0
    assert played == pytest.approx(4 * 107, abs=4)


def test_clock_jump_back_voids_plan_history():
    clock = FakeClock(T0)
    scheduler, _ = make(clock)
    scheduler.add_chunk(constant_chunk(0.0), observation_time=T0)
    clock.now = T0 + 0.5
    assert scheduler.plan_time() == pytest.approx(0.5)
    clock.now = T0 - 60.0  # sim time reset: the old segment lies in the future of the new time line
    chunk = curved_chunk()
    assert scheduler.add_chunk(chunk, observation_time=clock.now) == 0
    np.testing.assert_allclose(scheduler.command(), chunk[0], atol=1e-9)
    clock.now += 0.2
    assert scheduler.add_chunk(chunk, observation_time=T0 - 60.0) == 3


def test_observation_from_the_future_starts_now():
    scheduler, _ = make()
    chunk = curved_chunk()
    assert scheduler.add_chunk(chunk, observation_time=T0 + 1.0) == 0
    np.testing.assert_allclose(scheduler.command(T0), chunk[0], atol=1e-9)
    assert scheduler.remaining_steps(T0) == pytest.approx(16.0)


def test_chunk_whose_steps_all_elapsed_is_ignored():
    """The robot played 1.2 s of plan (two crossfaded chunks) since this chunk's capture: all 16 of its
    steps were executed while it was computed."""
    clock = FakeClock(T0)
    scheduler, _ = make(clock, watchdog_timeout_s=1.0)
    scheduler.add_chunk(constant_chunk(1.0), observation_time=T0)
    clock.now = T0 + 0.6
    scheduler.add_chunk(constant_chunk(1.0), observation_time=clock.now)
    clock.now = T0 + 1.2
    assert scheduler.add_chunk(constant_chunk(7.0), observation_time=T0) == 16
    np.testing.assert_array_equal(scheduler.command(), np.ones(DIM))  # queue unchanged
    assert scheduler.chunks_received == 3
    assert scheduler.chunks_stale == 1
    # The stale chunk did not feed the watchdog: it expires 1.0 s after the second chunk.
    assert not scheduler.watchdog_expired(T0 + 1.59)
    assert scheduler.watchdog_expired(T0 + 1.61)


def test_old_capture_on_an_empty_queue_plays_from_step_0():
    """The plan's clock (docs/design.md#the-plan-clock) did not run (nothing played), so nothing of the chunk elapsed."""
    scheduler, _ = make()
    chunk = curved_chunk()
    assert scheduler.add_chunk(chunk, observation_time=T0 - 5.0) == 0
    np.testing.assert_allclose(scheduler.command(T0), chunk[0], atol=1e-9)
    assert not scheduler.watchdog_expired(T0)


# -- crossfade ------------------------------------------------------------------------


def max_jump_across_switch(crossfade_steps):
    """Largest change between consecutive 100 Hz commands when an offset chunk replaces another."""
    clock = FakeClock(T0)
    scheduler, _ = make(clock, crossfade_steps=crossfade_steps)
    ramp = np.linspace(0.0, 0.3, 16)[:, None] * np.ones((1, DIM))
    scheduler.add_chunk(ramp, observation_time=T0)
    outputs = []
    for tick in range(120):
        clock.now = T0 + tick * 0.01
        if tick == 40:
            scheduler.add_chunk(ramp + 1.0, observation_time=clock.now)  # restarts the ramp, 1.0 higher
        outputs.append(scheduler.command())
    assert all(out is not None for out in outputs)
    return float(np.max(np.abs(np.diff(np.stack(outputs), axis=0))))


def test_crossfade_makes_the_switch_smoother_than_a_hard_switch():
    hard = max_jump_across_switch(0)
    soft = max_jump_across_switch(3)
    assert hard > 0.8  # 1.0 minus the 6 steps the old ramp had climbed, in one tick
    assert soft < 0.2  # 1.0 spread over 3 steps (0.2 s = 20 ticks) plus the ramp's slope
    assert soft < hard


def test_crossfade_blends_old_to_new_linearly_over_the_configured_steps():
    clock = FakeClock(T0)
    scheduler, _ = make(clock, crossfade_steps=3)
    scheduler.add_chunk(constant_chunk(0.0), observation_time=T0)
    clock.now = T0 + 0.1
    scheduler.add_chunk(constant_chunk(1.0), observation_time=clock.now)
    np.testing.assert_allclose(scheduler.command(T0 + 0.1), np.zeros(DIM), atol=1e-9)
    np.testing.assert_allclose(scheduler.command(T0 + 0.1 + 1.5 * STEP), np.full(DIM, 0.5), atol=1e-9)
    np.testing.assert_allclose(scheduler.command(T0 + 0.1 + 3 * STEP), np.ones(DIM), atol=1e-9)


def test_chunk_arriving_mid_crossfade_does_not_jump():
    clock = FakeClock(T0)
    scheduler, _ = make(clock, crossfade_steps=3)
    scheduler.add_chunk(constant_chunk(0.0), observation_time=T0)
    outputs = []
    for tick in range(60):
        clock.now = T0 + tick * 0.01
        if tick in (10, 15, 20, 25, 30):  # faster than one crossfade (20 ticks)
            scheduler.add_chunk(constant_chunk(tick / 10.0), observation_time=clock.now)
        outputs.append(scheduler.command())
    jumps = np.abs(np.diff(np.stack(outputs), axis=0))
    assert np.max(jumps) < 0.25
    np.testing.assert_allclose(outputs[-1], np.full(DIM, 3.0), atol=1e-9)


def test_no_crossfade_after_the_queue_ran_dry():
    clock = FakeClock(T0)
    scheduler, _ = make(clock, crossfade_steps=3)
    scheduler.add_chunk(constant_chunk(0.0, steps=2), observation_time=T0)
    clock.now = T0 + 3 * STEP  # the 2-step chunk is over
    assert scheduler.command() is None
    scheduler.add_chunk(constant_chunk(1.0), observation_time=clock.now)
    np.testing.assert_array_equal(scheduler.command(), np.ones(DIM))


# -- EMA ------------------------------------------------------------------------------


def test_ema_smooths_a_step_change():
    clock = FakeClock(T0)
    scheduler, _ = make(clock, crossfade_steps=0, ema_alpha=0.5)
    scheduler.add_chunk(constant_chunk(0.0), observation_time=T0)
    np.testing.assert_allclose(scheduler.command(), np.zeros(DIM))
    scheduler.add_chunk(constant_chunk(1.0), observation_time=T0)
    np.testing.assert_allclose(scheduler.command(), np.full(DIM, 0.5))
    np.testing.assert_allclose(scheduler.command(), np.full(DIM, 0.75))


def test_ema_off_passes_the_step_change_through():
    clock = FakeClock(T0)
    scheduler, _ = make(clock, crossfade_steps=0, ema_alpha=1.0)
    scheduler.add_chunk(constant_chunk(0.0), observation_time=T0)
    scheduler.command()
    scheduler.add_chunk(constant_chunk(1.0), observation_time=T0)
    np.testing.assert_allclose(scheduler.command(), np.ones(DIM))


# -- watchdog -------------------------------------------------------------------------


def test_watchdog_stops_commands_and_a_fresh_chunk_resumes_them():
    clock = FakeClock(T0)
    scheduler, _ = make(clock, watchdog_timeout_s=0.5)
    scheduler.add_chunk(constant_chunk(1.0), observation_time=T0)
    clock.now = T0 + 0.49
    assert not scheduler.watchdog_expired()
    assert scheduler.command() is not None
    clock.now = T0 + 0.51  # the chunk still has steps, but nothing fresh came
    assert scheduler.watchdog_expired()
    assert scheduler.command() is None
    assert scheduler.remaining_steps() == 0.0
    scheduler.add_chunk(constant_chunk(2.0), observation_time=clock.now)
    assert not scheduler.watchdog_expired()
    np.testing.assert_array_equal(scheduler.command(), np.full(DIM, 2.0))  # no fade from the stale plan


# -- reset ----------------------------------------------------------------------------


def test_reset_forgets_the_queue_watchdog_and_ema_but_keeps_counters():
    clock = FakeClock(T0)
    scheduler, _ = make(clock, ema_alpha=0.5)
    scheduler.add_chunk(constant_chunk(0.0), observation_time=T0)
    clock.now = T0 + 0.2
    scheduler.add_chunk(constant_chunk(0.0), observation_time=T0)  # 0.2 s moved: 3 steps skipped
    scheduler.command()
    scheduler.reset()
    assert scheduler.remaining_steps() == 0.0
    assert scheduler.watchdog_expired()
    assert (scheduler.chunks_received, scheduler.steps_dropped_total) == (2, 3)
    scheduler.add_chunk(constant_chunk(4.0), observation_time=clock.now)
    np.testing.assert_array_equal(scheduler.command(), np.full(DIM, 4.0))  # EMA starts afresh
    scheduler.reset()
    assert scheduler.command() is None


def test_ema_restarts_after_a_hold():
    clock = FakeClock(T0)
    scheduler, _ = make(clock, ema_alpha=0.5, watchdog_timeout_s=0.5)
    scheduler.add_chunk(constant_chunk(0.0), observation_time=T0)
    scheduler.command()
    clock.now = T0 + 0.6
    assert scheduler.command() is None  # the caller held position here
    scheduler.add_chunk(constant_chunk(4.0), observation_time=clock.now)
    np.testing.assert_array_equal(scheduler.command(), np.full(DIM, 4.0))  # not blended with the stale 0.0


# -- threads --------------------------------------------------------------------------


def test_concurrent_add_and_command_smoke():
    clock = FakeClock(T0)
    scheduler, _ = make(clock)
    chunks = 300
    errors = []

    def produce():
        try:
            for i in range(chunks):
                scheduler.add_chunk(constant_chunk(float(i % 7)), observation_time=clock())
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    producer = threading.Thread(target=produce)
    producer.start()
    reads = 0
    while producer.is_alive() and reads < 200_000:
        out = scheduler.command()
        if out is not None:
            assert out.shape == (DIM,)
            assert np.all(np.isfinite(out)) and np.all((out >= 0.0) & (out <= 6.0))
        scheduler.remaining_steps()
        reads += 1
    producer.join()
    assert not errors
    assert scheduler.chunks_received == chunks
    assert scheduler.command() is not None

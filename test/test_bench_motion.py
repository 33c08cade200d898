"""The motion benchmark's metrics on synthetic series with known answers (no nodes), plus one short
smoke run of the real thing that asserts only that it produced numbers (never the targets)."""

import json
import os
import math

import numpy as np
import pytest

from alfie_gr00t.tools import bench_motion as bm
from alfie_gr00t.tools import motion_metrics as mm
from alfie_gr00t.tools import motion_report

from support.ros_helpers import next_domain_id

DIMS = mm.TRAJECTORY_DIMS


def ideal_commands(times):
    return mm.IDEAL(np.asarray(times))


def ticks(start=100.0, seconds=1.0, period=0.01, jitter=0.0, seed=0):
    """100 Hz tick times, each late by up to `jitter` s (timers never fire early)."""
    n = int(round(seconds / period))
    late = np.random.default_rng(seed).uniform(0.0, jitter, n) if jitter else np.zeros(n)
    return start + 0.0037 + np.arange(n) * period + late


# -- dead time ----------------------------------------------------------------------------------
def test_dead_time_zero_when_every_slot_has_a_policy_command():
    t = ticks(jitter=0.003)
    result = mm.dead_time(t, [], 100.0, 101.0)
    assert result["slots"] in (99, 100)
    assert result["dead_slots"] == 0 and result["pct"] == 0.0


def test_dead_time_counts_missing_ticks_and_holds():
    t = ticks(jitter=0.002)
    kept = np.delete(t, [10, 11, 12, 50, 51])  # five ticks with no policy command
    holds = [t[80] + 0.0001]  # a hold in a slot that also has a policy command
    result = mm.dead_time(kept, holds, t[0] - 0.005, t[-1] + 0.005)
    assert result["slots"] in (99, 100)  # only whole slots inside the window count
    assert result["no_policy_slots"] == 5
    assert result["hold_slots"] == 1
    assert result["dead_slots"] == 6
    assert result["pct"] == pytest.approx(600.0 / result["slots"], abs=1e-3)


def test_dead_time_grid_follows_the_tick_phase():
    # Ticks right on a 10 ms boundary of the absolute clock, jittering late by up to 4 ms: a grid
    # fixed at the window start would split them; the phase-aligned grid puts one tick in each slot.
    t = 200.0 + np.arange(100) * 0.01 + np.random.default_rng(1).uniform(0.0, 0.004, 100)
    assert mm.dead_time(t, [], 199.995, 200.995)["dead_slots"] == 0


def test_dead_time_of_an_empty_window():
    assert mm.dead_time([], [], 5.0, 5.001)["pct"] is None
    assert mm.dead_time([], [], 5.0, 5.1)["pct"] == 100.0


# -- tracking error -------------------------------------------------------------------------------
def test_tracking_error_known_offset():
    t = ticks()
    v = ideal_commands(t)
    assert mm.tracking_error(t, v)["rms"] == pytest.approx(0.0, abs=1e-12)
    v[:, DIMS[0]] += 0.02  # one of six dims off by 0.02: RMS = sqrt(0.02^2 / 6)
    v[:, 0] += 5.0  # a dim outside the trajectory dims does not count
    result = mm.tracking_error(t, v)
    assert result["rms"] == pytest.approx(0.02 / math.sqrt(6), rel=1e-4)
    assert result["max"] == pytest.approx(0.02, rel=1e-4)
    assert result["n"] == len(t)


def test_tracking_error_of_a_late_command_stream():
    # Commanding trajectory_at(t - 0.1) at t: the error is the trajectory's motion over 100 ms.
    t = ticks(seconds=10.0)
    late = mm.tracking_error(t, ideal_commands(t - 0.1))
    assert 0.005 < late["rms"] < 0.05


# -- seams --------------------------------------------------------------------------------------
def test_smooth_stream_has_no_seam_excess():
    t = ticks(seconds=4.0)
    arrivals = [t[0] + 0.5, t[0] + 1.5, t[0] + 2.5]
    result = mm.seam_changes(t, ideal_commands(t), arrivals, seam_window_s=0.2)
    assert result["seams"] == 3
    assert result["seam_ticks"] == 60
    assert result["in_chunk_ticks"] == len(t) - 1 - 60
    assert result["max_seam_excess"] == pytest.approx(0.0, abs=1e-9)
    assert result["jump_ratio"] < 2.0  # natural speed variation only


def test_seam_step_is_found_and_sized():
    t = ticks(seconds=4.0)
    v = ideal_commands(t)
    arrival = t[0] + 2.0
    v[t >= arrival + 0.005, DIMS[2]] += 0.05  # the new chunk sits 0.05 rad off
    result = mm.seam_changes(t, v, [arrival], seam_window_s=0.2)
    assert result["max_seam_excess"] == pytest.approx(0.05, abs=1e-6)
    assert result["max_seam_change"] >= 0.05 - 0.005
    median = result["median_in_chunk_change"]
    assert median > 0
    assert result["excess_ratio"] == pytest.approx(0.05 / median, rel=1e-2)
    # the same step outside every seam window is in-chunk, not a seam
    late = mm.seam_changes(t, v, [t[0] + 0.5], seam_window_s=0.2)
    assert late["max_seam_excess"] == pytest.approx(0.0, abs=1e-6)


def test_seam_window_follows_the_strategy():
    assert mm.seam_window_s(0, prefix=False) == pytest.approx(1 / 15)
    assert mm.seam_window_s(3, prefix=False) == pytest.approx(4 / 15)
    assert mm.seam_window_s(0, prefix=True) == pytest.approx(5 / 15)  # the mock blends over 4 steps
    assert mm.seam_window_s(6, prefix=True) == pytest.approx(7 / 15)


# -- observation age, queue, periods -------------------------------------------------------------
def test_observation_age_uses_the_newest_chunk_queued_before_each_command():
    chunks = [(10.30, 10.00), (10.80, 10.50)]  # (queued, captured)
    commands = [10.20, 10.30, 10.50, 10.80, 11.00]
    result = mm.observation_age(commands, chunks)
    # 10.20 precedes every chunk (no age); then 300, 500, 300, 500 ms
    assert result["n"] == 4
    assert result["p50_ms"] == pytest.approx(400.0)
    assert result["max_ms"] == pytest.approx(500.0)
    assert mm.observation_age([], chunks)["n"] == 0


def test_queue_and_period_summaries():
    q = mm.queue_summary([8.0, 4.0, 0.0, 2.0])
    assert q == {"min": 0.0, "p50": 3.0, "max": 8.0, "dry_pct": 25.0}
    p = mm.period_summary([10.0] * 99 + [30.0])
    assert p["p50_ms"] == 10.0 and p["max_ms"] == 30.0 and p["n"] == 100


def test_targets_mark_pass_and_miss():
    row = {"delay_ms": 250.0, "command_rate_hz": 99.5, "dry_pct": 0.0, "dead_time": {"pct": 0.5},
           "error": {"rms": 0.004}, "seams": {"jump_ratio": 1.2, "excess_ratio": 2.0}, "period": {"p99_ms": 11.0}}
    v = motion_report.targets(row)
    assert v == {"rate": True, "dead": False, "dry": True, "rms": True, "jump": True, "excess": False, "period": True}
    assert motion_report.targets({**row, "delay_ms": 1.0})["rms"] is None  # the RMS target is set at 250 ms only


# -- the real thing, briefly ------------------------------------------------------------------------
def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def test_smoke_run_produces_numbers(tmp_path):
    out = tmp_path / "motion.json"
    code = bm.main(["--latencies", "1", "--seconds", "3", "--no-seams", "--no-load", "--no-cpu", "--no-codecs", "--no-debug",
                    "--no-series", "--json", str(out), "--out-dir", str(tmp_path),
                    "--domain-id", str(next_domain_id())])
    assert code == 0
    result = json.loads(out.read_text())
    (row,) = result["fidelity"]
    assert "skipped" not in row, row
    for value in (row["command_rate_hz"], row["dead_time"]["pct"], row["error"]["rms"], row["age"]["p50_ms"],
                  row["queue"]["p50"], row["period"]["p99_ms"]):
        assert _number(value), row


def test_child_processes_import_this_package():
    """The server and sim robot processes of the CPU part get the folder holding alfie_gr00t on PYTHONPATH
    (it moved into tools/ once and pointed at alfie_gr00t/ itself)."""
    first = bm._child_env(next_domain_id())["PYTHONPATH"].split(os.pathsep)[0]
    assert os.path.isfile(os.path.join(first, "alfie_gr00t", "__init__.py")), first

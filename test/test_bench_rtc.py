"""The real-time-chunking benchmark: its metrics on synthetic series with known answers, and its --quick
run end to end (the report's structure and finite numbers; never its targets)."""

import json
import math

import numpy as np
import pytest

from alfie_gr00t import layout
from alfie_gr00t.tools import bench_rtc as br

from support.ros_helpers import next_domain_id, ros_free_run

J = br.JOINTS[0]


def commands(times, value_of_t):
    out = np.zeros((len(times), layout.ACTION_DIM))
    out[:, J] = [value_of_t(t) for t in times]
    return out


def chunk(start, value_of_t, steps=16):
    """A chunk whose kept step k plays at start + k / 15 and follows value_of_t."""
    kept = np.zeros((steps, layout.ACTION_DIM))
    kept[:, J] = [value_of_t(start + k / br.STEP_HZ) for k in range(steps)]
    return kept


def test_observation_age_reads_the_newest_chunk_queued_before_each_command():
    ages = br.observation_age([10.10, 10.20, 10.45], [(10.0, 9.8, None, None, False), (10.3, 10.1, None, None, True)])
    assert ages["n"] == 3
    assert ages["p50_ms"] == 350.0  # 300 (10.1 - 9.8), 400 (10.2 - 9.8), 350 (10.45 - 10.1)
    assert math.isclose(ages["p95_ms"], np.percentile([300.0, 400.0, 350.0], 95))


def test_a_seamless_switch_has_no_excess_and_a_jump_of_the_own_step():
    slope = 0.3  # rad/s: 0.003 rad a tick
    times = 100.0 + 0.01 * np.arange(200)
    vectors = commands(times, lambda t: slope * t)
    chunks = [(100.0, 99.9, chunk(100.0, lambda t: slope * t), 100.0, False),
              (100.9955, 100.8, chunk(100.9955, lambda t: slope * t), 100.9955, True)]
    seams = br.seam_metrics(times, vectors, chunks)
    assert seams["seams"] == 1
    assert seams["excess_ratio"] < 1e-6
    assert math.isclose(seams["jump_ratio"], 1.0, rel_tol=1e-6)


def test_a_switch_to_a_chunk_that_disagrees_shows_its_step_as_excess():
    slope = 0.3
    times = 100.0 + 0.01 * np.arange(200)
    switch = 101.0
    vectors = commands(times, lambda t: slope * t + (0.03 if t > switch + 0.005 else 0.0))  # a 0.03 rad step
    chunks = [(100.0, 99.9, chunk(100.0, lambda t: slope * t), 100.0, False),
              (switch - 0.0045, 100.8, chunk(switch, lambda t: slope * t + 0.03), switch, True)]
    seams = br.seam_metrics(times, vectors, chunks)
    assert seams["seams"] == 1
    assert math.isclose(seams["max_excess"], 0.03, rel_tol=1e-6)  # the step no chunk planned
    assert math.isclose(seams["excess_ratio"], 10.0, rel_tol=1e-6)  # 0.03 over a 0.003 tick


def test_a_chunk_that_ends_a_hold_is_no_seam():
    times = 100.0 + 0.01 * np.arange(200)
    vectors = commands(times, lambda t: 0.3 * t + (0.5 if t > 101.005 else 0.0))
    chunks = [(100.0, 99.9, chunk(100.0, lambda t: 0.3 * t), 100.0, False),
              (101.0, 100.5, chunk(101.0, lambda t: 0.3 * t + 0.5), 101.0, False)]  # nothing was playing
    assert br.seam_metrics(times, vectors, chunks)["seams"] == 0


def test_targets_compare_rtc_rows_with_the_crossfade_beside_them():
    def row(mode, age, excess, dead):
        return {"policy": "mock", "latency_ms": 250.0, "mode": mode, "age": {"p50_ms": age},
                "seam": {"excess_ratio": excess}, "dead_time": {"pct": dead}}

    (verdict,) = br.targets([row("rtc", 340.0, 0.05, 1.0), row("crossfade", 500.0, 1.0, 0.8)])
    assert verdict == {"policy": "mock", "latency_ms": 250.0, "mode": "rtc", "age_p50": "PASS",
                       "seam_excess": "PASS", "dead_time": "PASS"}
    (verdict,) = br.targets([row("rtc", 351.0, 0.2, 2.0), row("crossfade", 500.0, 1.0, 1.0)])
    assert verdict["age_p50"] == verdict["seam_excess"] == verdict["dead_time"] == "MISS"
    assert br.age_target_ms(50.0) == 150.0 and br.age_target_ms(550.0) == 650.0


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def test_quick_run_reports_both_modes_with_numbers(tmp_path):
    if ros_free_run():
        pytest.skip("ROS-free run (ALFIE_ROS_FREE=1): the benchmark runs the client and sim robot nodes (rclpy)")
    out = tmp_path / "rtc.json"
    assert br.main(["--quick", "--json", str(out), "--domain-id", str(next_domain_id())]) == 0
    result = json.loads(out.read_text())
    assert result["meta"]["mode"] == "quick" and "mock_server_advertises_rtc" in result["meta"]
    assert [(r["policy"], r["latency_ms"], r["mode"]) for r in result["rows"]] == \
        [("mock", 250.0, "rtc"), ("mock", 250.0, "crossfade")]
    for row in result["rows"]:
        assert "skipped" not in row, row
        for value in (row["age"]["p50_ms"], row["age"]["p95_ms"], row["seam"]["jump_ratio"],
                      row["seam"]["excess_ratio"], row["dead_time"]["pct"], row["chunks_per_s"]):
            assert _finite(value), row
        assert set(row["rtc"]) >= {"server", "replanning", "replans", "splices", "fallback_crossfades"}
    (verdict,) = result["targets"]
    assert set(verdict.values()) - {"mock", 250.0, "rtc"} <= {"PASS", "MISS", "-"}

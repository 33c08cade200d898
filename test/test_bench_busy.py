"""The busy-computer benchmark: its figures on synthetic rounds with known answers, then one tiny end-to-end
run of the real thing (server, client, camera rig and burners as processes) that checks only the report's
shape and that its numbers are numbers (never how fast anything was)."""

import json
import math
import os
import subprocess
import sys

import pytest

from alfie_gr00t.tools import bench_busy as bb

from support.ros_helpers import next_domain_id, ros_free_run


def test_busy_levels():
    assert bb.busy_levels("0,1,N", 2) == [0, 1, 2]
    assert bb.busy_levels("0,1,N", 1) == [0, 1]  # N = 1 core: the same level once
    assert bb.busy_levels(" n ,0", 8) == [8, 0]
    with pytest.raises(ValueError):
        bb.busy_levels("-1", 2)
    with pytest.raises(ValueError):
        bb.busy_levels("100", 2)


def test_summarize_skips_lost_rounds():
    out = bb.summarize([1.0, None, 3.0, float("nan"), 2.0])
    assert out["n"] == 3 and out["p50"] == 2.0 and out["max"] == 3.0
    assert bb.summarize([]) == {"n": 0, "p50": None, "p99": None, "max": None}


def test_periods_from_stamps():
    assert bb.periods_ms([1.00, 1.01, 1.03]) == pytest.approx([10.0, 20.0])
    assert bb.periods_ms([1.0, 1.0, 0.9]) == []  # repeated or out-of-order stamps are no period


def test_monitor_delay_of_the_nearest_command():
    commands = [(10.000, 9.990), (10.100, 10.050), (10.200, 10.195)]  # (arrival, stamp)
    assert bb.monitor_delay(commands, 10.090) == pytest.approx(0.050)
    assert bb.monitor_delay(commands, 10.190) == pytest.approx(0.005)
    assert bb.monitor_delay([], 10.0) == 0.0


def test_a_stop_received_late_counts_from_when_the_client_published_it():
    sent = 100.0
    # this process received everything 200 ms late: the stop the client published 8 ms after the send,
    # and the policy commands it published before (and one, 5 ms after the send, before the stop)
    commands = [(sent + k * 0.01 + 0.2, sent + k * 0.01) for k in range(-5, 5)]
    gate = [(sent + 0.2 - 0.02, "policy"), (sent + 0.2 + 0.005, "policy"), (sent + 0.2 + 0.008, "stop"),
            (sent + 0.2 + 0.018, "stop")]
    out = bb.round_outcome(sent, gate, commands, timeout_s=2.0)
    assert out["latency_ms"] == pytest.approx(8.0, abs=1.0)
    assert out["observed_ms"] == pytest.approx(208.0, abs=1e-6)
    assert out["policy_after"] == 1 and not out["lost"]


def test_a_round_without_a_stop_is_lost_and_counts_the_motion_after_the_send():
    sent = 50.0
    gate = [(sent + k * 0.01, "policy") for k in range(1, 120)]
    commands = [(t, t - 0.001) for t, _ in gate]
    out = bb.round_outcome(sent, gate, commands, timeout_s=1.0)
    assert out["lost"] and out["latency_ms"] is None
    assert out["policy_after"] == 100  # those published within the timeout


def test_level_result_figures():
    rounds = {"topic": [{"latency_ms": 4.0, "observed_ms": 5.0, "lost": False, "policy_after": 1},
                        {"latency_ms": None, "observed_ms": None, "lost": True, "policy_after": 150}],
              "service": [{"latency_ms": 60.0, "observed_ms": 61.0, "lost": False, "policy_after": 6}]}
    before = {"stale_observations_skipped": 3}
    after = {"stale_observations_skipped": 10, "frame_age_p50_ms": 20.0, "frame_age_p99_ms": 80.0,
             "command_period_p99_ms": 11.0}
    out = bb.level_result(2, rounds, [10.0, 10.5], [1.0], before, after)
    assert out["estop"]["topic"]["lost"] == 1 and out["estop"]["topic"]["over_50ms"] == 1
    assert out["estop"]["service"]["over_50ms"] == 1 and out["estop"]["service"]["policy_after_max"] == 6
    assert out["stale_observations_skipped"] == 7
    assert out["frame_age_ms"] == {"p50": 20.0, "p99": 80.0}


def _numbers(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _numbers(v)
    elif isinstance(value, list):
        for v in value:
            yield from _numbers(v)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield value


def test_quick_run_end_to_end(tmp_path):
    if ros_free_run():
        pytest.skip("ROS-free run (ALFIE_ROS_FREE=1): the benchmark runs ROS nodes")
    pytest.importorskip("rclpy")
    out = tmp_path / "busy.json"
    env = dict(os.environ, ROS_DOMAIN_ID=str(next_domain_id()))
    proc = subprocess.run([sys.executable, "-m", "alfie_gr00t.tools.bench_busy", "--quick", "--rounds", "1",
                           "--busy", "0,1", "--round-timeout", "2", "--json", str(out)],
                          capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "e-stop latency" in proc.stdout and "frame_age_p99" in proc.stdout
    result = json.loads(out.read_text())
    assert result["meta"]["cpus"] == os.cpu_count() and result["meta"]["mode"] == "quick"
    assert [level["busy"] for level in result["levels"]] == [0, 1]
    for level in result["levels"]:
        assert set(level["estop"]) == {"topic_linger", "topic_kept", "service_fresh", "service"}
        for row in level["estop"].values():
            assert row["rounds"] == 1 and 0 <= row["lost"] <= 1
            assert set(row) >= {"p50", "p99", "max", "observed_max", "over_50ms", "policy_after_max"}
        assert level["command_period_ms"]["n"] > 0 and level["camera_sets_hz"] > 0
        assert set(level["frame_age_ms"]) == {"p50", "p99"}
    assert all(math.isfinite(v) for v in _numbers(result))

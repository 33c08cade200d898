"""The benchmark runs end to end and reports every row; no timing assertions (shared machines vary)."""

import json
import math

import pytest

from alfie_gr00t.tools import bench, latency_report

from support.ros_helpers import next_domain_id

LATENCY_ROWS = (
    "floor_jpeg_encode_x4", "floor_jpeg_decode_x4", "floor_zmq_echo_ipc", "floor_zmq_echo_tcp",
    "server_rtt_ipc", "server_rtt_tcp", "server_rtt_raw_ipc",
    "e2e_ipc", "e2e_tcp", "e2e_raw_ipc", "gr00t_rtt_ipc", "gr00t_rtt_tcp",
)
OTHER_ROWS = ("throughput_1_client", "throughput_2_clients", "throughput_4_clients", "command_period")
RATIOS = ("server_vs_floor_ipc", "e2e_vs_floor_ipc", "jpeg_vs_gr00t_tcp", "raw_vs_jpeg_ipc", "raw_vs_gr00t_ipc")


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    code = bench.main(["--quick", "--iterations", "25", "--json", str(out), "--domain-id", str(next_domain_id())])
    assert code == 0
    return json.loads(out.read_text())


def test_every_row_has_numeric_percentiles(quick_run):
    rows = quick_run["rows"]
    assert set(LATENCY_ROWS + OTHER_ROWS) <= set(rows)
    for name in LATENCY_ROWS + OTHER_ROWS:
        row = rows[name]
        for key in ("p50", "p95", "p99", "mean"):
            assert _number(row[key]), (name, key, row)
        assert row["p50"] <= row["p95"] <= row["p99"], (name, row)
        assert row["n"] > 0, name
    for name in LATENCY_ROWS:
        assert rows[name]["n"] == 25
    for name in OTHER_ROWS[:3]:
        assert _number(rows[name]["req_per_s"]) and rows[name]["req_per_s"] > 0


def test_ratios_targets_and_stages(quick_run):
    for name in RATIOS:
        assert _number(quick_run["ratios"][name]["value"]), name
    assert quick_run["ratios"]["server_vs_floor_ipc"]["target"] == latency_report.SERVER_RATIO_TARGET
    assert quick_run["ratios"]["e2e_vs_floor_ipc"]["target"] == latency_report.E2E_RATIO_TARGET
    targets = quick_run["targets"]
    assert len(targets) == 4 and all(isinstance(t["met"], bool) for t in targets)
    assert {"decode", "inference"} <= set(quick_run["stages"]["server"]["server_rtt_ipc"])
    assert {"encode", "round_trip"} <= set(quick_run["stages"]["client"]["e2e_ipc"])
    assert {"deserialize", "encode", "round_trip"} <= set(quick_run["stages"]["client"]["command_loop_node"])
    assert quick_run["command_loop"]["requests_ok"] > 0  # inference really was in flight
    assert set(quick_run["throughput"]) == {"1", "2", "4"}


def test_crossfade_removes_the_jump_at_chunk_boundaries():
    hard = bench.crossfade_trajectory(0)
    soft = bench.crossfade_trajectory(3)
    assert len(hard["arrivals"]) >= 3  # several chunk boundaries within the 2 s window
    assert hard["max_step"] > 0.2  # the ±0.12 disagreement shows up as one jump
    assert soft["max_step"] < hard["max_step"] / 4


def test_plot_needs_matplotlib_or_writes_png(tmp_path, monkeypatch):
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert bench.main(["--plot", str(tmp_path / "x.png")]) == 2  # refuses before measuring anything
        return
    result = {"meta": {"mode": "test", "cpus": 2},
              "crossfade": {str(k): bench.crossfade_trajectory(k) for k in (0, 3)}}
    path = tmp_path / "bench.png"
    latency_report.write_plot(result, {"a": [1.0, 2.0, 3.0], "b": [0.5, 0.7, 0.9]}, str(path))
    assert path.stat().st_size > 1000

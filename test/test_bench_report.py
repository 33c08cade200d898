"""The benchmarks' one report writer (tools/report.py) and one rig (tools/rig.py)."""

import json
import math

from alfie_gr00t.tools import bench, bench_interop, bench_motion, bench_triton, report, rig


def test_table_aligns_columns_and_prints_missing_values_as_dash():
    text = report.table(["row", "p50", "p99"], [["floor", "0.18", None], ["server_rtt_ipc", "1.46", "2.20"]])
    lines = text.splitlines()
    assert lines[0].split() == ["row", "p50", "p99"]
    assert lines[1].split() == ["floor", "0.18", "-"]
    # right-aligned numbers end in the same column
    assert len(lines[1]) == len(lines[2]) and lines[1].endswith("-") and lines[2].endswith("2.20")


def test_json_safe_turns_non_finite_numbers_into_null(tmp_path):
    path = report.write_json({"a": [1.0, math.nan, math.inf], "b": {"c": -math.inf}}, tmp_path / "x" / "r.json")
    assert json.loads(open(path).read()) == {"a": [1.0, None, None], "b": {"c": None}}


def test_every_report_carries_the_same_machine_facts_and_footer():
    meta = report.machine_facts(mode="quick", wall_s=3.0)
    assert {"cpus", "python", "platform", "loadavg_1min_before", "mode"} <= set(meta)
    assert report.footer(meta).startswith("3.0 s on ")


def test_the_benchmarks_share_the_rig_and_the_writer():
    """No benchmark starts its own nodes or writes its own JSON: they go through rig and report."""
    import inspect

    for module in (bench, bench_motion):
        source = inspect.getsource(module)
        assert "NodeRig(" in source
        for own in ("GrootServer(", "GrootClient(", "SimRobot(", "rclpy.init(", "json.dump("):
            assert own not in source, f"{module.__name__} still does {own} itself"
    for module in (bench_triton, bench_interop):
        assert "report.write_json" in inspect.getsource(module) and "json.dump(" not in inspect.getsource(module)
    assert rig.ACTIVATE_TOPIC == "/alfie/groot_client/activate"

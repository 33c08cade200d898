"""The one report writer of the benchmarks: machine facts, aligned text tables, the footer line, JSON.

A number measured on a shared machine means little without the machine, so every report carries the
same facts (CPUs, Python, platform, the 1-minute load average before the run) and ends with the same
footer.
"""

from __future__ import annotations

import json
import math
import os
import platform


def env_domain_id() -> int:
    """$ROS_DOMAIN_ID, or one derived from the process id when it is unset or not a number."""
    try:
        return int(os.environ["ROS_DOMAIN_ID"])
    except (KeyError, ValueError):
        return 1 + os.getpid() % 100


def loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def machine_facts(**extra) -> dict:
    """What every report's `meta` starts with; `extra` adds the benchmark's own facts."""
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "loadavg_1min_before": loadavg(), **extra}


def table(header: list[str], rows: list[list], align: str = "") -> str:
    """A fixed-width text table. `align` has one letter per column, 'l' or 'r' (default: first column
    left, the others right); cells are printed with str(), None as '-'."""
    cells = [[("-" if c is None else str(c)) for c in row] for row in rows]
    align = align or "l" + "r" * (len(header) - 1)
    widths = [max([len(h)] + [len(r[i]) for r in cells if i < len(r)]) for i, h in enumerate(header)]

    def line(values):
        out = []
        for i, value in enumerate(values):
            out.append(value.ljust(widths[i]) if align[i] == "l" else value.rjust(widths[i]))
        return "  ".join(out).rstrip()

    return "\n".join([line(header)] + [line(r) for r in cells])


def footer(meta: dict) -> str:
    """The last line of every report: how long, on what, and how busy the machine was before."""
    wall = meta.get("wall_s")
    took = f"{wall:.1f} s" if isinstance(wall, (int, float)) else "run"
    mode = f" ({meta['mode']})" if meta.get("mode") else ""
    return (f"{took} on {meta.get('cpus')} CPUs{mode}; 1-min load average before the run "
            f"{meta.get('loadavg_1min_before')} (well above 0: other processes shared the cores)")


def json_safe(value):
    """`value` as plain JSON types; NaN and infinities become None."""
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return clean(json.loads(json.dumps(value, default=float)))


def emit(result: dict, format_report, json_path: str | None, log=print) -> dict:
    """A benchmark's ending: `result` made JSON-safe, its text report on stdout, the JSON written to
    `json_path` (when given, logged); returns the JSON-safe result."""
    result = json_safe(result)
    print(format_report(result), flush=True)
    if json_path:
        log(f"wrote {write_json(result, json_path)}")
    return result


def write_json(result, path) -> str:
    """Write `result` (made JSON-safe) to `path`, creating its folder; returns the path written."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(json_safe(result), f, indent=2)
    return path

"""The latency benchmark's report: ratios against the floor, targets, the table and the plot."""

from __future__ import annotations

import math

from alfie_gr00t.tools import report

# Targets (docs/performance.md). Ratios are p50 over p50.
SERVER_RATIO_TARGET = 0.6
E2E_RATIO_TARGET = 0.8
COMMAND_PERIOD_P99_TARGET_MS = 12.0
THROUGHPUT_TARGET_RPS = 500.0


def _ratio(name, value, target, definition):
    return {"value": round(value, 3) if math.isfinite(value) else None, "target": target,
            "met": None if target is None or not math.isfinite(value) else bool(value <= target),
            "definition": definition}


def compute_ratios(rows: dict) -> dict:
    p = {name: row["p50"] for name, row in rows.items()}

    def div(a, b):
        return a / b if b > 0 else math.inf

    return {
        "server_vs_floor_ipc": _ratio(
            "server", div(p["server_rtt_ipc"], p["floor_jpeg_decode_x4"] + p["floor_zmq_echo_ipc"]),
            SERVER_RATIO_TARGET, "server_rtt_ipc / (floor_jpeg_decode_x4 + floor_zmq_echo_ipc), p50"),
        "e2e_vs_floor_ipc": _ratio(
            "e2e", div(p["e2e_ipc"], p["floor_jpeg_encode_x4"] + p["floor_jpeg_decode_x4"] + p["floor_zmq_echo_ipc"]),
            E2E_RATIO_TARGET, "e2e_ipc / (floor_jpeg_encode_x4 + floor_jpeg_decode_x4 + floor_zmq_echo_ipc), p50"),
        "jpeg_vs_gr00t_tcp": _ratio(
            "jpeg/gr00t", div(p["e2e_tcp"], p["gr00t_rtt_tcp"]), None,
            "e2e_tcp / gr00t_rtt_tcp, p50 (< 1: our JPEG path is faster than Isaac-GR00T npy)"),
        "raw_vs_jpeg_ipc": _ratio(
            "raw/jpeg", div(p["e2e_raw_ipc"], p["e2e_ipc"]), None,
            "e2e_raw_ipc / e2e_ipc, p50 (< 1: raw frames beat JPEG on-device)"),
        "raw_vs_gr00t_ipc": _ratio(
            "raw/gr00t", div(p["e2e_raw_ipc"], p["gr00t_rtt_ipc"]), None,
            "e2e_raw_ipc / gr00t_rtt_ipc, p50 (< 1: our raw path beats Isaac-GR00T npy)"),
    }


def compute_targets(ratios: dict, throughput: dict, command: dict) -> list[dict]:
    best = max(throughput.values(), key=lambda r: r["req_per_s"])
    period_p99 = command.get("p99")
    return [
        {"name": "server_rtt_ipc / (decode + echo) p50", "value": ratios["server_vs_floor_ipc"]["value"],
         "target": f"<= {SERVER_RATIO_TARGET}", "met": ratios["server_vs_floor_ipc"]["met"]},
        {"name": "e2e_ipc / (encode + decode + echo) p50", "value": ratios["e2e_vs_floor_ipc"]["value"],
         "target": f"<= {E2E_RATIO_TARGET}", "met": ratios["e2e_vs_floor_ipc"]["met"]},
        {"name": "command period p99 (ms, 100 Hz, inference in flight)", "value": period_p99,
         "target": f"<= {COMMAND_PERIOD_P99_TARGET_MS}",
         "met": None if period_p99 is None else bool(period_p99 <= COMMAND_PERIOD_P99_TARGET_MS)},
        {"name": f"mock server throughput, 4 JPEG cameras (req/s, best of {sorted(throughput)} clients)",
         "value": best["req_per_s"], "target": f">= {THROUGHPUT_TARGET_RPS:.0f}",
         "met": bool(best["req_per_s"] >= THROUGHPUT_TARGET_RPS)},
    ]


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def format_report(result: dict) -> str:
    ratios = result["ratios"]
    inline = {"server_rtt_ipc": f"ratio {ratios['server_vs_floor_ipc']['value']} (target <= {SERVER_RATIO_TARGET})",
              "e2e_ipc": f"ratio {ratios['e2e_vs_floor_ipc']['value']} (target <= {E2E_RATIO_TARGET})",
              "e2e_tcp": f"x{ratios['jpeg_vs_gr00t_tcp']['value']} of gr00t_rtt_tcp",
              "e2e_raw_ipc": f"x{ratios['raw_vs_jpeg_ipc']['value']} of e2e_ipc, "
                             f"x{ratios['raw_vs_gr00t_ipc']['value']} of gr00t_rtt_ipc"}
    lines = [f"{'row':<24}{'n':>6}{'p50':>9}{'p95':>9}{'p99':>9}{'mean':>9}  notes (times in ms)"]
    for name, row in result["rows"].items():
        note = row["notes"] + (f"; {inline[name]}" if name in inline else "")
        lines.append(f"{name:<24}{row['n']:>6}{_fmt(row['p50']):>9}{_fmt(row['p95']):>9}"
                     f"{_fmt(row['p99']):>9}{_fmt(row['mean']):>9}  {note}")
    lines += ["", "ratios (p50 over p50):"]
    for name, r in ratios.items():
        verdict = "" if r["met"] is None else ("  met" if r["met"] else "  NOT met")
        target = "" if r["target"] is None else f" (target <= {r['target']})"
        lines.append(f"  {name:<22}{_fmt(r['value']):>8}{target}{verdict}   {r['definition']}")
    lines += ["", "targets:"]
    for t in result["targets"]:
        verdict = "n/a" if t["met"] is None else ("met" if t["met"] else "NOT met")
        value = t["value"] if t["value"] is not None else "-"
        lines.append(f"  [{verdict:^7}] {t['name']}: {value} (target {t['target']})")
    cf = result["crossfade"]
    lines += ["", "crossfade (scheduler, fake clock, chunks disagreeing by 0.24 rad): largest tick-to-tick change "
              + ", ".join(f"crossfade_steps={k}: {v['max_step']}" for k, v in cf.items())]
    lines += ["", "stages (p50 / p95 ms):"]
    for side in ("server", "client"):
        for row, summary in result["stages"][side].items():
            parts = ", ".join(f"{stage} {s['p50']:.3f}/{s['p95']:.3f}" for stage, s in summary.items())
            lines.append(f"  {side:<6} {row:<22} {parts}")
    lines.append("\n" + report.footer(result["meta"]) + f"; {result['meta']['iterations']} iterations")
    return "\n".join(lines)


# -- plot -----------------------------------------------------------------------------------
def write_plot(result: dict, samples: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_lat, ax_traj) = plt.subplots(2, 1, figsize=(11, 10), gridspec_kw={"height_ratios": [3, 2]})
    names = list(samples)
    version = _mpl_version(matplotlib)
    options = {"tick_labels" if version >= (3, 9) else "labels": names}  # renamed in 3.9
    options.update({"orientation": "horizontal"} if version >= (3, 10) else {"vert": False})  # 3.10 API
    ax_lat.boxplot([samples[n] for n in names], whis=(1, 99), showfliers=False, **options)
    ax_lat.invert_yaxis()
    ax_lat.set_xscale("log")
    ax_lat.set_xlabel("latency, ms (log; box = p25..p75, whiskers = p1..p99)")
    ax_lat.set_title(f"alfie_gr00t latency distributions ({result['meta']['mode']} run, "
                     f"{result['meta']['cpus']} CPUs)")
    ax_lat.grid(True, axis="x", which="both", alpha=0.3)
    for cf in result["crossfade"].values():
        ax_traj.plot(cf["times"], cf["values"], label=f"crossfade_steps={cf['crossfade_steps']} "
                                                      f"(max step {cf['max_step']})")
    for t in next(iter(result["crossfade"].values()))["arrivals"]:
        ax_traj.axvline(t, color="grey", linestyle=":", linewidth=0.8)
    ax_traj.set_xlabel("time, s (dotted: chunk arrivals)")
    ax_traj.set_ylabel("joint 7 command")
    ax_traj.set_title("ActionScheduler output at 100 Hz, chunks disagreeing by ±0.12 at every boundary")
    ax_traj.legend(loc="upper right")
    ax_traj.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _mpl_version(matplotlib) -> tuple[int, int]:
    try:
        major, minor = (int(p) for p in matplotlib.__version__.split(".")[:2])
    except ValueError:
        return (0, 0)
    return major, minor

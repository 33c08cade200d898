"""The motion benchmark's report: PASS/MISS against the targets, the tables, and the series (PNG with
matplotlib, else CSV)."""

from __future__ import annotations

import csv
import os

import numpy as np

from alfie_gr00t.tools.motion_metrics import (DEAD_TIME_TARGET_PCT, IDEAL, PERIOD_P99_TARGET_MS, PHYSICS_NOTE,
                                              RATE_TARGET_HZ, RATE_TOLERANCE, RMS_TARGET_RAD, SEAM_RATIO_TARGET,
                                              TRAJECTORY_DIMS, Recording)


def write_series(name: str, rec: Recording, metrics: dict, out_dir: str) -> list[str]:
    """Commanded vs ideal around seams and queue depth over time: PNG with matplotlib, else CSV."""
    if not rec.chunks or not rec.commands:
        return []
    t0 = rec.chunks[0][0]
    t = np.asarray([c[0] for c in rec.commands])
    v = np.asarray([c[2] for c in rec.commands])
    ideal = IDEAL(t)
    kinds = [c[1] for c in rec.commands]
    arrivals = [c[0] - t0 for c in rec.chunks]
    ticks = np.asarray([(tk[0], tk[1]) for tk in rec.ticks]) if rec.ticks else np.zeros((0, 2))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        paths = [os.path.join(out_dir, f"motion_{name}_commands.csv"), os.path.join(out_dir, f"motion_{name}_queue.csv")]
        with open(paths[0], "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["t_s", "kind"] + [f"cmd_{d}" for d in TRAJECTORY_DIMS] + [f"ideal_{d}" for d in TRAJECTORY_DIMS])
            for i in range(len(t)):
                w.writerow([f"{t[i] - t0:.4f}", kinds[i]] + [f"{v[i, d]:.5f}" for d in TRAJECTORY_DIMS]
                           + [f"{ideal[i, d]:.5f}" for d in TRAJECTORY_DIMS])
        with open(paths[1], "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["t_s", "queue_steps", "chunk_queued"])
            queued = set(np.round(arrivals, 2))
            for tk in ticks:
                w.writerow([f"{tk[0] - t0:.4f}", f"{tk[1]:.3f}", int(round(tk[0] - t0, 2) in queued)])
        return paths
    dim = 8
    fig, (ax_c, ax_q) = plt.subplots(2, 1, figsize=(11, 7))
    mid = min(len(arrivals) - 1, max(1, len(arrivals) // 2))
    lo, hi = arrivals[mid] - 1.2, arrivals[mid] + 1.2
    sel = (t - t0 >= lo) & (t - t0 <= hi)
    ax_c.plot(t[sel] - t0, ideal[sel, dim], "k-", lw=1, label="ideal trajectory_at(t)")
    ax_c.plot(t[sel] - t0, v[sel, dim], ".", ms=3, label="commanded")
    for a in arrivals:
        if lo <= a <= hi:
            ax_c.axvline(a, color="grey", ls=":", lw=0.8)
    ax_c.set_title(f"{name}: joint {dim} around seams (dotted: chunk queued)")
    ax_c.set_xlabel("s after first chunk")
    ax_c.legend(loc="upper right")
    ax_q.plot(ticks[:, 0] - t0, ticks[:, 1], lw=0.8)
    ax_q.set_title("queue depth (steps left) at each 100 Hz tick")
    ax_q.set_xlabel("s after first chunk")
    fig.tight_layout()
    path = os.path.join(out_dir, f"motion_{name}.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [path]


def _verdict(ok) -> str:
    return "   " if ok is None else ("PASS" if ok else "MISS")


def _num(value, fmt="{:.2f}") -> str:
    return "-" if value is None else fmt.format(value)


def targets(row: dict) -> dict:
    """PASS/MISS per number of one fidelity row (None where the issue sets no target)."""
    rate = row.get("command_rate_hz")
    dead = row["dead_time"]["pct"]
    rms = row["error"]["rms"]
    jump, excess = row["seams"]["jump_ratio"], row["seams"]["excess_ratio"]
    p99 = row["period"]["p99_ms"]
    dry = row.get("dry_pct")
    return {"rate": None if rate is None else rate >= RATE_TARGET_HZ * (1 - RATE_TOLERANCE),
            "dead": None if dead is None else dead <= DEAD_TIME_TARGET_PCT,
            "dry": None if dry is None else dry <= DEAD_TIME_TARGET_PCT,
            "rms": (None if rms is None else rms <= RMS_TARGET_RAD) if row["delay_ms"] == 250.0 else None,
            "jump": None if jump is None else jump <= SEAM_RATIO_TARGET,
            "excess": None if excess is None else excess <= SEAM_RATIO_TARGET,
            "period": None if p99 is None else p99 <= PERIOD_P99_TARGET_MS}


def format_fidelity(rows: list[dict]) -> str:
    head = (f"{'latency':<14}{'rate Hz':>13}{'dead %':>13}{'dry %':>13}{'RMS rad':>14}{'max rad':>9}{'seam jump x':>15}"
            f"{'excess x':>13}{'age p50/p99 ms':>16}{'queue p50/min':>15}{'period p99':>16}{'chunks/min':>12}")
    lines = [head]
    for row in rows:
        label = f"{row['delay_ms']:.0f}+-{row['jitter_ms']:.0f}"
        if "skipped" in row:
            lines.append(f"{label:<14}skipped: {row['skipped']}")
            continue
        v = targets(row)
        s, a, q = row["seams"], row["age"], row["queue"]
        lines.append(
            f"{label:<14}{_num(row['command_rate_hz'], '{:.1f}'):>8} {_verdict(v['rate'])}"
            f"{_num(row['dead_time']['pct'], '{:.2f}'):>8} {_verdict(v['dead'])}"
            f"{_num(row['dry_pct'], '{:.2f}'):>8} {_verdict(v['dry'])}"
            f"{_num(row['error']['rms'], '{:.4f}'):>9} {_verdict(v['rms'])}{_num(row['error']['max'], '{:.3f}'):>9}"
            f"{_num(s['jump_ratio']):>10} {_verdict(v['jump'])}{_num(s['excess_ratio']):>8} {_verdict(v['excess'])}"
            f"{_num(a['p50_ms'], '{:.0f}') + '/' + _num(a['p99_ms'], '{:.0f}'):>16}"
            f"{_num(q['p50'], '{:.1f}') + '/' + _num(q['min'], '{:.1f}'):>15}"
            f"{_num(row['period']['p99_ms'], '{:.1f}'):>11} {_verdict(v['period'])}"
            f"{_num(row.get('chunks_per_min'), '{:.1f}'):>12}")
    lines.append(
        f"targets: rate >= {RATE_TARGET_HZ * (1 - RATE_TOLERANCE):.0f} Hz; dead time {DEAD_TIME_TARGET_PCT:.0f} % of "
        f"10 ms slots after the first chunk; RMS <= {RMS_TARGET_RAD} rad at 250 ms; seam jump <= {SEAM_RATIO_TARGET}x "
        f"the median in-chunk tick change; command period p99 <= {PERIOD_P99_TARGET_MS:.0f} ms.")
    lines.append("dead % = 10 ms slots with no policy command or with a hold (a tick more than 5 ms late also "
                 "leaves its slot empty); dry % = 100 Hz ticks at which the scheduler had no valid step (queue dry).")
    lines.append("seam jump x = largest tick change at a seam / median in-chunk change (the issue's measure; the "
                 "trajectory's own speed varies ~1.6x between median and peak, so a perfect seam can read above 1.5); "
                 "excess x = largest |d cmd - d ideal| at a seam / the same median (what the seam itself added).")
    lines.append("errors and seams are measured from 1.5 s after the first chunk (the gate first ramps from the "
                 "robot's pose to the trajectory at the joint velocity limit).")
    for row in rows:
        if "skipped" not in row and row["dead_time"]["pct"]:
            st = row["status"]
            lines.append(f"  {row['name']}: {row['dead_time']['dead_slots']} dead slots of {row['dead_time']['slots']} "
                         f"({row['dead_time']['hold_slots']} with a hold, {row['dry_ticks']} dry ticks); latency p50/p95 {st['latency_p50_ms']}/"
                         f"{st['latency_p95_ms']} ms, budget {st['latency_budget']}, holds {st['holds_published']}, "
                         f"late replies {st['requests_late']}")
    if any(r.get("delay_ms", 0) >= 500 for r in rows):
        lines.append("note: " + PHYSICS_NOTE)
    return "\n".join(lines)


def format_seams(rows: list[dict], disagree: float) -> str:
    lines = [f"seam strategies at 250+-50 ms, chunks disagreeing by +-{disagree} rad (random per chunk and dim):",
             f"  {'crossfade':>9} {'prefix':>6} {'RMS rad':>9} {'max rad':>8} {'max seam change':>16} "
             f"{'excess':>8} {'jump x':>7} {'excess x':>9} {'dead %':>7} {'dry %':>6}"]
    for row in rows:
        if "skipped" in row:
            lines.append(f"  {row['name']}: skipped: {row['skipped']}")
            continue
        s = row["seams"]
        lines.append(f"  {row['client']['crossfade_steps']:>9} {str(row['client']['send_action_prefix']):>6} "
                     f"{_num(row['error']['rms'], '{:.4f}'):>9} {_num(row['error']['max'], '{:.3f}'):>8} "
                     f"{_num(s['max_seam_change'], '{:.4f}'):>16} {_num(s['max_seam_excess'], '{:.4f}'):>8} "
                     f"{_num(s['jump_ratio']):>7} {_num(s['excess_ratio']):>9} {_num(row['dead_time']['pct']):>7} "
                     f"{_num(row['dry_pct']):>6}")
    ok = [r for r in rows if "skipped" not in r and r["seams"]["max_seam_excess"] is not None]
    if ok:
        best = min(ok, key=lambda r: (r["seams"]["max_seam_excess"], r["error"]["rms"]))
        lines.append(f"  smallest seam excess: crossfade_steps={best['client']['crossfade_steps']}, "
                     f"send_action_prefix={best['client']['send_action_prefix']} (RMS {best['error']['rms']:.4f} rad)")
    return "\n".join(lines)


def format_load(load: dict, cpu: dict) -> str:
    lines = ["100 Hz loop under load (4 x 640x480 rgb8 at 30 Hz, all at once; 1 ms mock, a request at every "
             "chance, target_fps 15):"]
    for label, res in (("all nodes in one process", load), ("server + sim robot in processes of their own", cpu)):
        if not res or "skipped" in res:
            lines.append(f"  {label}: skipped: {(res or {}).get('skipped', 'not run')}")
            continue
        p = res["period"]
        ok = None if p["p99_ms"] is None else p["p99_ms"] <= PERIOD_P99_TARGET_MS
        lines.append(f"  {label}: period p50 {_num(p['p50_ms'])} ms, p99 {_num(p['p99_ms'])} ms "
                     f"[{_verdict(ok)} <= {PERIOD_P99_TARGET_MS:.0f}], max {_num(p['max_ms'])} ms, "
                     f"{res.get('requests_per_s', '-')} requests/s")
    if cpu and "skipped" not in cpu:
        lines.append(f"CPU (% of one core, {cpu['seconds']} s at {cpu['requests_per_s']} requests/s): client process "
                     f"{cpu['client_process_pct']} %, server process {cpu['server_process_pct']} %, sim robot process "
                     f"{cpu['sim_robot_process_pct']} %")
    return "\n".join(lines)


def format_codecs(codecs: dict) -> str:
    if not codecs:
        return "codecs: not run"
    lines = [f"JPEG codecs ({codecs['note']}; OpenCV {codecs['opencv']}, simplejpeg "
             f"{codecs['simplejpeg'] or 'not installed'}), ms p50 (p10..p90):"]
    for name, row in codecs["rows"].items():
        lines.append(f"  {name:<26}{row['p50_ms']:>7.3f}  ({row['p10_ms']:.3f}..{row['p90_ms']:.3f})")
    from alfie_gr00t.wire import images

    lines.append(f"  alfie_gr00t.wire.images uses: {getattr(images, 'JPEG_CODEC', 'cv2')}")
    return "\n".join(lines)


def format_debug(rows: dict) -> str:
    lines = ["100 Hz loop with the debug topics (50 ms mock, 4 x 640x480 cameras at 30 Hz):",
             "  debug          period p50   p99      max    rate Hz  debug msgs  recorded (dropped)"]
    for name, label in (("off", "off"), ("on", "on+recording")):
        row = rows.get(name) or {"skipped": "not run"}
        if "skipped" in row:
            lines.append(f"  {label:<14} skipped: {row['skipped']}")
            continue
        p, rec = row["period"], row.get("recording") or {}
        recorded = f"{rec.get('written', 0)} ({rec.get('dropped', 0)})" if rec else "-"
        lines.append(f"  {label:<14} {_num(p['p50_ms']):>9} {_num(p['p99_ms']):>6} {_num(p['max_ms']):>8} "
                     f"{_num(row.get('command_rate_hz')):>9} {row['debug_messages_received']:>11}  {recorded}")
    return "\n".join(lines)

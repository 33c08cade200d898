"""Real-time chunking benchmark: the client replanning every 4 steps and splicing, against today's crossfade.

    python -m alfie_gr00t.tools.bench_rtc [--quick] [--policies double,mock] [--latencies 50,250,550]
                                          [--seconds S] [--json FILE]

Each row runs the real client and sim robot nodes (tools/rig.py, default client parameters; the
four cameras at the model's 320x280, 15 Hz, so that the rows measure the schedule rather than the
JPEG path on shared cores: bench_motion measures that) against our server (`PolicyService` on a thread of this process, over IPC), at one
policy latency (50+-10, 250+-50, 550+-100 ms: the engine's reply is held back until that much time
has passed since it started), in two modes:

- `rtc`: `replan_every_steps: 4`, the server advertising real-time chunking: a request every 4
  executed steps, the new chunk spliced at its frozen steps;
- `crossfade`: `replan_every_steps: 0` against the same server: today's client (a request when the
  queue's time left reaches the expected latency + margin, at least every 8 steps; crossfade).

Policies:

- `double`: the policy double that really denoises (tools/policy_double.py: a small flow-matching
  DiT, trained on smooth motions, exported to ONNX and swapped in by the production engine, with
  real-time chunking inside its denoising loop, engines/rtc.py); its samples disagree from one
  request to the next, as a real policy's do. Its action statistics are wider than Alfie's limits,
  so its rows run with `chunk_reject_margin: 1.0` (the gate clamps instead of the client refusing);
- `mock`: the `trajectory` mock (it freezes the prefix and blends into its trajectory), each chunk
  offset by a random +-`--disagree` rad so that seams have something to hide.

Columns (age and dead time on the commands the client's MotionGate published; seams on the schedule's
steps the gate was handed, so that the gate's catch-up after a tick stalled on shared cores is not
taken for a seam, from 1.5 s after the first chunk):

- observation age p50/p95: for each policy command, its time minus the capture time of the
  observation behind the chunk in effect (the newest one queued at or before it);
- seam jump: the largest tick change in the window after a chunk arrived while another one played
  (`crossfade_steps` + 1 steps, cut at the next arrival; a chunk that ends a hold is a restart,
  counted in dead time), over the median tick change of the whole row (the trajectory's own step);
- seam excess: the largest part of such a tick's change that neither the new chunk nor the one
  before it makes on its own (the smaller of |d command - d chunk| for the two, each alone on the
  scheduler's time line), over the same median: the motion the switch added that no chunk planned
  (a crossfade of chunks that disagree adds a share of their difference every tick; a splice at a
  frozen step adds only the change of speed from one chunk to the next);
- dead time: the share of 10 ms slots after the first chunk with no policy command or with a hold.

Targets (printed with PASS/MISS, nothing asserted): observation age p50 <= latency + 100 ms
(<= 150 ms at 50 ms); seam excess <= 0.1 x the trajectory's own step; dead time with RTC no worse
than with the crossfade (0.5 percentage points of slack for late ticks on shared cores).
DDS stays on loopback, in a domain of the benchmark's own; the IPC socket lives in a fresh folder.
"""

from __future__ import annotations

import os

from alfie_gr00t import discovery  # noqa: E402

discovery.confine_to_localhost()
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + (os.getpid() + 70) % 100))

import argparse  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

import numpy as np  # noqa: E402

from alfie_gr00t import layout  # noqa: E402
from alfie_gr00t.engines import mock as mock_engine  # noqa: E402
from alfie_gr00t.tools import report  # noqa: E402
from alfie_gr00t.tools.motion_metrics import dead_time  # noqa: E402
from alfie_gr00t.tools.rig import NodeRig  # noqa: E402

STEP_HZ = 15.0
TICK_S = 0.01
WINDOW_STEPS = 4  # a seam's window: crossfade_steps (3) + 1 steps, cut at the next arrival
SETTLE_S = 1.5  # seams count from this long after the first chunk (the gate first ramps from the robot's pose)
JOINTS = list(range(layout.ACTION_DIM))[layout.JOINT_DIMS]
LATENCIES = {"50": (50.0, 10.0), "250": (250.0, 50.0), "550": (550.0, 100.0)}
CROSSFADE = ("crossfade", {"replan_every_steps": 0.0})
ROBOT = {"camera_width": 320, "camera_height": 280, "camera_rate_hz": 15.0}
# The double's action statistics span +-0.5 m/s and +-0.5 rad around the state, wider than Alfie's limits: its
# chunks are clamped by the gate rather than refused (refusals in a row would end the row in ERROR).
DOUBLE_CLIENT = {"chunk_reject_margin": 1.0}


def modes(replan_every: list[float]) -> list[tuple[str, dict]]:
    """`rtc` (every 4 steps, the default) or `rtc/N` for each cadence, then today's crossfade."""
    named = [("rtc" if n == 4 else f"rtc/{n:g}", {"replan_every_steps": float(n)}) for n in replan_every]
    return named + [CROSSFADE]
EXCESS_TARGET = 0.1
DEAD_SLACK_PCT = 0.5


# -- the server: a policy held back to a chosen latency -----------------------------------------------
class HeldBack:
    """Wraps an engine: each reply leaves `delay_s` +- uniform `jitter_s` after the call began (the
    engine's own time included), so one engine serves every latency row. Everything else passes through."""

    def __init__(self, engine, seed: int = 0):
        self._engine = engine
        self._random = random.Random(seed)
        self.delay_s = self.jitter_s = 0.0

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def infer(self, batch):
        started = time.perf_counter()
        target = self.delay_s + (self._random.uniform(-self.jitter_s, self.jitter_s) if self.jitter_s else 0.0)
        out = self._engine.infer(batch)
        left = target - (time.perf_counter() - started)
        if left > 0:
            time.sleep(left)
        return out


def disagreeing(trajectory, amplitude: float, seed: int = 0, dims=None):
    """`trajectory` plus a random offset per call (per chunk) on `dims` (default: the moving joints of
    the `trajectory` mock): consecutive chunks disagree as a real policy's samples do."""
    rng = np.random.default_rng(seed)
    dims = list(dims if dims is not None else mock_engine.TRAJECTORY_DIMS)

    def offset_trajectory(times, dim: int = layout.ACTION_DIM):
        out = trajectory(times, dim)
        out[:, dims] += rng.uniform(-amplitude, amplitude, len(dims))
        return out

    return offset_trajectory


def make_engine(policy: str, workdir: str, disagree: float = 0.0, log=print):
    """The engine a policy row serves: the denoising double with its DiT in ONNX Runtime, or the mock
    (its chunks offset by +-`disagree` rad each)."""
    from alfie_gr00t.engines.base import EngineConfig

    if policy == "double":
        from alfie_gr00t.tools import policy_double

        log("policy double: training the flow-matching action head and exporting its DiT to ONNX (about a minute)")
        return policy_double.make_engine(dit="onnxruntime", workdir=workdir)
    engine = mock_engine.MockEngine(EngineConfig(mock_policy="trajectory"))
    if disagree > 0:
        engine.trajectory = disagreeing(engine.trajectory, disagree)
    return engine


def advertises_rtc(address: str) -> bool:
    """Whether the server's ping reply advertises real-time chunking, asked as the client asks it."""
    from alfie_gr00t.client import rtc
    from alfie_gr00t.wire import gr00t as gr00t_protocol
    from alfie_gr00t.wire.transport import ReqClient

    client = ReqClient(address, 5000)
    try:
        return rtc.advertised(gr00t_protocol.unpack(bytes(client.request(gr00t_protocol.pack({"endpoint": "ping"})))))
    finally:
        client.close()


# -- recording inside the client node -------------------------------------------------------------
@dataclass
class Recording:
    on: bool = False
    commands: list = field(default_factory=list)  # (t, kind, vector) from the gate's output sink
    targets: list = field(default_factory=list)  # (t, vector): the scheduler's step handed to the gate
    chunks: list = field(default_factory=list)  # (queued t, capture t, kept steps, clock t of kept[0], played into)


def instrument(client, rec: Recording) -> None:
    """Watch the gate's commands and the scheduler's chunks and commands (their public observers): each
    queued chunk is kept with the clock time at which its first kept step plays, and each command with
    the time the scheduler computed it for (a tick's publishing time jitters on shared cores)."""
    now, gate, scheduler = client.now, client.gate, client.scheduler
    evaluated = {"t": None}

    def recorded_command(t, out):
        evaluated["t"] = t
        if rec.on and out is not None:
            rec.targets.append((t, out.copy()))

    def recorded_output(cmd):
        if rec.on:
            t = evaluated["t"] if cmd.kind.value == "policy" and evaluated["t"] is not None else now()
            rec.commands.append((t, cmd.kind.value, cmd.vector.copy()))

    def recorded_chunk(t, actions, observation_time, dropped, was_playing):
        # was_playing: a switch between chunks, not a restart after a hold
        if rec.on and dropped < len(actions):
            kept = np.asarray(actions, dtype=np.float64)[dropped:].copy()
            rec.chunks.append((t, float(observation_time), kept, scheduler.newest_start(), was_playing))

    gate.watch(recorded_output)
    scheduler.watch(on_chunk=recorded_chunk, on_command=recorded_command)


# -- metrics (pure) ----------------------------------------------------------------------------------
def observation_age(times, chunks) -> dict:
    """Per command time: minus the capture of the newest chunk queued at or before it. ms p50/p95."""
    t = np.asarray(times, dtype=np.float64)
    ordered = sorted((c[0], c[1]) for c in chunks)
    if t.size == 0 or not ordered:
        return {"p50_ms": None, "p95_ms": None, "n": 0}
    queued = np.asarray([c[0] for c in ordered])
    captured = np.asarray([c[1] for c in ordered])
    index = np.searchsorted(queued, t, side="right") - 1
    ages = (t[index >= 0] - captured[index[index >= 0]]) * 1000.0
    if ages.size == 0:
        return {"p50_ms": None, "p95_ms": None, "n": 0}
    p50, p95 = np.percentile(ages, [50, 95])
    return {"p50_ms": round(float(p50), 1), "p95_ms": round(float(p95), 1), "n": int(ages.size)}


def chunk_alone(kept: np.ndarray, start: float, times: np.ndarray) -> np.ndarray:
    """A chunk's own schedule at `times`: linear between steps (as the scheduler plays it), held after the
    last; before the first kept step (the tick before it arrived) continued along its first step."""
    position = np.minimum((np.asarray(times) - start) * STEP_HZ, len(kept) - 1)
    steps = np.arange(len(kept))
    inside = np.stack([np.interp(position, steps, kept[:, j]) for j in range(kept.shape[1])], axis=1)
    if len(kept) < 2:
        return inside
    before = kept[0] + np.minimum(position, 0.0)[:, None] * (kept[1] - kept[0])
    return np.where((position < 0.0)[:, None], before, inside)


def seam_metrics(times, vectors, chunks, dims=JOINTS) -> dict:
    """Seam jump and excess (see the module docstring) over the windows after each chunk's arrival.
    `chunks`: (queued t, capture t, kept steps, clock t of kept[0], whether another chunk was playing)."""
    t = np.asarray(times, dtype=np.float64)
    empty = {"seams": 0, "own_step": None, "jump_ratio": None, "excess_ratio": None, "max_excess": None}
    if t.size < 3:
        return empty
    v = np.asarray(vectors, dtype=np.float64)[:, dims]
    change = np.diff(v, axis=0)
    size = np.abs(change).max(axis=1)
    consecutive = np.diff(t) < 1.5 * TICK_S  # policy commands on adjacent ticks (not across a hold)
    if not consecutive.any():
        return empty
    own = float(np.median(size[consecutive]))
    ordered = sorted(chunks, key=lambda c: c[0])
    jumps, excesses = [], []
    for index, (queued, _, kept, start, playing) in enumerate(ordered[1:], start=1):
        after = ordered[index + 1][0] if index + 1 < len(ordered) else np.inf
        end = min(queued + WINDOW_STEPS / STEP_HZ, after)
        hit = np.flatnonzero((t[1:] > queued) & (t[1:] <= end) & consecutive)
        _, _, old_kept, old_start, _ = ordered[index - 1]
        if hit.size == 0 or start is None or old_start is None or not playing:
            continue
        pairs = np.concatenate([t[hit], t[hit + 1]])
        unplanned = []
        for steps, first in ((kept, start), (old_kept, old_start)):
            alone = chunk_alone(steps[:, dims], first, pairs)
            unplanned.append(np.abs(change[hit] - (alone[hit.size:] - alone[:hit.size])).max(axis=1))
        jumps.append(float(size[hit].max()))
        excesses.append(float(np.minimum(*unplanned).max()))
    if not jumps:
        return {**empty, "own_step": round(own, 6)}
    ratio = (lambda x: round(x / own, 3) if own > 0 else None)
    return {"seams": len(jumps), "own_step": round(own, 6), "jump_ratio": ratio(max(jumps)),
            "excess_ratio": ratio(max(excesses)), "max_excess": round(max(excesses), 6)}


def age_target_ms(latency_ms: float) -> float:
    return 150.0 if latency_ms <= 50 else latency_ms + 100.0


# -- one row -------------------------------------------------------------------------------------------
def run_row(held: HeldBack, ipc_path: str, policy: str, latency: str, mode: str, client: dict, seconds: float,
            domain_id: int, log=print) -> dict:
    delay_ms, jitter_ms = LATENCIES[latency]
    held.delay_s, held.jitter_s = delay_ms / 1000.0, jitter_ms / 1000.0
    rec = Recording()
    row = {"policy": policy, "latency_ms": delay_ms, "jitter_ms": jitter_ms, "mode": mode, "client": client}
    with NodeRig(domain_id, ipc_path, client=client, robot=ROBOT, with_server=False, name="groot_bench_rtc") as rig:
        node = rig.client
        instrument(node, rec)
        rig.spin()
        if not rig.activate(timeout_s=20.0 + 4 * delay_ms / 1000.0):
            return {**row, "skipped": f"client not ACTIVE ({node.machine.state.value}: {node.worker.last_error!r})"}
        rec.on = True
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(0.05)
        rec.on = False
        stopped = node.now()
        status = node.status()
    return {**row, **summarize(rec, stopped, seconds), "rtc": status.get("rtc"),
            "latency_p50_ms": status.get("latency_p50_ms"), "requests_ok": status.get("requests_ok"),
            "requests_failed": status.get("requests_failed"), "last_error": status.get("last_error"),
            "latency_budget": status.get("latency_budget")}


def summarize(rec: Recording, stopped: float, seconds: float) -> dict:
    if not rec.chunks:
        return {"skipped": "no chunk arrived while recording"}
    first = rec.chunks[0][0]
    commands = [c for c in rec.commands if first <= c[0] <= stopped]
    policy = [c for c in commands if c[1] == "policy"]
    holds = [c[0] for c in commands if c[1] in ("hold", "stop")]
    policy_t = [c[0] for c in policy]
    settled = [c for c in rec.targets if first + SETTLE_S <= c[0] <= stopped]
    seams = seam_metrics([c[0] for c in settled], [c[1] for c in settled] or np.zeros((0, layout.ACTION_DIM)),
                         [c for c in rec.chunks if c[0] >= first + SETTLE_S])
    return {"seconds": seconds, "chunks": len(rec.chunks),
            "chunks_per_s": round(len(rec.chunks) / max(stopped - first, 1e-9), 2),
            "age": observation_age(policy_t, rec.chunks), "seam": seams,
            "dead_time": dead_time(policy_t, holds, first, stopped)}


# -- the run and its report ------------------------------------------------------------------------------
def run(args, log) -> dict:
    from alfie_gr00t.server.config import ServerConfig
    from alfie_gr00t.server.service import BackgroundServer, PolicyService

    seconds = args.seconds or (4.0 if args.quick else 12.0)
    latencies = [x.strip().removesuffix("ms") for x in args.latencies.split(",")]
    for name in latencies:
        if name not in LATENCIES:
            raise SystemExit(f"--latencies: {name!r} is not one of {', '.join(LATENCIES)}")
    directory = tempfile.mkdtemp(prefix="agrtc_", dir="/tmp")
    started = time.perf_counter()
    result = {"meta": report.machine_facts(mode="quick" if args.quick else "default", seconds_per_row=seconds,
                                           disagree_rad=args.disagree, ros_domain_id=args.domain_id), "rows": []}
    try:
        for policy in args.policies.split(","):
            ipc_path = os.path.join(directory, f"{policy}.sock")
            held = HeldBack(make_engine(policy, directory, args.disagree, log))
            service = PolicyService(held, ServerConfig(ipc_path=ipc_path, device="cpu", mock_mode=policy == "mock",
                                                       mock_policy="trajectory", warmup_runs=0))
            server = BackgroundServer(service).start()
            try:
                advertised = advertises_rtc(service.config.address)
                result["meta"][f"{policy}_server_advertises_rtc"] = advertised
                if not advertised:
                    log(f"{policy}: the server does not advertise real-time chunking: the rtc rows replan as today")
                for latency in latencies:
                    for mode, client in modes(args.replan_every):
                        log(f"{policy} {latency} ms {mode}: {seconds:.0f} s")
                        client = {**client, **(DOUBLE_CLIENT if policy == "double" else {})}
                        result["rows"].append(run_row(held, ipc_path, policy, latency, mode, client, seconds,
                                                      args.domain_id, log))
            finally:
                server.stop()
                service.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    result["meta"]["wall_s"] = round(time.perf_counter() - started, 1)
    result["targets"] = targets(result["rows"])
    return result


def targets(rows: list[dict]) -> list[dict]:
    """PASS/MISS per rtc row: age p50, seam excess, dead time against the crossfade row beside it."""
    out = []
    for row in rows:
        if not str(row.get("mode")).startswith("rtc") or "skipped" in row:
            continue
        other = next((r for r in rows if r.get("mode") == "crossfade" and r["policy"] == row["policy"]
                      and r["latency_ms"] == row["latency_ms"] and "skipped" not in r), None)
        age, excess = row["age"]["p50_ms"], row["seam"]["excess_ratio"]
        dead, base = row["dead_time"]["pct"], (other or {}).get("dead_time", {}).get("pct")
        out.append({"policy": row["policy"], "latency_ms": row["latency_ms"], "mode": row["mode"],
                    "age_p50": _verdict(age is not None and age <= age_target_ms(row["latency_ms"])),
                    "seam_excess": _verdict(excess is not None and excess <= EXCESS_TARGET),
                    "dead_time": _verdict(None if dead is None or base is None else dead <= base + DEAD_SLACK_PCT)})
    return out


def _verdict(ok) -> str:
    return "-" if ok is None else ("PASS" if ok else "MISS")


def _num(value, fmt="{:.2f}") -> str:
    return "-" if value is None else fmt.format(value)


def format_report(result: dict) -> str:
    header = ["policy", "latency", "mode", "measured p50", "age p50/p95 ms", "seam jump", "seam excess", "dead time",
              "chunks/s", "splices", "fallbacks", "late"]
    lines = []
    for row in result["rows"]:
        name = [row["policy"], f"{row['latency_ms']:.0f}+-{row['jitter_ms']:.0f} ms", row["mode"]]
        if "skipped" in row:
            lines.append(name + [f"skipped: {row['skipped']}"] + [None] * 8)
            continue
        a, s, rtc = row["age"], row["seam"], row.get("rtc") or {}
        lines.append(name + [_num(row.get("latency_p50_ms"), "{:.0f} ms"),
                             f"{_num(a['p50_ms'], '{:.0f}')} / {_num(a['p95_ms'], '{:.0f}')}",
                             _num(s["jump_ratio"]) + "x", _num(s["excess_ratio"], "{:.3f}") + "x",
                             _num(row["dead_time"]["pct"]) + " %", _num(row["chunks_per_s"]),
                             rtc.get("splices"), rtc.get("fallback_crossfades"), rtc.get("late_crossfades")])
    parts = ["real-time chunking vs crossfade (real client + sim robot nodes, our server in this process):",
             report.table(header, lines, "lllrrrrrrrrr"),
             "measured p50: capture -> chunk queued, as the client measures it (the policy's latency plus "
             "everything around it on this machine)", "",
             "targets (rtc rows): age p50 <= latency + 100 ms (<= 150 ms at 50 ms); seam excess <= "
             f"{EXCESS_TARGET}x the own step; dead time <= crossfade + {DEAD_SLACK_PCT} pp",
             report.table(["policy", "latency", "mode", "age p50", "seam excess", "dead time"],
                          [[t["policy"], f"{t['latency_ms']:.0f} ms", t["mode"], t["age_p50"], t["seam_excess"],
                            t["dead_time"]]
                           for t in result["targets"]])]
    parts.append("\n" + report.footer(result["meta"]))
    return "\n".join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="groot_bench_rtc", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 s per row, the mock only, 250 ms only")
    parser.add_argument("--policies", help="comma-separated: double (the denoising double), mock (default: both; "
                                           "--quick: mock)")
    parser.add_argument("--latencies", help="comma-separated subset of 50,250,550 (default: all; --quick: 250)")
    parser.add_argument("--seconds", type=float, help="seconds recorded per row (default 12; --quick 4)")
    parser.add_argument("--replan-every", default="4",
                        help="comma-separated replan_every_steps of the rtc rows (default 4; e.g. 4,2)")
    parser.add_argument("--disagree", type=float, default=0.03, help="the mock's per-chunk offset, rad")
    parser.add_argument("--json", metavar="FILE", default=os.path.join("bench_out", "rtc.json"))
    parser.add_argument("--domain-id", type=int, default=report.env_domain_id(), help="ROS domain (default $ROS_DOMAIN_ID)")
    args = parser.parse_args(argv)
    args.policies = args.policies or ("mock" if args.quick else "double,mock")
    args.latencies = args.latencies or ("250" if args.quick else "50,250,550")
    if not set(args.policies.split(",")) <= {"double", "mock"}:
        parser.error("--policies takes double and/or mock")
    try:
        args.replan_every = [float(x) for x in args.replan_every.split(",")]
    except ValueError:
        parser.error("--replan-every takes numbers, e.g. 4,2")
    if not all(0 < n <= layout.ACTION_HORIZON for n in args.replan_every):
        parser.error(f"--replan-every values must be in (0, {layout.ACTION_HORIZON}]")
    if args.seconds is not None and not 0.5 <= args.seconds <= 600:
        parser.error("--seconds must be in [0.5, 600]")
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    report.emit(run(args, log), format_report, args.json, log)
    return 0


if __name__ == "__main__":
    sys.exit(main())

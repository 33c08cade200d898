"""Motion-fidelity benchmark: the real nodes, the `trajectory` mock, latencies from 1 to 550 ms.

    python -m alfie_gr00t.tools.bench_motion [--quick] [--json FILE] [--out-dir DIR] [--latencies 1,250]

The `trajectory` mock answers step i of a chunk with `trajectory_at(observation time + i / 15)`,
a smooth known function of time, and the client stamps each request with its capture time on
its own clock. So the ideal command at publish time t is `trajectory_at(t)`, and everything the
pipeline does wrong (late chunks, holds, seams, misaligned steps) shows up as tracking error.

Parts, each on this machine:

1. fidelity: GrootServer (mock, `mock_delay_ms` +- `mock_jitter_ms`) + GrootClient with default
   parameters + SimRobot (four 640x480 cameras at 30 Hz), one process, one executor per node,
   at 1, 50+-10, 250+-50 and 550+-100 ms: command rate, dead time, RMS/max tracking error,
   seam jumps, observation age at execution, queue depth;
2. seams: the 250 ms row with `crossfade_steps` 0/3/6 x `send_action_prefix` true/false, with
   chunks that disagree (each chunk offset by a random +-`--disagree` rad, as consecutive calls
   of a real policy do; the prefix a request carries is still honoured exactly);
3. load: the 100 Hz loop while the four cameras arrive at 30 Hz and inference runs at full rate
   (1 ms mock, a request at every chance, `target_fps` 15), all in one process;
4. CPU: the same load with server and sim robot as processes of their own: CPU % of each;
5. codecs: JPEG encode/decode of the four 320x280 frames at q90, OpenCV vs simplejpeg, 1 and 2
   threads, interleaved.

Targets (docs/performance.md) are printed with PASS/MISS beside each number; nothing here asserts them.
The gate's listener (`MotionGate.watch`) records every command the robot was sent; the scheduler's
the scheduler's observers (`ActionScheduler.watch`) see chunk arrivals and the queue at
each tick: the nodes run unchanged. The measures are in motion_metrics.py, the report in
motion_report.py. Nothing leaves loopback: `main()` confines DDS discovery to localhost, in a
domain of the benchmark's own; IPC sockets live under a fresh /tmp folder.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import alfie_gr00t
from alfie_gr00t import discovery, layout
from alfie_gr00t.tools import report
from alfie_gr00t.tools.motion_metrics import HORIZON, IDEAL, TRAJECTORY_DIMS, Recording, RowSpec, summarize_row
from alfie_gr00t.tools.motion_report import (format_codecs, format_debug, format_fidelity, format_load, format_seams,
                                             write_series)
from alfie_gr00t.tools.rig import NodeRig

# (name, mock_delay_ms, mock_jitter_ms)
LATENCIES = (("1ms", 1.0, 0.0), ("50ms", 50.0, 10.0), ("250ms", 250.0, 50.0), ("550ms", 550.0, 100.0),
             ("2500ms", 2500.0, 200.0))  # a policy slower than its 1.07 s chunk: runs synchronously
SEAM_VARIANTS = tuple((cf, prefix) for prefix in (True, False) for cf in (0, 3, 6))


# -- recording inside the real nodes --------------------------------------------------------------
def instrument(client, rec: Recording) -> None:
    """Listen on the gate's output and the scheduler's chunks and commands (their public observers)."""
    now = client.now
    scheduler = client.scheduler

    def recorded_output(cmd):
        if rec.on:
            rec.commands.append((now(), cmd.kind.value, cmd.vector.copy()))

    def recorded_chunk(t, actions, observation_time, dropped, was_playing):
        if dropped < len(actions):
            rec.chunks.append((now(), float(observation_time), int(dropped)))

    def recorded_command(t, out):
        if rec.on:
            rec.ticks.append((t, scheduler.remaining_steps(t), out is None))

    client.gate.watch(recorded_output)
    scheduler.watch(on_chunk=recorded_chunk, on_command=recorded_command)


class _PeriodRecorder:
    """Stands in for the client's command-period RollingStats: keeps every sample while recording."""

    def __init__(self, rec: Recording, inner, clock):
        self._rec, self._inner, self._clock = rec, inner, clock

    def add(self, value_ms: float) -> None:
        self._inner.add(value_ms)
        if self._rec.on:
            self._rec.periods.append((self._clock(), value_ms))

    def snapshot(self):
        return self._inner.snapshot()


class _Disagreeing:
    """trajectory_at plus a random offset per call (per chunk) on the trajectory dims."""

    def __init__(self, amplitude: float, seed: int = 0):
        self._amplitude = amplitude
        self._rng = np.random.default_rng(seed)

    def __call__(self, times, dim: int = layout.ACTION_DIM):
        out = IDEAL(times, dim)
        dims = [d for d in TRAJECTORY_DIMS if d < dim]
        out[:, dims] += self._rng.uniform(-self._amplitude, self._amplitude, len(dims))
        return out


# the client status fields each row keeps
STATUS_KEYS = ("state", "requests_ok", "requests_failed", "requests_late", "latency_p50_ms", "latency_p95_ms",
               "expected_latency_ms", "request_timeout_ms", "latency_budget", "holds_published", "hold_commands",
               "last_hold_reason", "command_period_p50_ms", "command_period_p99_ms", "safety_limited_ticks")


def _listen(rig: NodeRig, rec: Recording) -> None:
    """What a robot driver and an operator see: commands, twists, the status (the CPU part leaves them out:
    they would be charged to the client process)."""
    from geometry_msgs.msg import Twist
    from sensor_msgs.msg import JointState
    from std_msgs.msg import String

    def on_status(msg):
        try:
            rec.status = json.loads(msg.data)
        except ValueError:
            pass

    rig.subscribe(JointState, "/alfie/groot_client/joint_commands",
                  lambda msg: rec.on and rec.received.append(rig.stamp()), 100)
    rig.subscribe(Twist, "/alfie/groot_client/cmd_vel", lambda msg: rec.on and rec.twists.append(rig.stamp()), 100)
    rig.subscribe(String, "/alfie/groot_client/status", on_status)


def _record(rig: NodeRig, spec: RowSpec, rec: Recording, on_active) -> dict:
    """Activate, record `spec.seconds`, and measure the row."""
    client = rig.client
    rec.on = True
    started = client.now()
    if not rig.activate(timeout_s=15.0 + 4 * spec.delay_ms / 1000.0):
        return {"name": spec.name, "skipped": f"client not ACTIVE (state {client.machine.state.value}, "
                                              f"last error {client.worker.last_error!r})"}
    if on_active is not None:
        on_active(client)
    end = time.monotonic() + spec.seconds
    while time.monotonic() < end:
        time.sleep(0.05)
    rec.on = False
    stopped = client.now()
    time.sleep(1.1)  # one more status message
    final_status = client.status()
    metrics = summarize_row(spec, rec, started, stopped, client.config)
    metrics["status"] = {k: (rec.status or final_status).get(k) for k in STATUS_KEYS}
    metrics["requests_per_s"] = round(client.worker.requests_ok / max(stopped - started, 1e-9), 2)
    return metrics


def run_row(spec: RowSpec, domain_id: int, directory: str, log=print, external_server: str | None = None,
            with_robot: bool = True, on_active=None, listen: bool = True, subscribe=None) -> tuple[dict, Recording]:
    """Server (unless `external_server` is an IPC path already served), client and sim robot in this
    process; records `spec.seconds` after the first chunk. `subscribe(rig)` adds subscriptions before the
    nodes spin. Returns (metrics, raw recording)."""
    ipc_path = external_server or os.path.join(directory, f"{spec.name}.sock")
    rec = Recording()
    server = {"mock_policy": "trajectory", "warmup_runs": 0, "mock_delay_ms": float(spec.delay_ms),
              "mock_jitter_ms": float(spec.jitter_ms)}
    try:
        with NodeRig(domain_id, ipc_path, server=server, client=spec.client, robot=spec.robot,
                     with_server=external_server is None, with_robot=with_robot, name="groot_bench_motion") as rig:
            if spec.disagree_rad > 0 and rig.server is not None:
                rig.server.service.engine.trajectory = _Disagreeing(spec.disagree_rad)
            instrument(rig.client, rec)
            rig.client.core.command_period_ms = _PeriodRecorder(rec, rig.client.core.command_period_ms, rig.client.now)
            if listen:
                _listen(rig, rec)
            if subscribe is not None:
                subscribe(rig)
            rig.spin()
            return _record(rig, spec, rec, on_active), rec
    finally:
        rec.on = False


# -- CPU budget: server and sim robot as processes of their own -----------------------------------
def _proc_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _child_env(domain_id: int) -> dict:
    root = os.path.dirname(os.path.dirname(os.path.abspath(alfie_gr00t.__file__)))  # where this package is imported from
    env = discovery.confine_to_localhost(dict(os.environ, ROS_DOMAIN_ID=str(domain_id)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH", "")]))
    return env


def _stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5.0)


def measure_cpu(seconds: float, domain_id: int, directory: str, log=print) -> dict:
    """Server and sim robot in processes of their own, the client in this one, inference at full rate."""
    ipc_path = os.path.join(directory, "cpu.sock")
    env = _child_env(domain_id)
    ros = ["--ros-args", "-r", "__ns:=/alfie", "--log-level", "error"]
    server = subprocess.Popen([sys.executable, "-m", "alfie_gr00t.nodes.groot_server", *ros,
                               "-p", "mock_mode:=true", "-p", f"ipc_path:={ipc_path}", "-p", "warmup_runs:=0",
                               "-p", "mock_policy:=trajectory", "-p", "mock_delay_ms:=1.0"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    robot = subprocess.Popen([sys.executable, "-m", "alfie_gr00t.nodes.sim_robot", *ros], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20.0
        while not os.path.exists(ipc_path) and time.monotonic() < deadline and server.poll() is None:
            time.sleep(0.1)
        if not os.path.exists(ipc_path):
            return {"skipped": f"server process did not bind {ipc_path} (exit {server.poll()})"}
        window = {}

        def start_window(client):
            time.sleep(1.0)  # past activation
            window.update(wall=time.monotonic(), me=_self_cpu_s(), server=_proc_cpu_s(server.pid),
                          robot=_proc_cpu_s(robot.pid), ok=client.worker.requests_ok)

        def end_window(client):
            wall = time.monotonic() - window["wall"]
            window.update(wall_s=wall, me_pct=100 * (_self_cpu_s() - window["me"]) / wall,
                          server_pct=100 * (_proc_cpu_s(server.pid) - window["server"]) / wall,
                          robot_pct=100 * (_proc_cpu_s(robot.pid) - window["robot"]) / wall,
                          rps=(client.worker.requests_ok - window["ok"]) / wall)

        spec = RowSpec("cpu", 1.0, 0.0, seconds + 1.0, client={"refill_threshold_steps": float(HORIZON)})
        holder = {}

        def on_active(client):
            holder["client"] = client
            start_window(client)
            threading.Timer(seconds, lambda: end_window(client)).start()

        metrics, _ = run_row(spec, domain_id, directory, log, external_server=ipc_path, with_robot=False,
                             on_active=on_active, listen=False)
        if "skipped" in metrics or "wall_s" not in window:
            return {"skipped": metrics.get("skipped", "window not measured")}
        return {"seconds": round(window["wall_s"], 2), "requests_per_s": round(window["rps"], 1),
                "client_process_pct": round(window["me_pct"], 1), "server_process_pct": round(window["server_pct"], 1),
                "sim_robot_process_pct": round(window["robot_pct"], 1), "period": metrics.get("period"),
                "note": "% of one core; client process = GrootClient + a small monitor node; 2 cores = 200 %"}
    finally:
        _stop_process(robot)
        _stop_process(server)


# -- debug topics and recording ----------------------------------------------------------------------
def measure_debug(seconds: float, domain_id: int, directory: str, log=print) -> dict:
    """The 100 Hz loop with the debug topics off (nobody subscribed, no recording) vs on: every debug
    topic subscribed (as Foxglove would) and a session recorded. Same row otherwise (50 +- 10 ms mock,
    default client, 4 x 640x480 cameras at 30 Hz). The topics are the client's own debug publishers."""
    rows = {}
    for name in ("off", "on"):
        received = {"n": 0}

        def count(msg):
            received["n"] += 1

        def subscribe_debug(rig, count=count):  # every debug topic, as Foxglove would
            for pub in rig.client.debug.publishers:
                rig.subscribe(pub.msg_type, pub.topic_name, count)

        subscribe, client = None, {}
        if name == "on":
            subscribe, client = subscribe_debug, {"record_dir": os.path.join(directory, "sessions")}
        holder = {}
        log(f"debug {name}: 50+-10 ms mock, {seconds:.0f} s")
        metrics, _ = run_row(RowSpec(f"debug_{name}", 50.0, 10.0, seconds, client), domain_id, directory, log,
                             on_active=lambda c: holder.update(client=c), subscribe=subscribe)
        if "skipped" in metrics:
            rows[name] = {"skipped": metrics["skipped"]}
            continue
        row = {"period": metrics["period"], "command_rate_hz": metrics.get("command_rate_hz"),
               "debug_messages_received": received["n"]}
        recorder = getattr(holder.get("client"), "recorder", None)
        if recorder is not None:
            row["recording"] = recorder.stats()
        rows[name] = row
    return rows


# -- JPEG codecs -----------------------------------------------------------------------------------
def codec_table(iterations: int) -> dict:
    """OpenCV vs simplejpeg on the four 320x280 camera frames at q90, 1 and 2 threads, interleaved."""
    import cv2

    from alfie_gr00t.tools.bench_inputs import Inputs

    frames = list(Inputs.build().model.values())
    params = (cv2.IMWRITE_JPEG_QUALITY, 90)
    flag = getattr(cv2, "IMREAD_COLOR_RGB", cv2.IMREAD_COLOR)
    jpegs = [cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR), params)[1].tobytes() for f in frames]
    jobs = {
        "cv2_encode": (lambda f: cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR), params)[1], frames),
        "cv2_decode": (lambda b: cv2.imdecode(np.frombuffer(b, np.uint8), flag), jpegs),
    }
    try:
        import simplejpeg

        jobs["simplejpeg_encode"] = (lambda f: simplejpeg.encode_jpeg(f, 90, "RGB", "420"), frames)
        jobs["simplejpeg_decode"] = (lambda b: simplejpeg.decode_jpeg(b, "RGB"), jpegs)
        version = simplejpeg.__version__
    except ImportError:
        version = None
    pools = {1: None, 2: ThreadPoolExecutor(2)}
    samples = {(name, n): [] for name in jobs for n in pools}
    rng = np.random.default_rng(0)
    keys = list(samples)
    try:
        for i in range(iterations + 10):
            for index in rng.permutation(len(keys)):
                name, n = keys[index]
                fn, items = jobs[name]
                start = time.perf_counter()
                if pools[n] is None:
                    for item in items:
                        fn(item)
                else:
                    list(pools[n].map(fn, items))
                if i >= 10:
                    samples[(name, n)].append((time.perf_counter() - start) * 1000.0)
    finally:
        pools[2].shutdown()
    rows = {f"{name}_x4_{n}thr": {"p50_ms": round(float(np.median(s)), 3), "p10_ms": round(float(np.percentile(s, 10)), 3),
                                  "p90_ms": round(float(np.percentile(s, 90)), 3)}
            for (name, n), s in samples.items()}
    return {"simplejpeg": version, "opencv": cv2.__version__, "rows": rows,
            "note": "4 x 320x280 RGB, q90, 4:2:0 (OpenCV's default sampling); encode includes OpenCV's RGB->BGR"}


# -- driver ----------------------------------------------------------------------------------------
def run(args, log) -> dict:
    seconds = args.seconds or (5.0 if args.quick else 12.0)
    wanted = set(args.latencies.split(",")) if args.latencies else None
    directory = tempfile.mkdtemp(prefix="agmotion_", dir="/tmp")
    os.makedirs(args.out_dir, exist_ok=True)
    started = time.perf_counter()
    result = {"meta": report.machine_facts(mode="quick" if args.quick else "default", seconds_per_row=seconds,
                                           ros_domain_id=args.domain_id),
              "fidelity": [], "seams": [], "load": None, "cpu": None, "debug": None, "codecs": None, "files": []}
    try:
        for name, delay, jitter in LATENCIES:
            if wanted and name.removesuffix("ms") not in wanted and name not in wanted:
                continue
            log(f"fidelity {name}: {delay:.0f}+-{jitter:.0f} ms, {seconds:.0f} s")
            metrics, rec = run_row(RowSpec(name, delay, jitter, seconds), args.domain_id, directory, log)
            result["fidelity"].append(metrics)
            if not args.no_series:
                result["files"] += write_series(name, rec, metrics, args.out_dir)
        if not args.no_seams:
            seam_s = args.seconds or (4.0 if args.quick else 10.0)
            for cf, prefix in SEAM_VARIANTS:
                name = f"seam_cf{cf}_{'prefix' if prefix else 'noprefix'}"
                log(f"seams {name}: 250+-50 ms, +-{args.disagree} rad disagreement, {seam_s:.0f} s")
                spec = RowSpec(name, 250.0, 50.0, seam_s, {"crossfade_steps": cf, "send_action_prefix": prefix},
                               disagree_rad=args.disagree)
                metrics, rec = run_row(spec, args.domain_id, directory, log)
                result["seams"].append(metrics)
                if not args.no_series and (cf, prefix) in ((0, False), (3, True)):
                    result["files"] += write_series(name, rec, metrics, args.out_dir)
        load_s = args.seconds or (4.0 if args.quick else 10.0)
        if not args.no_load:
            log(f"load: 1 ms mock at full rate, all nodes in this process, {load_s:.0f} s")
            spec = RowSpec("load", 1.0, 0.0, load_s, {"refill_threshold_steps": float(HORIZON)})
            metrics, _ = run_row(spec, args.domain_id, directory, log)
            result["load"] = metrics
        if not args.no_cpu:
            log(f"cpu: server and sim robot as processes, {load_s:.0f} s")
            result["cpu"] = measure_cpu(load_s, args.domain_id, directory, log)
        if not args.no_debug:
            result["debug"] = measure_debug(load_s, args.domain_id, directory, log)
        if not args.no_codecs:
            log("codecs: OpenCV vs simplejpeg")
            result["codecs"] = codec_table(60 if args.quick else 400)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    result["meta"]["wall_s"] = round(time.perf_counter() - started, 1)
    return result


def format_report(result: dict, disagree: float) -> str:
    parts = ["motion fidelity (trajectory mock, default client parameters, 4 x 640x480 cameras at 30 Hz):",
             format_fidelity(result["fidelity"])]
    if result["seams"]:
        parts += ["", format_seams(result["seams"], disagree)]
    if result["load"] or result["cpu"]:
        parts += ["", format_load(result["load"], result["cpu"])]
    if result.get("debug"):
        parts += ["", format_debug(result["debug"])]
    if result["codecs"]:
        parts += ["", format_codecs(result["codecs"])]
    if result["files"]:
        kind = "PNG plots" if result["files"][0].endswith(".png") else \
            "CSV series (matplotlib is not installed: no plots; pip install matplotlib for PNGs)"
        parts += ["", f"{kind}: " + ", ".join(result["files"])]
    parts.append("\n" + report.footer(result["meta"]))
    return "\n".join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="groot_bench_motion", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="~5 s per row instead of ~12 s")
    parser.add_argument("--seconds", type=float, help="seconds recorded per row (overrides the profile)")
    parser.add_argument("--latencies", help="comma-separated subset of 1,50,250,550,2500 (default: all)")
    parser.add_argument("--disagree", type=float, default=0.03, help="per-chunk offset (rad) in the seam comparison")
    parser.add_argument("--json", metavar="FILE", default=os.path.join("bench_out", "motion.json"))
    parser.add_argument("--out-dir", default="bench_out", help="plots (or CSV series without matplotlib)")
    for part in ("seams", "load", "cpu", "debug", "codecs", "series"):
        parser.add_argument(f"--no-{part}", action="store_true", help=f"skip the {part} part")
    parser.add_argument("--domain-id", type=int, default=report.env_domain_id(), help="ROS domain (default $ROS_DOMAIN_ID)")
    args = parser.parse_args(argv)
    discovery.confine_to_localhost()  # before any node starts: DDS stays on loopback
    if args.seconds is not None and not 0.5 <= args.seconds <= 600:
        parser.error("--seconds must be in [0.5, 600]")
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    result = report.json_safe(run(args, log))
    print(format_report(result, args.disagree), flush=True)
    if args.json:
        log(f"wrote {report.write_json(result, args.json)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Stops on a busy computer: e-stop latency, the 100 Hz period and camera-frame age, with cores kept busy.

    python -m alfie_gr00t.tools.bench_busy [--quick] [--rounds 50] [--busy 0,1,N] [--json FILE]

The deployment's shape, one process each: `groot_server` (mock `trajectory` policy, IPC),
`groot_client` with default parameters, a camera rig (this module with `--camera-node`: four raw
640x480 rgb8 cameras at 30 Hz and the 21-D state as JointState + Twist at 30 Hz, every publisher
reliable with depth 5; the state echoes the client's last joint command), and 0, 1 or N CPU
burners (`python3 -c 'while True: pass'`, N = cores). This process drives the client only
through its ROS interface: `~/set_active` and `~/estop` (service and topic), and it listens to
`~/joint_commands`, `~/debug/gate` and `~/status`.

A round: activate, wait until policy commands flow, let them flow 0.2-0.4 s, send an e-stop,
wait for the stop, release it. Send modes (`--modes`):

  topic          a fresh depth-1 publisher per round that waits until it matches the client's
                 subscription, publishes once and leaves (what `ros2 topic pub --once -w 1` does)
  service        one `~/estop` service client kept for the whole run (an operator node)
  topic_kept     one `~/estop` publisher kept for the whole run
  service_fresh  a new service client per round (what `ros2 service call` does)
  topic_acked    as `topic`, but the publisher waits until the client acknowledged the message
                 (`wait_for_all_acked`, up to the round timeout) before it leaves
  topic_linger   as `topic`, but the publisher leaves 0.1 s after publishing (`ros2 topic pub --once`)

Latency: from the wall-clock moment right before the send to the moment the client published its first
`stop` on `~/debug/gate` (the gate reports there every command it emits, kind `policy`, `hold` or
`stop`, together with the command itself). That moment is the stop's arrival here minus this process's
receive delay right then (arrival minus header stamp of the joint command received nearest to it, which
the client published in the same instant), so a starved benchmark process does not pass for a late stop;
`observed_max` is the uncorrected arrival. A round with no stop within `--round-timeout` counts as lost.
`policy_after`: policy commands the client still published after the send (each one is 10 ms more of
motion). The command period comes from the header stamps of `~/joint_commands` while policy commands
flow; `monitor_delay` (arrival here minus that stamp) is what this process's own receiving adds. Frame
age (capture to the inference thread's snapshot, the client's rolling window of 2000 frames) and stale
skips come from the client's status JSON; `camera_hz` is the rate the camera rig published.
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque

NS = "/alfie"
CLIENT = f"{NS}/groot_client"
MODES = ("topic", "service", "topic_kept", "service_fresh", "topic_acked", "topic_linger")
# The ways operators and tools send stops: `ros2 topic pub --once`, a node's kept publisher,
# `ros2 service call`, a node's kept service client. `topic` (a publisher gone right after its publish)
# is opt-in: nothing on the receiving side can recover its message when it was dropped (docs/performance.md).
DEFAULT_MODES = ("topic_linger", "topic_kept", "service_fresh", "service")
CAMERA_HZ = 30.0
SETS_TOPIC = f"{NS}/bench_busy/camera_sets"
PROFILES = {"full": {"rounds": 50, "round_timeout": 3.0}, "quick": {"rounds": 5, "round_timeout": 2.0}}


# -- numbers ----------------------------------------------------------------------------------------
def busy_levels(text: str, cpus: int) -> list[int]:
    """'0,1,N' -> [0, 1, cpus] (N = cores), duplicates dropped, order kept."""
    levels: list[int] = []
    for part in text.split(","):
        part = part.strip().upper()
        if not part:
            continue
        value = cpus if part == "N" else int(part)
        if value < 0 or value > 4 * cpus:
            raise ValueError(f"busy level {value} outside 0..{4 * cpus}")
        if value not in levels:
            levels.append(value)
    return levels


def summarize(values) -> dict:
    """n, p50, p99 and max of a list of milliseconds (None when empty)."""
    import numpy as np

    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return {"n": 0, "p50": None, "p99": None, "max": None}
    p50, p99 = np.percentile(np.asarray(values, dtype=np.float64), [50, 99])
    return {"n": len(values), "p50": round(float(p50), 2), "p99": round(float(p99), 2),
            "max": round(float(max(values)), 2)}


def periods_ms(stamps) -> list[float]:
    """Consecutive differences of increasing stamps (seconds) in ms."""
    return [(b - a) * 1000.0 for a, b in zip(stamps, stamps[1:]) if b > a]


def monitor_delay(commands, arrival: float) -> float:
    """How late this process received what the client published at about `arrival` (wall clock): arrival
    minus header stamp of the joint command received nearest to it; 0 when there is none."""
    if not commands:
        return 0.0
    i = bisect.bisect_left([c[0] for c in commands], arrival)
    near = min(commands[max(0, i - 1):i + 1], key=lambda c: abs(c[0] - arrival))
    return max(0.0, near[0] - near[1])


def round_outcome(sent: float, gate_events, commands, timeout_s: float) -> dict:
    """One round, all on the wall clock: `gate_events` (arrival, kind) and `commands` (arrival, header
    stamp) received here after the send at `sent`. Each gate event is moved back by this process's receive
    delay at that moment (the joint command received nearest to it was published with it), so the latency
    is the client's, not this process's. `observed_ms`: the same without that correction."""
    corrected = [(t - monitor_delay(commands, t), t, kind) for t, kind in gate_events]
    stops = [(c, t) for c, t, kind in corrected if kind == "stop" and t <= sent + timeout_s]
    first, observed = min(stops) if stops else (None, None)
    end = first if first is not None else sent + timeout_s
    policy_after = sum(1 for c, _, kind in corrected if kind == "policy" and sent < c <= end)
    return {"latency_ms": None if first is None else max(0.0, first - sent) * 1000.0,
            "observed_ms": None if observed is None else (observed - sent) * 1000.0,
            "lost": first is None, "policy_after": policy_after}


# -- child processes ----------------------------------------------------------------------------------
class Children:
    """Child processes, each in its own process group, all ended in close() (SIGINT, then SIGKILL)."""

    def __init__(self, env: dict, log_dir: str):
        self._env, self._log_dir, self._procs = env, log_dir, []

    def start(self, name: str, argv: list[str], limit_s: float) -> subprocess.Popen:
        log = open(os.path.join(self._log_dir, f"{name}.log"), "wb")
        try:
            proc = subprocess.Popen(["timeout", "-k", "5", f"{limit_s:.0f}", *argv], env=self._env, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()
        self._procs.append((name, proc))
        return proc

    def stop(self, names=None) -> None:
        chosen = [(n, p) for n, p in self._procs if names is None or n in names]
        for _, proc in chosen:
            _signal_group(proc, signal.SIGINT)
        deadline = time.monotonic() + 5.0
        for _, proc in chosen:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait(timeout=5.0)
        self._procs = [(n, p) for n, p in self._procs if (n, p) not in chosen]

    def log_tail(self, name: str, lines: int = 15) -> str:
        try:
            with open(os.path.join(self._log_dir, f"{name}.log"), encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def alive(self, name: str) -> bool:
        return any(n == name and p.poll() is None for n, p in self._procs)


def _signal_group(proc: subprocess.Popen, sig) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def start_burners(children: Children, count: int, limit_s: float) -> list[str]:
    names = [f"burner{i}" for i in range(count)]
    for name in names:
        children.start(name, ["python3", "-c", "while True: pass"], limit_s)
    return names


def node_argv(module: str, params: dict) -> list[str]:
    argv = [sys.executable, "-m", module, "--ros-args", "-r", f"__ns:={NS}", "--log-level", "warn"]
    for key, value in params.items():
        argv += ["-p", f"{key}:={value}"]
    return argv


# -- the camera rig (--camera-node) ------------------------------------------------------------------
def camera_node(seconds: float) -> int:
    """Four raw cameras and the state at 30 Hz, reliable depth 5, until SIGINT or `seconds`."""
    import array

    import numpy as np
    import rclpy
    from geometry_msgs.msg import Twist
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rclpy.signals import SignalHandlerOptions
    from sensor_msgs.msg import Image, JointState
    from std_msgs.msg import UInt32

    from alfie_gr00t import layout
    from alfie_gr00t.nodes.runner import NodeSpinner, stop_on_signals

    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    stop = stop_on_signals()
    node = rclpy.create_node("bench_camera_rig", namespace=NS)
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    cams = [node.create_publisher(Image, f"{NS}/cameras/{n}/image_raw", qos) for n in layout.CAMERA_NAMES]
    joints_pub = node.create_publisher(JointState, f"{NS}/joint_states", qos)
    twist_pub = node.create_publisher(Twist, f"{NS}/base_velocity", qos)
    sets_pub = node.create_publisher(UInt32, SETS_TOPIC, 10)  # one per set of four frames: the rate published
    names = list(layout.JOINT_NAMES[layout.JOINT_DIMS])
    position = {n: 0.0 for n in names}
    rng = np.random.default_rng(0)
    frames = [array.array("B", rng.integers(0, 255, 640 * 480 * 3, dtype=np.uint8).tobytes()) for _ in range(2)]
    count = [0]

    def on_command(msg: JointState) -> None:
        position.update(zip(msg.name, msg.position))

    def publish() -> None:
        count[0] += 1
        stamp = node.get_clock().now().to_msg()
        for i, pub in enumerate(cams):
            msg = Image(height=480, width=640, encoding="rgb8", step=640 * 3, data=frames[(count[0] + i) % 2])
            msg.header.stamp = stamp
            pub.publish(msg)
        state = JointState(name=names, position=[float(position[n]) for n in names])
        state.header.stamp = stamp
        joints_pub.publish(state)
        twist_pub.publish(Twist())
        sets_pub.publish(UInt32(data=count[0]))

    node.create_subscription(JointState, f"{CLIENT}/joint_commands", on_command, 10)
    node.create_timer(1.0 / CAMERA_HZ, publish)
    spinner = NodeSpinner([node]).start()
    try:
        stop.wait(seconds)
    finally:
        spinner.stop()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


# -- the monitor ---------------------------------------------------------------------------------------
class Monitor:
    """This process's node: what the client publishes, and the e-stop senders."""

    def __init__(self):
        import rclpy
        import rclpy.executors
        from diagnostic_msgs.msg import DiagnosticStatus
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Bool, String, UInt32
        from std_srvs.srv import SetBool

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("bench_busy_monitor", namespace=NS, context=self.context)
        self._lock = threading.Lock()
        self.commands: deque = deque(maxlen=200_000)  # (arrival monotonic, arrival wall, header stamp)
        self.gate: deque = deque(maxlen=200_000)  # (arrival monotonic, arrival wall, kind)
        self.status: dict = {}
        self.status_at = 0.0
        self.sent_wall = 0.0  # wall-clock time of the last e-stop send (to compare with other processes' logs)
        n = self.node
        n.create_subscription(JointState, f"{CLIENT}/joint_commands", self._on_command, 100)
        n.create_subscription(DiagnosticStatus, f"{CLIENT}/debug/gate", self._on_gate, 100)
        n.create_subscription(String, f"{CLIENT}/status", self._on_status, 10)
        self.camera_sets: deque = deque(maxlen=100_000)  # arrival monotonic of each published set of frames
        n.create_subscription(UInt32, SETS_TOPIC, lambda msg: self.camera_sets.append(time.monotonic()), 10)
        self.set_active = n.create_client(SetBool, f"{CLIENT}/set_active")
        self.estop_srv = n.create_client(SetBool, f"{CLIENT}/estop")
        self.estop_pub = n.create_publisher(Bool, f"{CLIENT}/estop", 10)
        self._types = (Bool, SetBool)
        self._stopping = threading.Event()
        self._executor = rclpy.executors.SingleThreadedExecutor(context=self.context)
        self._executor.add_node(n)
        self._thread = threading.Thread(target=self._spin, daemon=True, name="bench-busy-monitor")
        self._thread.start()

    def _spin(self) -> None:
        """rclpy may find a publisher or client that the main thread just destroyed (a one-shot sender)
        half gone while it builds its wait set: that wait is skipped, the loop goes on."""
        from rclpy.executors import ExternalShutdownException
        from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy

        while not self._stopping.is_set() and self.context.ok():
            try:
                self._executor.spin_once(timeout_sec=0.05)
            except _rclpy.InvalidHandle:
                continue  # the next spin_once builds a new wait set
            except ExternalShutdownException:
                return

    def _on_command(self, msg) -> None:
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        self.commands.append((time.monotonic(), time.time(), stamp))

    def _on_gate(self, msg) -> None:
        kind = next((kv.value for kv in msg.values if kv.key == "kind"), "")
        self.gate.append((time.monotonic(), time.time(), kind))

    def _on_status(self, msg) -> None:
        try:
            status = json.loads(msg.data)
        except ValueError:
            return
        with self._lock:
            self.status, self.status_at = status, time.monotonic()

    def fresh_status(self, timeout_s: float = 3.0) -> dict:
        """The first status published after now (the client publishes one a second)."""
        asked = time.monotonic()
        while time.monotonic() - asked < timeout_s:
            with self._lock:
                if self.status_at > asked:
                    return dict(self.status)
            time.sleep(0.05)
        with self._lock:
            return dict(self.status)

    def call(self, client, value: bool, timeout_s: float):
        """A SetBool call; the response, or None when none came within `timeout_s`."""
        future = client.call_async(self._types[1].Request(data=value))
        deadline = time.monotonic() + timeout_s
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.002)
        if not future.done():
            client.remove_pending_request(future)
            return None
        return future.result()

    def kinds_since(self, since: float) -> set:
        """The kinds of gate events received since the monotonic time `since`."""
        return {kind for t, _, kind in list(self.gate) if t >= since}

    def outcome(self, sent_wall: float, timeout_s: float) -> dict:
        gate = [(wall, kind) for _, wall, kind in list(self.gate) if wall >= sent_wall]
        commands = [(wall, stamp) for _, wall, stamp in list(self.commands) if wall >= sent_wall - 1.0]
        return round_outcome(sent_wall, gate, commands, timeout_s)

    def send_estop(self, mode: str, timeout_s: float) -> float | None:
        """Send estop:true the `mode` way; the monotonic send time (None if it could not be sent)."""
        Bool, SetBool = self._types
        topic = f"{CLIENT}/estop"
        if mode == "topic_kept":
            sent, self.sent_wall = time.monotonic(), time.time()
            self.estop_pub.publish(Bool(data=True))
            return sent
        if mode in ("topic", "topic_acked", "topic_linger"):
            pub = self.node.create_publisher(Bool, topic, 1)
            try:
                if not _wait(lambda: pub.get_subscription_count() > 0, timeout_s):
                    return None
                sent, self.sent_wall = time.monotonic(), time.time()
                pub.publish(Bool(data=True))
                if mode == "topic_acked":
                    from rclpy.duration import Duration

                    pub.wait_for_all_acked(Duration(seconds=timeout_s))
                elif mode == "topic_linger":
                    time.sleep(0.1)
                return sent
            finally:
                self.node.destroy_publisher(pub)  # leaves at once, as the command-line tool's process does
        client = self.estop_srv if mode == "service" else self.node.create_client(SetBool, topic)
        try:
            if not client.wait_for_service(timeout_sec=timeout_s):
                return None
            sent, self.sent_wall = time.monotonic(), time.time()
            future = client.call_async(SetBool.Request(data=True))
            _wait(future.done, timeout_s)
            return sent
        finally:
            if client is not self.estop_srv:
                self.node.destroy_client(client)

    def close(self) -> None:
        self._stopping.set()
        self._executor.wake()
        self._thread.join(timeout=2.0)
        self._executor.shutdown(timeout_sec=0)
        self.node.destroy_node()
        self.context.try_shutdown()


def _wait(condition, timeout_s: float, step_s: float = 0.002) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(step_s)
    return True


# -- one busy level ------------------------------------------------------------------------------------
def run_level(mon: Monitor, busy: int, modes, rounds: int, timeout_s: float, log) -> dict:
    """`rounds` e-stops per mode, interleaved, at this load; then the level's figures."""
    before = mon.fresh_status()
    level_start = time.monotonic()
    order = [m for _ in range(rounds) for m in modes]
    outcomes = {m: [] for m in modes}
    periods, delays = [], []
    failures = 0
    for i, mode in enumerate(order):
        started = time.monotonic()
        mon.call(mon.estop_srv, False, timeout_s)  # released (no-op when not in E_STOP)
        if mon.call(mon.set_active, True, timeout_s) is None or not _wait(
                lambda: "policy" in mon.kinds_since(started), 5.0):
            failures += 1
            log(f"  busy {busy}: round {i} did not start moving")
            if failures > max(3, len(order) // 5):
                break
            continue
        moving = time.monotonic()
        time.sleep(random.uniform(0.2, 0.4))
        sent = mon.send_estop(mode, timeout_s)
        if sent is None:
            outcomes[mode].append({"latency_ms": None, "observed_ms": None, "lost": True, "policy_after": 0,
                                   "unsent": True})
            continue
        _wait(lambda: "stop" in mon.kinds_since(sent), timeout_s)
        time.sleep(0.05)  # the joint commands published with the stop, for the receive-delay correction
        outcomes[mode].append({**mon.outcome(mon.sent_wall, timeout_s), "sent_wall": mon.sent_wall})
        window = [c for c in list(mon.commands) if moving <= c[0] <= sent]
        periods += periods_ms([c[2] for c in window])
        delays += [(wall - stamp) * 1000.0 for _, wall, stamp in window]
        if outcomes[mode][-1]["lost"]:
            log(f"  busy {busy}: {mode} e-stop round {i} lost (no stop within {timeout_s} s)")
            mon.call(mon.estop_srv, True, timeout_s)
    mon.call(mon.estop_srv, False, timeout_s)
    after = mon.fresh_status()
    span = time.monotonic() - level_start
    sets = sum(1 for t in list(mon.camera_sets) if t >= level_start)
    return {**level_result(busy, outcomes, periods, delays, before, after),
            "camera_sets_hz": round(sets / span, 1) if span > 0 else None}


def level_result(busy: int, outcomes: dict, periods, delays, before: dict, after: dict) -> dict:
    rows = {}
    for mode, rounds in outcomes.items():
        rows[mode] = {**summarize([r["latency_ms"] for r in rounds]), "rounds": len(rounds),
                      "lost": sum(r["lost"] for r in rounds),
                      "over_50ms": sum(1 for r in rounds if r["lost"] or r["latency_ms"] > 50.0),
                      "observed_max": summarize([r["observed_ms"] for r in rounds])["max"],
                      "policy_after_max": max((r["policy_after"] for r in rounds), default=0)}
    age = {"p50": after.get("frame_age_p50_ms"), "p99": after.get("frame_age_p99_ms")}
    skipped = [s.get("stale_observations_skipped") for s in (before, after)]
    return {"busy": busy, "estop": rows, "rounds": {m: r for m, r in outcomes.items()},
            "command_period_ms": summarize(periods),
            "status_command_period_p99_ms": after.get("command_period_p99_ms"),
            "monitor_delay_ms": summarize(delays),
            "frame_age_ms": age,
            "stale_observations_skipped": (skipped[1] - skipped[0]) if None not in skipped else None,
            "requests_ok": after.get("requests_ok")}


# -- the run -------------------------------------------------------------------------------------------
def run(args, log) -> dict:
    from alfie_gr00t.tools import report

    cpus = os.cpu_count() or 1
    levels = busy_levels(args.busy, cpus)
    modes = tuple(args.modes.split(","))
    meta = report.machine_facts(mode="quick" if args.quick else "full", rounds=args.rounds, modes=list(modes),
                                round_timeout_s=args.round_timeout, commit=_commit(), client_nice=args.client_nice,
                                client_params=list(args.client_param),
                                rmw=os.environ.get("RMW_IMPLEMENTATION") or "default (rmw_fastrtps_cpp)")
    started = time.monotonic()
    budget_s = 60.0 + len(levels) * (10.0 + args.rounds * len(modes) * (2.0 + 2 * args.round_timeout))
    workdir = tempfile.mkdtemp(prefix="alfie_busy_")
    env = dict(os.environ)
    children = Children(env, workdir)
    mon = None
    levels_out = []
    try:
        ipc = os.path.join(workdir, "policy.sock")
        server = {"mock_mode": "true", "mock_policy": "trajectory", "ipc_path": ipc}
        children.start("server", node_argv("alfie_gr00t.nodes.groot_server", server), budget_s)
        client = node_argv(args.client_module, {"ipc_path": ipc, **dict(p.split(":=", 1) for p in args.client_param)})
        if args.client_nice:  # the client above the burners (docs/robot-jetson.md, "Real-time priority")
            client = ["nice", "-n", str(args.client_nice)] + client
        children.start("client", client, budget_s)
        children.start("cameras", [sys.executable, "-m", "alfie_gr00t.tools.bench_busy", "--camera-node",
                                   "--seconds", f"{budget_s:.0f}"], budget_s)
        mon = Monitor()
        if not (mon.set_active.wait_for_service(timeout_sec=30.0) and mon.estop_srv.wait_for_service(timeout_sec=10.0)):
            raise RuntimeError("groot_client did not come up:\n" + children.log_tail("client"))
        for busy in levels:
            log(f"busy {busy}: {args.rounds} rounds x {', '.join(modes)}")
            names = start_burners(children, busy, budget_s)
            try:
                time.sleep(1.0 if args.quick else 3.0)
                levels_out.append(run_level(mon, busy, modes, args.rounds, args.round_timeout, log))
            finally:
                children.stop(names)
            for name in ("server", "client", "cameras"):
                if not children.alive(name):
                    raise RuntimeError(f"{name} exited:\n" + children.log_tail(name))
    finally:
        if mon is not None:
            mon.close()
        children.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    meta["wall_s"] = round(time.monotonic() - started, 1)
    return {"meta": meta, "levels": levels_out}


def _commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=os.path.dirname(os.path.abspath(__file__)))
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def format_report(result: dict) -> str:
    from alfie_gr00t.tools import report

    rows = []
    for level in result["levels"]:
        for mode, r in level["estop"].items():
            rows.append([level["busy"], f"estop_{mode}", r["rounds"], r["lost"], r["over_50ms"], r["p50"], r["p99"],
                         r["max"], r["observed_max"], r["policy_after_max"]])
    lines = ["e-stop latency (ms, send -> the client's first stop command, on the client's clock)",
             report.table(["busy", "row", "rounds", "lost", ">50ms", "p50", "p99", "max", "observed_max",
                           "policy_after_max"], rows)]
    rows = [[lv["busy"], lv["command_period_ms"]["p99"], lv["command_period_ms"]["max"],
             lv["status_command_period_p99_ms"], lv["frame_age_ms"]["p50"], lv["frame_age_ms"]["p99"],
             lv["stale_observations_skipped"], lv.get("camera_sets_hz"), lv["monitor_delay_ms"]["p99"]]
            for lv in result["levels"]]
    lines += ["", "100 Hz loop and camera frames (ms)",
              report.table(["busy", "period_p99", "period_max", "status_period_p99", "frame_age_p50",
                            "frame_age_p99", "stale_skipped", "camera_hz", "monitor_delay_p99"], rows),
              "", report.footer(result["meta"]) + f"; commit {result['meta'].get('commit')}"]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="groot_bench_busy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (5 rounds a mode)")
    parser.add_argument("--rounds", type=int, help="e-stop rounds per mode and busy level (default 50)")
    parser.add_argument("--busy", default="0,1,N", help="busy cores per level, N = all cores (default 0,1,N)")
    parser.add_argument("--modes", default=",".join(DEFAULT_MODES), help=f"e-stop send modes, from {','.join(MODES)}")
    parser.add_argument("--round-timeout", type=float, help="seconds after which a stop counts as lost")
    parser.add_argument("--json", metavar="FILE", default=os.path.join("bench_out", "busy.json"))
    parser.add_argument("--client-module", default="alfie_gr00t.nodes.groot_client",
                        help="the client's module (e.g. an older or instrumented copy on PYTHONPATH)")
    parser.add_argument("--client-param", action="append", default=[], metavar="NAME:=VALUE",
                        help="a groot_client parameter (repeatable), e.g. command_thread_priority:=50")
    parser.add_argument("--client-nice", type=int, default=0,
                        help="run groot_client at this niceness (negative: above the burners; needs the right to)")
    parser.add_argument("--domain-id", type=int, help="ROS domain (default $ROS_DOMAIN_ID or one from the pid)")
    parser.add_argument("--camera-node", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=600.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    from alfie_gr00t import discovery
    from alfie_gr00t.tools import report

    if args.camera_node:
        return camera_node(args.seconds)
    profile = PROFILES["quick" if args.quick else "full"]
    args.rounds = args.rounds if args.rounds is not None else profile["rounds"]
    args.round_timeout = args.round_timeout if args.round_timeout is not None else profile["round_timeout"]
    if not 1 <= args.rounds <= 1000 or not 0.1 <= args.round_timeout <= 30:
        parser.error("--rounds must be in [1, 1000] and --round-timeout in [0.1, 30]")
    if any(m not in MODES for m in args.modes.split(",")):
        parser.error(f"--modes takes {', '.join(MODES)}")
    try:
        busy_levels(args.busy, os.cpu_count() or 1)
    except ValueError as exc:
        parser.error(f"--busy: {exc}")
    discovery.confine_to_localhost()
    os.environ["ROS_DOMAIN_ID"] = str(args.domain_id if args.domain_id is not None else report.env_domain_id())
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    result = report.json_safe(run(args, log))
    print(format_report(result), flush=True)
    if args.json:
        log(f"wrote {report.write_json(result, args.json)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

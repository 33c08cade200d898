"""Latency, throughput and command-loop benchmark for the inference path.

    python -m alfie_gr00t.tools.bench [--json FILE] [--plot FILE.png] [--quick] [--iterations N]

One run measures, on this machine, in one process:

- the floor: sequential JPEG encode and decode of the four 320x280 frames, and a plain
  ZeroMQ REQ/REP echo of the same ~84 KB observation over IPC and TCP;
- our server (BackgroundServer + mock engine) answering a pre-encoded observation, with
  JPEG and with raw frames;
- our client request path end to end (four 640x480 camera frames + state -> resize,
  parallel encode, pack, send, server, reply parsed) over IPC and TCP, JPEG and raw;
- the Isaac-GR00T wire format (npy arrays, `get_action`) against the same server;
- server throughput with 1, 2 and 4 concurrent clients;
- the command period of the real `GrootClient` node at 100 Hz while inference runs.

Latency rows are measured interleaved: every iteration takes one sample of every row, in a
fresh random order, so machine drift hits all rows alike. Nothing leaves loopback: IPC
sockets live in a fresh directory under /tmp, TCP binds 127.0.0.1, and DDS discovery is
limited to localhost (by `main()`) on a domain id of the benchmark's own. The inputs are in
bench_inputs.py, the ratios, targets, table and plot in latency_report.py.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np
import zmq

from alfie_gr00t import discovery, layout
from alfie_gr00t.client.config import ClientConfig
from alfie_gr00t.client.latency import RefillConfig, RefillPolicy
from alfie_gr00t.client.links import AlfieLink, Gr00tLink
from alfie_gr00t.client.scheduler import ActionScheduler, SchedulerConfig
from alfie_gr00t.engines.mock import MockEngine
from alfie_gr00t.server.config import ServerConfig
from alfie_gr00t.server.service import BackgroundServer, PolicyService
from alfie_gr00t.stats import RollingStats, StageStats, StageTimer, percentiles
from alfie_gr00t.tools import report
from alfie_gr00t.tools.bench_inputs import JPEG_QUALITY, Inputs
from alfie_gr00t.tools.latency_report import compute_ratios, compute_targets, format_report, write_plot
from alfie_gr00t.wire import images, protocol
from alfie_gr00t.wire.transport import ReqClient

REQUEST_TIMEOUT_MS = 5000  # generous: a benchmark sample must not turn into a reconnect

@dataclass(frozen=True)
class Profile:
    """How long each part runs; `--quick` is a smoke run, the default a measurement."""

    iterations: int
    warmup: int
    throughput_rounds: int
    throughput_burst_s: float
    command_loop_s: float


DEFAULT = Profile(iterations=1000, warmup=30, throughput_rounds=4, throughput_burst_s=0.5, command_loop_s=5.0)
QUICK = Profile(iterations=60, warmup=5, throughput_rounds=1, throughput_burst_s=0.3, command_loop_s=2.0)


# -- sockets --------------------------------------------------------------------------------
def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EchoServer:
    """The transport floor: a plain REP thread that sends every message straight back."""

    def __init__(self, address: str):
        self._socket = zmq.Context.instance().socket(zmq.REP)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.bind(address)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="echo", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if self._socket.poll(20, zmq.POLLIN):
                    self._socket.send(self._socket.recv(copy=False), copy=False)
        finally:
            self._socket.close(0)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)


class Endpoints:
    """Fresh IPC paths in a private /tmp directory and free 127.0.0.1 ports; cleans up after itself."""

    def __init__(self):
        self.directory = tempfile.mkdtemp(prefix="agbench_", dir="/tmp")
        self._count = 0

    def server(self, transport: str) -> tuple[ServerConfig, str]:
        self._count += 1
        if transport == "ipc":
            path = os.path.join(self.directory, f"s{self._count}.sock")
            config = ServerConfig(mock_mode=True, transport="ipc", ipc_path=path, warmup_runs=0)
        else:
            config = ServerConfig(mock_mode=True, transport="tcp", bind_host="127.0.0.1",
                                  bind_port=free_tcp_port(), warmup_runs=0)
        return config, config.address

    def client_config(self, server: ServerConfig, **overrides) -> ClientConfig:
        # The links use the ReqClient the rows give them (REQUEST_TIMEOUT_MS), not inference_timeout_ms.
        return ClientConfig(transport=server.transport, ipc_path=server.ipc_path, server_host="127.0.0.1",
                            server_port=server.bind_port, **overrides)

    def close(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


# -- latency rows ---------------------------------------------------------------------------
@dataclass
class Row:
    name: str
    notes: str
    sample: Callable[[], float]  # one measurement in ms
    samples: list = field(default_factory=list)
    service: PolicyService | None = None  # the server behind the row, for its stage summary
    client_stages: StageStats | None = None


def _timed(fn: Callable[[], object]) -> Callable[[], float]:
    def sample() -> float:
        start = time.perf_counter()
        fn()
        return (time.perf_counter() - start) * 1000.0
    return sample


class LatencyRows:
    """Every server, client and socket the latency rows use; `close()` releases them all."""

    def __init__(self, inputs: Inputs):
        self.inputs = inputs
        self.endpoints = Endpoints()
        self._servers: list[BackgroundServer] = []
        self._echoes: list[EchoServer] = []
        self._closers: list[Callable[[], None]] = []
        self._context = zmq.Context.instance()

    # servers
    def start_server(self, transport: str) -> tuple[PolicyService, ServerConfig, str]:
        config, address = self.endpoints.server(transport)
        service = PolicyService(MockEngine(config.engine_config()), config)
        self._servers.append(BackgroundServer(service, address).start())
        self._closers.append(service.close)
        return service, config, address

    def start_echo(self, transport: str) -> str:
        _, address = self.endpoints.server(transport)
        self._echoes.append(EchoServer(address))
        return address

    def req_socket(self, address: str) -> zmq.Socket:
        sock = self._context.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(address)
        self._closers.append(lambda: sock.close(0))
        return sock

    def req_client(self, address: str) -> ReqClient:
        client = ReqClient(address, REQUEST_TIMEOUT_MS)
        self._closers.append(client.close)
        return client

    def codec(self, threads: int) -> images.ParallelCodec:
        codec = images.ParallelCodec(threads)
        self._closers.append(codec.close)
        return codec

    # rows
    def floor_rows(self) -> list[Row]:
        bgr = [cv2.cvtColor(f, cv2.COLOR_RGB2BGR) for f in self.inputs.model.values()]
        buffers = [np.frombuffer(j, np.uint8) for j in self.inputs.jpegs.values()]
        params = (cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY)
        flag = getattr(cv2, "IMREAD_COLOR_RGB", cv2.IMREAD_COLOR)
        payload = self.inputs.jpeg_observation()

        def encode():
            for frame in bgr:
                cv2.imencode(".jpg", frame, params)

        def decode():
            for buf in buffers:
                cv2.imdecode(buf, flag)

        rows = [
            Row("floor_jpeg_encode_x4", "cv2.imencode, 4 x 320x280 q90, sequential, BGR in", _timed(encode)),
            Row("floor_jpeg_decode_x4", "cv2.imdecode, 4 frames, sequential, RGB out", _timed(decode)),
        ]
        for transport in ("ipc", "tcp"):
            sock = self.req_socket(self.start_echo(transport))

            def echo(sock=sock):
                sock.send(payload, copy=False)
                sock.recv(copy=False)

            rows.append(Row(f"floor_zmq_echo_{transport}",
                            f"plain REQ/REP echo, {len(payload) / 1000:.0f} KB each way", _timed(echo)))
        return rows

    def server_rows(self) -> list[Row]:
        rows = []
        for name, transport, payload, note in (
                ("server_rtt_ipc", "ipc", self.inputs.jpeg_observation(), "JPEG"),
                ("server_rtt_tcp", "tcp", self.inputs.jpeg_observation(), "JPEG"),
                ("server_rtt_raw_ipc", "ipc", self.inputs.raw_observation(), "raw rgb8, no codec")):
            service, _, address = self.start_server(transport)
            client = self.req_client(address)
            stages = StageStats()

            def exchange(client=client, payload=payload, stages=stages):
                timer = StageTimer()
                reply = client.request(payload)
                timer.mark("round_trip")
                protocol.parse_action_response(reply, layout.ACTION_HORIZON, layout.ACTION_DIM)
                timer.mark("unpack")
                stages.add(timer.stages)

            rows.append(Row(name, f"pre-encoded {len(payload) / 1000:.0f} KB {note} -> mock server -> parsed",
                            _timed(exchange), service=service, client_stages=stages))
        return rows

    def client_rows(self) -> list[Row]:
        rows = []
        for name, transport, link_cls, overrides, note in (
                ("e2e_ipc", "ipc", AlfieLink, {}, "JPEG"),
                ("e2e_tcp", "tcp", AlfieLink, {}, "JPEG"),
                ("e2e_raw_ipc", "ipc", AlfieLink, {"image_encoding": "raw"}, "raw rgb8"),
                ("gr00t_rtt_ipc", "ipc", Gr00tLink, {"server_protocol": "gr00t"}, "Isaac-GR00T npy"),
                ("gr00t_rtt_tcp", "tcp", Gr00tLink, {"server_protocol": "gr00t"}, "Isaac-GR00T npy")):
            service, server_config, _ = self.start_server(transport)
            config = self.endpoints.client_config(server_config, **overrides)
            client = self.req_client(config.address)
            link = link_cls(config, client, self.codec(config.encode_threads))
            if isinstance(link, Gr00tLink):
                link.modality()  # fetched once per connection, as the real client does
            stages = StageStats()
            snap = self.inputs.snapshot()

            def exchange(link=link, snap=snap, stages=stages) -> float:
                timer = StageTimer()
                reply = link.exchange(snap, snap.state, timer, None, 5000)
                total = timer.total_ms()
                if reply.actions.shape != (layout.ACTION_HORIZON, layout.ACTION_DIM):
                    raise RuntimeError(f"{reply.actions.shape} chunk")
                stages.add(timer.stages)
                return total

            rows.append(Row(name, f"4 x 640x480 rgb8 + state -> client path ({note}) -> mock server -> chunk",
                            exchange, service=service, client_stages=stages))
        return rows

    def close(self) -> None:
        for echo in self._echoes:
            echo.stop()
        for server in self._servers:
            server.stop()
        for close in reversed(self._closers):
            close()
        self.endpoints.close()


def run_interleaved(rows: list[Row], iterations: int, warmup: int, progress=None, seed: int = 0) -> None:
    """`warmup` unrecorded rounds, then `iterations` rounds of one sample per row, each round in a fresh
    (seeded) random order: drift hits every row alike, and no row always follows the same neighbour
    (a row after a 1 MB message finds warm allocator pages; a fixed rotation would keep that bias)."""
    rng = np.random.default_rng(seed)
    for i in range(warmup + iterations):
        for index in rng.permutation(len(rows)):
            row = rows[index]
            value = row.sample()
            if i >= warmup:
                row.samples.append(value)
        if progress and i >= warmup and (i - warmup + 1) % max(1, iterations // 4) == 0:
            progress(f"  latency: {i - warmup + 1}/{iterations} iterations")


def summarize(samples, notes: str = "") -> dict:
    values = np.asarray(samples, dtype=np.float64)
    result = {**percentiles(values), "mean": round(float(values.mean()), 3) if values.size else 0.0,
              "n": int(values.size), "notes": notes}
    return result


# -- throughput ------------------------------------------------------------------------------
def throughput_burst(address: str, payload: bytes, clients: int, seconds: float) -> tuple[int, float, list]:
    """`clients` threads sending back to back for `seconds`; (replies, elapsed s, latencies ms)."""
    barrier = threading.Barrier(clients + 1)
    counts = [0] * clients
    latencies: list[list[float]] = [[] for _ in range(clients)]
    deadline = [0.0]

    def worker(index: int) -> None:
        client = ReqClient(address, REQUEST_TIMEOUT_MS)
        try:
            client.request(payload)  # connect outside the measured window
            barrier.wait()
            end = deadline[0]
            while True:
                start = time.perf_counter()
                if start >= end:
                    break
                client.request(payload)
                done = time.perf_counter()
                if done <= end:
                    counts[index] += 1
                    latencies[index].append((done - start) * 1000.0)
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    deadline[0] = time.perf_counter() + seconds  # written before the barrier lets any worker read it
    barrier.wait()
    for thread in threads:
        thread.join(timeout=seconds + REQUEST_TIMEOUT_MS / 1000.0 + 5.0)
    elapsed = seconds
    return sum(counts), elapsed, [v for per in latencies for v in per]


def measure_throughput(rows: LatencyRows, profile: Profile, levels=(1, 2, 4), progress=None) -> tuple[dict, PolicyService]:
    service, _, address = rows.start_server("ipc")
    payload = rows.inputs.jpeg_observation()
    totals = {n: [0, 0.0, []] for n in levels}
    for _ in range(profile.throughput_rounds):  # interleaved rounds, like the latency rows
        for n in levels:
            count, elapsed, lats = throughput_burst(address, payload, n, profile.throughput_burst_s)
            totals[n][0] += count
            totals[n][1] += elapsed
            totals[n][2].extend(lats)
    result = {}
    for n, (count, elapsed, lats) in totals.items():
        rps = count / elapsed if elapsed else 0.0
        result[n] = {"clients": n, "requests": count, "seconds": round(elapsed, 3), "req_per_s": round(rps, 1),
                     "latencies": lats}
        if progress:
            progress(f"  throughput: {n} client(s) {rps:.0f} req/s")
    return result, service


# -- command loop inside the real nodes ------------------------------------------------------
class _RecordingStats(RollingStats):
    """RollingStats that also keeps every sample (the plot shows the whole distribution)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.values: list[float] = []

    def add(self, value_ms: float) -> None:
        super().add(value_ms)
        self.values.append(value_ms)


def measure_command_loop(seconds: float, domain_id: int, directory: str, progress=None) -> dict:
    """GrootServer (mock) + GrootClient + SimRobot on the shared rig, one executor thread per node."""
    try:
        from alfie_gr00t.tools.rig import NodeRig
        import rclpy  # noqa: F401 - only to say why the row is skipped
    except ImportError as exc:
        return {"skipped": f"rclpy or ROS messages unavailable: {exc}"}

    # Refill threshold = the whole horizon: the client asks for a chunk at every chance, so a
    # request is sent at target_fps (15 Hz) throughout, the most inference traffic it ever makes.
    with NodeRig(domain_id, os.path.join(directory, "loop.sock"), client={"refill_threshold_steps": 16.0},
                 log_level="warn") as rig:
        rig.spin()
        client, server = rig.client, rig.server
        if not rig.activate(timeout_s=10.0):
            return {"skipped": f"client did not become ACTIVE (state {client.machine.state.value})"}
        if progress:
            progress(f"  command loop: ACTIVE, measuring {seconds:.0f} s")
        recorder = _RecordingStats(window=100000)
        client.core.command_period_ms = recorder  # only periods while ACTIVE count
        ok_before = client.worker.requests_ok
        time.sleep(seconds)
        period = recorder.snapshot()
        samples = list(recorder.values)
        status = client.status()
        return {
            **{k: period[k] for k in ("p50", "p95", "p99", "mean", "count")},
            "max": round(max(samples), 3) if samples else 0.0,
            "samples": samples,
            "requests_ok": client.worker.requests_ok - ok_before,
            "requests_failed": status["requests_failed"],
            "round_trip_p50_ms": status["round_trip_p50_ms"],
            "commands_published": status["commands_published"],
            "client_stages": status["stages_ms"],
            "server_stages": server.service.stages.summary(),
        }


# -- crossfade trajectory (deterministic, fake clock) -----------------------------------------
def crossfade_trajectory(crossfade_steps: int, seconds: float = 2.0, rate_hz: float = 100.0,
                         latency_s: float = 0.04, joint: int = 7, jump: float = 0.12) -> dict:
    """Drive ActionScheduler at `rate_hz` with chunks that disagree by ±`jump` at every boundary.

    The policy's intended motion is a slow sine; chunk k adds (-1)^k * jump, as two
    consecutive policy calls that disagree would. A request goes out when the scheduler asks
    for a refill and its chunk arrives `latency_s` later (stamped with the observation time).
    """
    now = [0.0]
    scheduler = ActionScheduler(SchedulerConfig(crossfade_steps=crossfade_steps, watchdog_timeout_s=10.0),
                                clock=lambda: now[0])
    config = scheduler.config
    refill = RefillPolicy(RefillConfig(refill_threshold_steps=8.0))
    pending: tuple[float, float] | None = None  # (arrival time, observation time)
    chunk_index = 0
    times, values, arrivals = [], [], []

    def intended(t):
        return 0.3 * np.sin(2 * np.pi * 0.4 * t)

    for tick in range(int(seconds * rate_hz) + 1):
        t = tick / rate_hz
        now[0] = t
        if pending is not None and t >= pending[0]:
            obs_time = pending[1]
            steps = obs_time + np.arange(config.action_horizon) / config.action_step_hz
            chunk = np.zeros((config.action_horizon, config.action_dim))
            chunk[:, joint] = intended(steps) + (jump if chunk_index % 2 == 0 else -jump)
            scheduler.add_chunk(chunk, obs_time)
            arrivals.append(t)
            chunk_index += 1
            pending = None
        if pending is None and refill.request_due(scheduler.remaining_steps(t)):
            pending = (t + latency_s, t)
        command = scheduler.command(t)
        times.append(t)
        values.append(float(command[joint]) if command is not None else math.nan)
    series = np.asarray(values)
    steps = np.abs(np.diff(series))
    steps = steps[np.isfinite(steps)]
    return {"crossfade_steps": crossfade_steps, "times": times, "values": values, "arrivals": arrivals,
            "max_step": round(float(steps.max()) if steps.size else 0.0, 4)}


# -- driver ---------------------------------------------------------------------------------
def run_benchmark(profile: Profile, domain_id: int, mode: str, log=print) -> tuple[dict, dict]:
    """Everything; returns (JSON-able result, raw latency samples per row for the plot)."""
    started = time.perf_counter()
    facts = report.machine_facts(mode=mode, iterations=profile.iterations, warmup=profile.warmup)
    inputs = Inputs.build()
    latency = LatencyRows(inputs)
    try:
        rows = latency.floor_rows() + latency.server_rows() + latency.client_rows()
        log(f"latency: {len(rows)} rows x {profile.iterations} iterations, interleaved")
        run_interleaved(rows, profile.iterations, profile.warmup, log)
        log("throughput: 1, 2, 4 clients over IPC, JPEG")
        throughput, tp_service = measure_throughput(latency, profile, progress=log)
    finally:
        latency.close()
    log("command loop: GrootServer (mock) + GrootClient + SimRobot")
    directory = tempfile.mkdtemp(prefix="agbench_", dir="/tmp")
    try:
        command = measure_command_loop(profile.command_loop_s, domain_id, directory, log)
    finally:
        shutil.rmtree(directory, ignore_errors=True)

    table = {row.name: summarize(row.samples, row.notes) for row in rows}
    samples = {row.name: row.samples for row in rows}
    for n, tp in throughput.items():
        name = f"throughput_{n}_client{'s' if n > 1 else ''}"
        table[name] = summarize(tp["latencies"], f"{tp['req_per_s']:.0f} req/s over IPC, JPEG, "
                                                 f"{tp['requests']} requests in {tp['seconds']} s")
        table[name]["req_per_s"] = tp["req_per_s"]
        samples[name] = tp["latencies"]
    if "skipped" in command:
        table["command_period"] = {"p50": None, "p95": None, "p99": None, "mean": None, "n": 0,
                                   "notes": f"skipped: {command['skipped']}"}
    else:
        table["command_period"] = {
            "p50": command["p50"], "p95": command["p95"], "p99": command["p99"], "mean": command["mean"],
            "n": int(command["count"]),
            "notes": f"GrootClient 100 Hz command thread, max {command['max']}; {command['requests_ok']} requests "
                     f"({command['requests_ok'] / profile.command_loop_s:.1f}/s) meanwhile, "
                     f"rtt p50 {command['round_trip_p50_ms']} ms"}
        samples["command_period"] = command["samples"]

    ratios = compute_ratios(table)
    stages = {"server": {row.name: row.service.stages.summary() for row in rows if row.service},
              "client": {row.name: row.client_stages.summary() for row in rows if row.client_stages}}
    stages["server"]["throughput"] = tp_service.stages.summary()
    if "skipped" not in command:
        stages["server"]["command_loop_node"] = command["server_stages"]
        stages["client"]["command_loop_node"] = command["client_stages"]
    result = {
        "meta": {**facts, "opencv": cv2.__version__, "pyzmq": zmq.__version__, "numpy": np.__version__,
                 "jpeg_observation_bytes": len(inputs.jpeg_observation()),
                 "raw_observation_bytes": len(inputs.raw_observation()),
                 "opencv_threads": cv2.getNumThreads(), "ros_domain_id": domain_id,
                 "wall_s": round(time.perf_counter() - started, 1)},
        "rows": table,
        "throughput": {str(n): {k: v for k, v in tp.items() if k != "latencies"} for n, tp in throughput.items()},
        "command_loop": {k: v for k, v in command.items() if k not in ("samples",)},
        "ratios": ratios,
        "targets": compute_targets(ratios, throughput, command),
        "stages": stages,
        "crossfade": {str(k): crossfade_trajectory(k) for k in (0, 3)},
    }
    return result, samples


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="groot_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    parser.add_argument("--plot", metavar="FILE.png", help="latency distributions and crossfade trajectory "
                                                           "(needs matplotlib)")
    parser.add_argument("--quick", action="store_true", help="~10 s smoke run instead of the ~60 s measurement")
    parser.add_argument("--iterations", type=int, help="latency samples per row (default 1000, quick 60)")
    parser.add_argument("--domain-id", type=int, default=report.env_domain_id(),
                        help="ROS domain for the command-loop nodes (default: $ROS_DOMAIN_ID)")
    args = parser.parse_args(argv)
    discovery.confine_to_localhost()  # before any node starts: DDS stays on loopback
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("groot_bench: --plot needs matplotlib, which is an optional extra: pip install matplotlib",
                  file=sys.stderr)
            return 2
    profile = QUICK if args.quick else DEFAULT
    if args.iterations is not None:
        if args.iterations < 1:
            parser.error("--iterations must be >= 1")
        profile = Profile(args.iterations, profile.warmup, profile.throughput_rounds,
                          profile.throughput_burst_s, profile.command_loop_s)
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    result, samples = run_benchmark(profile, args.domain_id, "quick" if args.quick else "default", log)
    result = report.json_safe(result)
    print(format_report(result), flush=True)
    if args.json:
        log(f"wrote {report.write_json(result, args.json)}")
    if args.plot:
        write_plot(result, samples, args.plot)
        log(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

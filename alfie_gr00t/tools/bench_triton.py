"""Many robots, one model: in-process engine vs Triton without and with dynamic batching.

    python -m alfie_gr00t.tools.bench_triton [--robots 1,2,4,8,16] [--rate 15] [--duration 3]
                                       [--mock-delay-ms 20] [--json FILE] [--plot FILE.png]

Each simulated robot is one groot_server engine (a thread) asking for a chunk at `rate`
requests/s with one request in flight at most, as the robot client does; a request that
is due while the previous one still runs goes out when that one returns. The model is
the mock with a fixed cost per execution (`--mock-delay-ms`, whatever the batch size):
a stand-in for a GPU whose batch of 16 costs about what a batch of 1 does. Rows:

- in-process: one engine in one process, one request at a time (today's groot_server
  serving several robots, or several robots sharing one GPU without a batcher);
- triton, no batching: the same model behind Triton, requests executed one by one;
- triton, dynamic batching: the shipped config.pbtxt (preferred sizes, 2 ms queue delay).

Plus the wire choice: what one request costs as decoded uint8 frames vs as JPEG (encode
on groot_server + decode in the model) -- measured, not assumed. Servers bind 127.0.0.1
only; every loop is bounded by the duration. Needs `make triton-venv`.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from alfie_gr00t.tools import report, triton_dev
from alfie_gr00t.engines.base import EngineConfig, ObservationBatch
from alfie_gr00t.engines.mock import MockEngine

MODES = ("in-process", "triton, no batching", "triton, dynamic batching")


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def natural_frame(seed: int, height: int = 280, width: int = 320) -> np.ndarray:
    """A camera-like frame (smooth shapes plus sensor noise) so JPEG sizes are realistic."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.zeros((height, width, 3), np.float32)
    for _ in range(12):
        cy, cx, r = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(15, 90)
        image[(y - cy) ** 2 + (x - cx) ** 2 < r * r] = rng.uniform(0, 255, 3)
    image += 40 * np.sin(x / rng.uniform(5, 30))[..., None] + rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def observation(config: EngineConfig, seed: int) -> ObservationBatch:
    rng = np.random.default_rng(seed)
    return ObservationBatch(
        images={name: natural_frame(seed * 10 + i, config.image_height, config.image_width)[None]
                for i, name in enumerate(config.camera_names)},
        state=rng.uniform(-0.5, 0.5, (1, config.action_dim)).astype(np.float32), language=("pick up the can",))


def run_robots(infer_fns: list, batches: list[ObservationBatch], rate: float, duration: float) -> dict:
    """Each robot: one request due every 1/rate s (random phase), at most one in flight."""
    latencies: list[list[float]] = [[] for _ in infer_fns]
    errors = [0] * len(infer_fns)
    start = time.monotonic() + 0.2
    stop = start + duration
    phases = np.random.default_rng(0).uniform(0, 1.0 / rate, len(infer_fns))

    def robot(i: int) -> None:
        due = start + phases[i]
        while True:
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            if time.monotonic() >= stop:
                return
            t0 = time.perf_counter()
            try:
                infer_fns[i](batches[i])
                latencies[i].append((time.perf_counter() - t0) * 1000.0)
            except Exception:  # counted; the robot would hold
                errors[i] += 1
            due = max(due + 1.0 / rate, time.monotonic())

    threads = [threading.Thread(target=robot, args=(i,), daemon=True) for i in range(len(infer_fns))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=duration + 30)
    flat = [v for per_robot in latencies for v in per_robot]
    return {"robots": len(infer_fns), "offered_rps": len(infer_fns) * rate, "achieved_rps": len(flat) / duration,
            "p50_ms": percentile(flat, 50), "p99_ms": percentile(flat, 99), "errors": sum(errors),
            "requests": len(flat)}


def in_process_rows(config: EngineConfig, robots: list[int], rate: float, duration: float, delay_ms: float) -> list:
    engine = MockEngine(EngineConfig(mock_mode=True, mock_delay_ms=delay_ms))
    lock = threading.Lock()  # one model, one request at a time

    def infer(batch):
        with lock:
            return engine.infer(batch)

    rows = []
    for count in robots:
        batches = [observation(config, i) for i in range(count)]
        row = run_robots([infer] * count, batches, rate, duration)
        rows.append({"mode": MODES[0], "mean_batch": 1.0, **row})
    return rows


def triton_rows(mode: str, config: EngineConfig, venv, robots: list[int], rate: float, duration: float,
                delay_ms: float, workdir: Path) -> list:
    from alfie_gr00t.engines.triton_engine import TritonEngine

    batching = mode == MODES[2]
    repo = triton_dev.write_repository(workdir / ("batching" if batching else "single"), models={
        triton_dev.MODEL_NAME: {"dynamic_batching": batching, "params": {"mock_delay_ms": delay_ms}}})
    rows = []
    with triton_dev.ServerProcess(repo, venv=venv) as server:
        engine_config = EngineConfig(engine="triton", triton_url=server.grpc_url, triton_timeout_ms=5000.0)
        for count in robots:
            engines = [TritonEngine(engine_config) for _ in range(count)]
            batches = [observation(config, i) for i in range(count)]
            before = server.model_stats()
            row = run_robots([e.infer for e in engines], batches, rate, duration)
            after = server.model_stats()
            for engine in engines:
                engine.close()
            executions = after["execution_count"] - before["execution_count"]
            inferences = after["inference_count"] - before["inference_count"]
            rows.append({"mode": mode, "mean_batch": inferences / executions if executions else 0.0, **row})
    return rows


def wire_rows(venv, workdir: Path, repeats: int = 60) -> dict:
    """One robot, no model cost: a request as uint8 frames vs the JPEG path's parts."""
    import cv2

    from alfie_gr00t.engines.triton_engine import TritonEngine

    config = EngineConfig()
    batch = observation(config, 1)
    frames = [batch.images[name][0] for name in config.camera_names]
    encode, decode, sizes = [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jpegs = [cv2.imencode(".jpg", f[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes() for f in frames]
        t1 = time.perf_counter()
        for data in jpegs:
            cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        t2 = time.perf_counter()
        encode.append((t1 - t0) * 1000)
        decode.append((t2 - t1) * 1000)
        sizes.append(sum(len(j) for j in jpegs))
    # the same request with 64x56 frames (about the bytes a JPEG request carries) isolates the transfer cost
    small_h, small_w = 56, 64
    repo = triton_dev.write_repository(workdir / "wire", models={
        triton_dev.MODEL_NAME: {"max_queue_delay_us": 0, "dynamic_batching": False},
        "groot_policy_small": {"dynamic_batching": False, "image_size": (small_h, small_w)}})
    result = {"raw_bytes": int(sum(f.nbytes for f in frames)), "jpeg_bytes": int(statistics.median(sizes)),
              "jpeg_encode_ms": statistics.median(encode), "jpeg_decode_ms": statistics.median(decode)}
    with triton_dev.ServerProcess(repo, venv=venv) as server:
        server.wait_ready(60, model="groot_policy_small")
        for key, model, cfg in (("raw_round_trip_ms", "groot_policy", config),
                                ("small_round_trip_ms", "groot_policy_small",
                                 EngineConfig(image_width=small_w, image_height=small_h))):
            engine = TritonEngine(EngineConfig(engine="triton", triton_url=server.grpc_url, triton_model=model,
                                               image_width=cfg.image_width, image_height=cfg.image_height))
            sample = observation(cfg, 2)
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                engine.infer(sample)
                times.append((time.perf_counter() - t0) * 1000)
            engine.close()
            result[key] = statistics.median(times[5:])
    result["small_bytes"] = 4 * small_h * small_w * 3
    result["jpeg_path_ms"] = result["jpeg_encode_ms"] + result["small_round_trip_ms"] + result["jpeg_decode_ms"]
    return result


def format_table(rows: list[dict]) -> str:
    return report.table(
        ["mode", "robots", "offered/s", "served/s", "p50 ms", "p99 ms", "batch", "errors"],
        [[r["mode"], r["robots"], f"{r['offered_rps']:.0f}", f"{r['achieved_rps']:.1f}", f"{r['p50_ms']:.1f}",
          f"{r['p99_ms']:.1f}", f"{r['mean_batch']:.2f}", r["errors"]] for r in rows])


def format_wire(w: dict) -> str:
    return (f"wire, one request of 4 frames 320x280 (one robot, model cost 0, medians):\n"
            f"  uint8 frames: {w['raw_bytes'] / 1e6:.2f} MB, Triton round trip {w['raw_round_trip_ms']:.2f} ms\n"
            f"  JPEG q90:     {w['jpeg_bytes'] / 1e3:.0f} KB = encode {w['jpeg_encode_ms']:.2f} ms + round trip with "
            f"{w['small_bytes'] / 1e3:.0f} KB {w['small_round_trip_ms']:.2f} ms + decode {w['jpeg_decode_ms']:.2f} ms "
            f"= {w['jpeg_path_ms']:.2f} ms")


def plot(rows: list[dict], path: Path) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no plot written (pip install matplotlib)"
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for mode in MODES:
        mine = [r for r in rows if r["mode"] == mode]
        if not mine:
            continue
        robots = [r["robots"] for r in mine]
        ax1.plot(robots, [r["achieved_rps"] for r in mine], marker="o", label=mode)
        ax2.plot(robots, [r["p99_ms"] for r in mine], marker="o", label=mode)
    offered = sorted({r["robots"] for r in rows})
    ax1.plot(offered, [n * rows[0]["offered_rps"] / rows[0]["robots"] for n in offered], "k--", label="offered")
    ax1.set(xlabel="robots", ylabel="requests/s served", title="throughput")
    ax2.set(xlabel="robots", ylabel="p99 latency (ms)", title="latency", yscale="log")
    ax1.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return f"plot written to {path}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_triton", description=__doc__.split("\n\n")[0])
    parser.add_argument("--robots", default="1,2,4,8,16")
    parser.add_argument("--rate", type=float, default=15.0, help="requests/s per robot")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per row")
    parser.add_argument("--mock-delay-ms", type=float, default=20.0, help="model cost per execution")
    parser.add_argument("--venv", type=Path, default=None, help="environment with nvidia-pytriton")
    parser.add_argument("--json", type=Path, default=Path("bench_out/triton.json"))
    parser.add_argument("--plot", type=Path, default=Path("bench_out/triton.png"))
    parser.add_argument("--skip-wire", action="store_true")
    args = parser.parse_args(argv)
    robots = [int(n) for n in args.robots.split(",") if n.strip()]
    if not robots or min(robots) < 1 or max(robots) > 64 or not 0 < args.duration <= 60:
        parser.error("robots must be 1..64 and duration in (0, 60] s")
    venv = args.venv or triton_dev.default_venv()
    if venv is None:
        print("no Triton environment: run `make triton-venv` (or pass --venv)", file=sys.stderr)
        return 2
    config = EngineConfig()
    meta, started = report.machine_facts(mode="triton"), time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="alfie_bench_triton_"))
    print(f"{len(robots)} robot counts x {len(MODES)} modes x {args.duration:g} s, {args.rate:g} requests/s per "
          f"robot, model cost {args.mock_delay_ms:g} ms per execution", flush=True)
    try:
        rows = in_process_rows(config, robots, args.rate, args.duration, args.mock_delay_ms)
        for mode in MODES[1:]:
            rows += triton_rows(mode, config, venv, robots, args.rate, args.duration, args.mock_delay_ms, workdir)
        print(format_table(rows))
        wire = None if args.skip_wire else wire_rows(venv, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if wire:
        print(format_wire(wire))
    meta["wall_s"] = round(time.perf_counter() - started, 1)
    print(report.footer(meta))
    written = report.write_json({"meta": meta, "rows": rows, "wire": wire, "rate": args.rate,
                                 "duration_s": args.duration, "mock_delay_ms": args.mock_delay_ms}, args.json)
    print(f"results written to {written}")
    print(plot(rows, args.plot))
    return 0


if __name__ == "__main__":
    sys.exit(main())

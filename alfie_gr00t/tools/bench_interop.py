"""Isaac-GR00T interop benchmark: upstream-style PolicyClient loops against our server, both generations.

    python -m alfie_gr00t.tools.bench_interop [--iterations 200] [--warmup 20] [--json FILE]

Rows (4 cameras 280x320 uint8, B=1, T=1, the 21-D state in four groups, TCP 127.0.0.1):

- ``n1.6 client -> ours`` / ``n1.7 client -> ours``: a client loop written here from upstream's
  PolicyClient wire behaviour (``msgpack.packb(..., default=hook)``, ``unpackb(..., object_hook=hook)``;
  N1.6 npy arrays, N1.7 msgpack-numpy envelopes with bin keys), independently of alfie_gr00t.wire,
  against our server (PolicyService + mock engine on its serving thread) in a process of its own;
- when Isaac-GR00T is importable (``gr00t.policy.server_client``): upstream's own PolicyClient
  against upstream's own PolicyServer (a hold policy; it prints every request, to /dev/null here)
  and against ours, side by side in the same run. Without it those rows are skipped, and why is
  printed.

Rows are sampled interleaved (every iteration one call of every row, in a fresh random order), so
machine drift hits all alike. Each server runs in its own process, so the client loop never shares
a GIL with it. Nothing leaves loopback.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import socket
import subprocess
import sys
import time

import msgpack
import numpy as np
import zmq

from alfie_gr00t import layout
from alfie_gr00t.stats import percentiles
from alfie_gr00t.tools import report

HEIGHT, WIDTH = 280, 320
TASK = "find the can and pick it up"
GROUPS = layout.LAYOUT_GROUPS


# -- an upstream-style client, written from upstream's wire behaviour (not alfie_gr00t.wire) -----------
def _npy_default(value):
    if isinstance(value, np.ndarray):
        sink = io.BytesIO()
        np.save(sink, value, allow_pickle=False)
        return {"__ndarray_class__": True, "as_npy": sink.getvalue()}
    return value


def _npy_hook(value):
    if "__ndarray_class__" in value:
        return np.load(io.BytesIO(value["as_npy"]), allow_pickle=False)
    if "__ModalityConfig_class__" in value:
        return value["as_json"]
    return value


def _mnp_default(value):
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "OV":
            raise TypeError("refusing an object/structured array")
        return {b"nd": True, b"type": value.dtype.str, b"kind": b"", b"shape": value.shape,
                b"data": value.data if value.flags["C_CONTIGUOUS"] else value.tobytes()}
    if isinstance(value, (np.bool_, np.number)):
        return {b"nd": False, b"type": value.dtype.str, b"data": value.tobytes()}
    return value


def _mnp_hook(value):
    if b"nd" in value:
        if value.get(b"kind") not in (None, b""):
            raise ValueError("refusing a non-numeric msgpack-numpy payload")
        if value[b"nd"] is True:
            return np.ndarray(buffer=value[b"data"], dtype=np.dtype(value[b"type"]), shape=value[b"shape"])
        return np.frombuffer(value[b"data"], dtype=np.dtype(value[b"type"]))[0]
    if "__ModalityConfig__" in value:
        return value["as_json"]
    return value


class WireLoopClient:
    """upstream PolicyClient.call_endpoint, one generation: build the map, pack, send, recv, unpack, raise on error."""

    def __init__(self, host: str, port: int, generation: str, context: zmq.Context):
        self.socket = context.socket(zmq.REQ)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.RCVTIMEO, 15000)
        self.socket.connect(f"tcp://{host}:{port}")
        self._default = _mnp_default if generation == "n1.7" else _npy_default
        self._hook = _mnp_hook if generation == "n1.7" else _npy_hook
        self._raw = generation == "n1.7"

    def call_endpoint(self, endpoint: str, data=None, requires_input: bool = True):
        request = {"endpoint": endpoint}
        if requires_input:
            request["data"] = data
        self.socket.send(msgpack.packb(request, default=self._default))
        reply = msgpack.unpackb(self.socket.recv(), object_hook=self._hook, raw=False)
        if isinstance(reply, dict) and "error" in reply:
            raise RuntimeError(f"Server error: {reply['error']}")
        return reply

    def get_action(self, observation, options=None):
        return tuple(self.call_endpoint("get_action", {"observation": observation, "options": options}))

    def get_modality_config(self):
        return self.call_endpoint("get_modality_config", requires_input=False)

    def close(self):
        self.socket.close(0)


# -- the observation and the servers -----------------------------------------------------------------
def observation(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    state = np.linspace(-0.2, 0.2, layout.ACTION_DIM).astype(np.float32)
    return {"video": {cam: rng.integers(0, 256, (1, 1, HEIGHT, WIDTH, 3), dtype=np.uint8) for cam in layout.CAMERA_NAMES},
            "state": {g.name: state[None, None, g.start:g.stop].copy() for g in GROUPS},
            "language": {"task": [[TASK]]}}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _serve_ours(port: int) -> None:
    from alfie_gr00t.engines.mock import MockEngine
    from alfie_gr00t.server.config import ServerConfig
    from alfie_gr00t.server.service import BackgroundServer, PolicyService

    config = ServerConfig(mock_mode=True, transport="tcp", bind_host="127.0.0.1", bind_port=port)
    service = PolicyService(MockEngine(config.engine_config()), config)
    with BackgroundServer(service):
        print("ready", flush=True)
        sys.stdin.read()  # until the parent closes our stdin
    service.close()


def _serve_upstream(port: int) -> None:
    from gr00t.data.types import ModalityConfig
    from gr00t.policy.server_client import PolicyServer

    class HoldPolicy:
        def get_action(self, observation, options=None):
            return ({k: np.repeat(v[:, -1:], layout.ACTION_HORIZON, axis=1) for k, v in observation["state"].items()},
                    {})

        def reset(self, options=None):
            return {}

        def get_modality_config(self):
            names = [g.name for g in GROUPS]
            return {"video": ModalityConfig([0], list(layout.CAMERA_NAMES)), "state": ModalityConfig([0], names),
                    "action": ModalityConfig(list(range(layout.ACTION_HORIZON)), names),
                    "language": ModalityConfig([0], ["task"])}

    server = PolicyServer(HoldPolicy(), host="127.0.0.1", port=port)
    real_stdout = sys.stdout
    sys.stdout = open(os.devnull, "w")  # upstream prints every request; formatting it stays in the cost
    print("ready", file=real_stdout, flush=True)
    server.run()


@contextlib.contextmanager
def server_process(kind: str):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "alfie_gr00t.tools.bench_interop", f"--serve-{kind}", str(port)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"{kind} server did not start (exit code {proc.poll()})")
        yield port
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:  # upstream's run loop only stops on kill
            proc.kill()
            proc.wait(timeout=5)


def upstream_missing() -> str | None:
    try:
        import gr00t.policy.server_client  # noqa: F401
    except Exception as exc:  # ModuleNotFoundError, or an import error inside the package
        return f"{type(exc).__name__}: {exc}"
    return None


def run(iterations: int, warmup: int, log=print) -> dict:
    obs = observation()
    context = zmq.Context()
    rows: dict[str, object] = {}
    skipped = upstream_missing()
    with contextlib.ExitStack() as stack:
        ours = stack.enter_context(server_process("ours"))
        for generation in ("n1.6", "n1.7"):
            rows[f"{generation} client -> ours"] = WireLoopClient("127.0.0.1", ours, generation, context)
        if skipped is None:
            from gr00t.policy.server_client import PolicyClient

            upstream = stack.enter_context(server_process("upstream"))
            rows["upstream n1.6 PolicyClient -> upstream PolicyServer"] = PolicyClient("127.0.0.1", upstream)
            rows["upstream n1.6 PolicyClient -> ours"] = PolicyClient("127.0.0.1", ours)
        for client in rows.values():
            client.get_modality_config()
            for _ in range(warmup):
                client.get_action(obs)
        samples = {name: [] for name in rows}
        order = list(rows)
        shuffle = random.Random(0)
        for _ in range(iterations):
            shuffle.shuffle(order)
            for name in order:
                start = time.perf_counter()
                action, _ = rows[name].get_action(obs)
                samples[name].append((time.perf_counter() - start) * 1000.0)
                if np.asarray(action["head"]).shape != (1, layout.ACTION_HORIZON, 3):
                    raise RuntimeError(f"{name}: bad action shape {np.asarray(action['head']).shape}")
        for client in rows.values():
            close = getattr(client, "close", None)
            if close is not None:
                close()
    context.term()
    result = {"iterations": iterations, "rows": {}, "upstream_skipped": skipped}
    for name, values in samples.items():
        p = percentiles(values, (50, 95, 99))
        result["rows"][name] = {"p50_ms": p["p50"], "p95_ms": p["p95"], "p99_ms": p["p99"]}
    return result


def format_report(result: dict) -> str:
    lines = [f"Isaac-GR00T interop, {result['iterations']} calls per row, 4 x {WIDTH}x{HEIGHT} uint8, B=1, TCP loopback",
             report.table(["row", "p50 ms", "p95 ms", "p99 ms"],
                          [[name, f"{r['p50_ms']:.2f}", f"{r['p95_ms']:.2f}", f"{r['p99_ms']:.2f}"]
                           for name, r in result["rows"].items()])]
    if result["upstream_skipped"]:
        lines.append(f"upstream rows skipped: gr00t.policy.server_client is not importable "
                     f"({result['upstream_skipped']}); put Isaac-GR00T on PYTHONPATH to add them")
    if "meta" in result:
        lines.append(report.footer(result["meta"]))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--json", help="also write the result here")
    parser.add_argument("--serve-ours", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-upstream", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_ours:
        _serve_ours(args.serve_ours)
        return 0
    if args.serve_upstream:
        _serve_upstream(args.serve_upstream)
        return 0
    if args.iterations < 1 or args.warmup < 0:
        parser.error("--iterations must be >= 1 and --warmup >= 0")
    meta, started = report.machine_facts(mode="interop"), time.perf_counter()
    result = run(args.iterations, args.warmup)
    result["meta"] = {**meta, "wall_s": round(time.perf_counter() - started, 1)}
    print(format_report(result))
    if args.json:
        print(f"wrote {report.write_json(result, args.json)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""engine:=triton against a real tritonserver (nvidia-pytriton, Python backend, CPU) on 127.0.0.1.

The server and its model run in .venv-triton (`make triton-venv`); these tests run in the
main environment and talk to it over gRPC/HTTP on ports of their own. Without that
environment they skip, except under `make test` (ALFIE_REQUIRE_TRITON=1), where they fail.
Every loop is bounded in count and time; every server is stopped in teardown.
"""

import os
import subprocess
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest

from alfie_gr00t.wire import protocol
from alfie_gr00t.tools import triton_dev
from alfie_gr00t.server.config import ServerConfig
from alfie_gr00t.engines.base import EngineConfig, EngineError, ObservationBatch, dummy_batch
from alfie_gr00t.engines.mock import MockEngine
from alfie_gr00t.engines.registry import create_engine

from support.triton_server import serving_triton, triton_venv

REPO = Path(__file__).resolve().parents[1]
MOCK_DELAY_MS = 20  # a model execution takes this long: concurrent robots queue up behind it


@pytest.fixture(scope="module")
def triton():
    """One server for the module: the shipped model (mock) plus one that cannot load."""
    with serving_triton({
        "groot_policy": {"max_queue_delay_us": 20000, "params": {"mock_delay_ms": MOCK_DELAY_MS}},
        "groot_broken": {"params": {"engine": "onnx", "model_checkpoint": "/nonexistent/policy.onnx"}},
    }) as server:
        yield server


def engine_config(server, **overrides) -> EngineConfig:
    values = {"engine": "triton", "triton_url": server.grpc_url, "triton_timeout_ms": 2000.0}
    values.update(overrides)
    return EngineConfig(**values)


def random_batch(config: EngineConfig, size: int, seed: int) -> ObservationBatch:
    rng = np.random.default_rng(seed)
    shape = (size, config.image_height, config.image_width, 3)
    return ObservationBatch(
        images={name: rng.integers(0, 256, shape, dtype=np.uint8) for name in config.camera_names},
        state=rng.uniform(-1, 1, (size, config.action_dim)).astype(np.float32),
        language=tuple(f"task {seed} {i}" for i in range(size)))


# -- pieces that need no server -------------------------------------------------------
def test_target_parsing():
    from alfie_gr00t.engines.triton_engine import parse_target

    target = parse_target(EngineConfig(model_checkpoint="triton://gpu-pool.lab:9001/groot_policy/2"))
    assert (target.url, target.model, target.version, target.tls) == ("gpu-pool.lab:9001", "groot_policy", "2", False)
    assert parse_target(EngineConfig(model_checkpoint="triton://pool/m")).url == "pool:8001"
    secure = parse_target(EngineConfig(engine="triton", triton_url="grpcs://triton.lab:443", triton_model="p"))
    assert (secure.url, secure.tls, secure.version) == ("triton.lab:443", True, "")
    with pytest.raises(EngineError, match="triton://host:port/model"):
        parse_target(EngineConfig(model_checkpoint="triton://pool:8001/"))


def test_metadata_check_names_every_mismatch():
    from alfie_gr00t.engines.triton_engine import TritonTarget, check_metadata

    config = EngineConfig(image_width=640, action_horizon=20)
    metadata = {
        "inputs": [{"name": n, "datatype": "UINT8", "shape": ["-1", "280", "320", "3"]} for n in config.camera_names[:3]]
        + [{"name": "state", "datatype": "FP16", "shape": ["-1", "21"]},
           {"name": "language", "datatype": "BYTES", "shape": ["-1", "1"]},
           {"name": "depth", "datatype": "FP32", "shape": ["-1", "280", "320"]}],
        "outputs": [{"name": "actions", "datatype": "FP32", "shape": ["-1", "16", "21"]}],
    }
    problems = "; ".join(check_metadata(metadata, 16, config, TritonTarget("h:1", "m")))
    assert "input 'left_wide' is UINT8 [-1, 280, 320, 3], expected UINT8 [-1, 280, 640, 3]" in problems
    assert f"missing input '{config.camera_names[3]}'" in problems
    assert "input 'state' is FP16" in problems and "'depth'" in problems
    assert "action_horizon=20" in problems


def test_server_config_carries_triton_fields():
    config = ServerConfig(engine="triton", triton_url="10.0.0.5:8001", triton_model="m", triton_model_version="3",
                          triton_timeout_ms=250.0).engine_config()
    assert (config.engine, config.triton_url, config.triton_model, config.triton_model_version,
            config.triton_timeout_ms) == ("triton", "10.0.0.5:8001", "m", "3", 250.0)
    with pytest.raises(ValueError, match="engine"):
        ServerConfig(engine="tensorflow")
    with pytest.raises(ValueError, match="triton_timeout_ms"):
        ServerConfig(triton_timeout_ms=0)


def test_edit_config_knobs():
    text = (REPO / "triton_repository" / "groot_policy" / "config.pbtxt").read_text()
    edited = triton_dev.edit_config(text, dynamic_batching=False, max_batch_size=8, instances=2, name="other",
                                    params={"mock_delay_ms": 7, "new_key": "x"})
    assert "dynamic_batching" not in edited.replace("# EDIT: dynamic batching", "")
    assert 'name: "other"' in edited and "max_batch_size: 8" in edited and "count: 2" in edited
    assert 'key: "mock_delay_ms"     value: { string_value: "7" }' in edited
    assert 'key: "new_key" value: { string_value: "x" }' in edited
    delayed = triton_dev.edit_config(text, max_queue_delay_us=123)
    assert "max_queue_delay_microseconds: 123" in delayed and "dynamic_batching {" in delayed


def test_unreachable_triton_refused_at_start():
    triton_venv()  # needs tritonclient
    config = EngineConfig(engine="triton", triton_url=f"127.0.0.1:{triton_dev.free_port()}")
    start = time.monotonic()
    with pytest.raises(EngineError, match="liveness check failed .* Is tritonserver running"):
        create_engine(config)
    assert time.monotonic() - start < 15


# -- against the real server -----------------------------------------------------------
def test_actions_equal_in_process_engine(triton):
    config = engine_config(triton)
    engine = create_engine(config)
    try:
        assert engine.name == "triton" and engine.max_batch_size == 16
        assert engine.describe()["triton_server_version"].startswith("2.")
        reference = MockEngine(EngineConfig(mock_mode=True))
        for size, seed in ((1, 1), (3, 2), (16, 3)):
            batch = random_batch(config, size, seed)
            out = engine.infer(batch)
            np.testing.assert_array_equal(out.actions, reference.infer(batch).actions)
            assert set(out.stages_ms) == {"preprocess", "inference", "postprocess"}
    finally:
        engine.close()


def test_checkpoint_uri_selects_triton(triton):
    engine = create_engine(EngineConfig(mock_mode=True, model_checkpoint=f"triton://{triton.grpc_url}/groot_policy/1"))
    try:
        assert engine.name == "triton" and engine.target.version == "1"
        assert engine.infer(dummy_batch(EngineConfig())).actions.shape == (1, 16, 21)
    finally:
        engine.close()


def test_concurrent_robots_are_batched(triton):
    """8 robots, each with its own groot_server engine, send at once: Triton runs fewer, larger batches."""
    robots, requests_each = 8, 6
    config = engine_config(triton)
    engines = [create_engine(config) for _ in range(robots)]
    before = triton.model_stats()
    errors, mismatches = [], []
    barrier = threading.Barrier(robots, timeout=10)
    reference = MockEngine(EngineConfig(mock_mode=True))

    def robot(index: int) -> None:
        try:
            barrier.wait()
            for step in range(requests_each):
                batch = random_batch(config, 1, 100 * index + step)
                actions = engines[index].infer(batch).actions
                if not np.array_equal(actions, reference.infer(batch).actions):
                    mismatches.append((index, step))
        except Exception as exc:  # reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=robot, args=(i,), daemon=True) for i in range(robots)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    for engine in engines:
        engine.close()
    assert not any(t.is_alive() for t in threads), "robot threads did not finish in 30 s"
    assert not errors and not mismatches, (errors, mismatches)
    after = triton.model_stats()
    inferences = after["inference_count"] - before["inference_count"]
    executions = after["execution_count"] - before["execution_count"]
    assert inferences == robots * requests_each
    assert executions < inferences / 2, f"{inferences} requests in {executions} executions: no batching"
    sizes = {entry["batch_size"] for entry in after["batch_stats"]}
    assert max(sizes) > 1, sizes


def test_absent_model_refused_at_start(triton):
    with pytest.raises(EngineError, match=r"has no model 'no_such_policy' .*groot_policy"):
        create_engine(engine_config(triton, triton_model="no_such_policy"))


def test_model_that_is_not_ready_refused_at_start(triton):
    with pytest.raises(EngineError, match=r"model 'groot_broken' .*is not ready: version 1: UNAVAILABLE.*does not exist"):
        create_engine(engine_config(triton, triton_model="groot_broken"))


def test_model_that_does_not_match_refused_at_start(triton):
    with pytest.raises(EngineError, match=r"does not match .*expected UINT8 \[-1, 480, 640, 3\].*action_horizon=32"):
        create_engine(engine_config(triton, image_width=640, image_height=480, action_horizon=32))


def _observation(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    frames = {name: protocol.RawImage(320, 280, rng.integers(0, 256, (280, 320, 3), dtype=np.uint8).tobytes())
              for name in ServerConfig().camera_names}
    return protocol.encode_observation(time.time(), seed, frames, rng.uniform(-1, 1, 21), "pick up the can")


def test_killed_triton_gives_errors_then_recovers():
    """groot_server answers error replies (the robot holds) while Triton is down, and serves again after."""
    from alfie_gr00t.server.service import PolicyService

    venv = triton_venv()
    workdir = Path(tempfile.mkdtemp(prefix="ag_triton_kill_"))
    repo = triton_dev.write_repository(workdir / "models", REPO / "triton_repository")
    server = triton_dev.ServerProcess(repo, venv=venv).start()
    service = None
    try:
        server.wait_ready(60)
        config = ServerConfig(engine="triton", triton_url=server.grpc_url, triton_timeout_ms=500.0, decode_threads=1)
        service = PolicyService(create_engine(config.engine_config()), config)
        first = msgpack.unpackb(service.respond(_observation(1)))
        assert first["status"] == "ok" and len(first["actions"]) == 16

        server.kill()
        start = time.monotonic()
        down = msgpack.unpackb(service.respond(_observation(2)))
        assert down["status"] == "error" and "Triton" in down["error_message"], down
        assert time.monotonic() - start < 5
        with pytest.raises(EngineError, match="Triton"):
            service.engine.infer(dummy_batch(EngineConfig()))

        restarted = triton_dev.ServerProcess(repo, venv=venv, http_port=server.http_port, grpc_port=server.grpc_port,
                                             metrics_port=server.metrics_port)
        server.cleanup()
        server = restarted.start()
        server.wait_ready(60)
        replies = []
        deadline = time.monotonic() + 15
        for attempt in range(100):  # bounded: gRPC reconnects within about a second
            replies.append(msgpack.unpackb(service.respond(_observation(10 + attempt))))
            if replies[-1]["status"] == "ok" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert replies[-1]["status"] == "ok", replies[-1]
        assert service.status()["engine"] == "triton"
    finally:
        if service is not None:
            service.engine.close()
            service.close()
        server.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


def test_groot_triton_command_starts_and_stops():
    """The dev launcher: ready on 127.0.0.1 ports of its own, exits cleanly on SIGTERM."""
    venv = triton_venv()
    http, grpc, metrics = (triton_dev.free_port() for _ in range(3))
    command = [sys.executable, "-m", "alfie_gr00t.tools.triton_dev", "--venv", str(venv), "--http-port", str(http),
               "--grpc-port", str(grpc), "--metrics-port", str(metrics), "--ready-timeout", "60"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        probe = triton_dev.ServerProcess.__new__(triton_dev.ServerProcess)
        probe.http_port, probe.process = http, None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None and not probe.ready():
            time.sleep(0.2)
        assert probe.ready() and probe.live(), process.stdout.read() if process.poll() is not None else "not ready"
        assert probe.model_ready("groot_policy")
        process.terminate()
        output, _ = process.communicate(timeout=20)
        assert process.returncode == 0, output
        assert f"gRPC 127.0.0.1:{grpc}" in output
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)


# -- TLS on the robot -> Triton hop --------------------------------------------------------
_TLS_PROBE = """
import sys
from alfie_gr00t.engines.base import EngineConfig, EngineError, dummy_batch
from alfie_gr00t.engines.registry import create_engine
config = EngineConfig(engine="triton", triton_url=sys.argv[1], triton_timeout_ms=5000.0)
try:
    engine = create_engine(config)
except EngineError as exc:
    print("REFUSED", exc)
    sys.exit(3)
out = engine.infer(dummy_batch(config, 1))
engine.close()
print("OK", out.actions.shape)
"""


def test_grpcs_to_a_tls_triton_with_a_self_signed_certificate():
    """tritonserver --grpc-use-ssl with a self-signed certificate made here by the openssl CLI. The client
    verifies the server's certificate: trusted only through GRPC_DEFAULT_SSL_ROOTS_FILE_PATH (gRPC's own
    variable for its root store), refused with the system roots, and plain grpc:// gets nothing."""
    venv = triton_venv()
    if shutil.which("openssl") is None:
        pytest.skip("the openssl CLI is not installed: cannot make a self-signed certificate")
    workdir = Path(tempfile.mkdtemp(prefix="ag_tls_"))
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)

    class TlsServer(triton_dev.ServerProcess):
        def command(self):
            return super().command() + ["--grpc-use-ssl=true", f"--grpc-server-cert={cert}",
                                        f"--grpc-server-key={key}", f"--grpc-root-cert={cert}"]

    repo = triton_dev.write_repository(workdir / "models", REPO / "triton_repository", {"groot_policy": {}})
    server = TlsServer(repo, venv=venv).start()
    try:
        server.wait_ready(60, model="groot_policy")

        def probe(url: str, roots: Path | None):
            env = {k: v for k, v in os.environ.items() if k != "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH"}
            if roots is not None:
                env["GRPC_DEFAULT_SSL_ROOTS_FILE_PATH"] = str(roots)
            env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
            return subprocess.run([sys.executable, "-c", _TLS_PROBE, url], env=env, capture_output=True, text=True,
                                  timeout=90)

        trusted = probe(f"grpcs://{server.grpc_url}", cert)
        assert trusted.returncode == 0 and "OK (1, 16, 21)" in trusted.stdout, trusted.stdout + trusted.stderr
        untrusted = probe(f"grpcs://{server.grpc_url}", None)  # system roots: the self-signed cert is unknown
        assert untrusted.returncode == 3 and "REFUSED" in untrusted.stdout, untrusted.stdout + untrusted.stderr
        plain = probe(f"grpc://{server.grpc_url}", None)
        assert plain.returncode == 3 and "REFUSED" in plain.stdout, plain.stdout + plain.stderr
        print(f"\nTLS Triton: trusted -> {trusted.stdout.strip()}; system roots -> refused; plaintext -> refused")
    finally:
        server.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)

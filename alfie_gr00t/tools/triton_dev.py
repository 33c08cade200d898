"""`groot_triton`: start a local Triton Inference Server on the shipped model repository.

For development and tests: it binds 127.0.0.1 only (HTTP, gRPC and metrics ports of
your choice) and runs until Ctrl-C. It uses, in order: --tritonserver PATH; the
nvidia-pytriton wheel in --venv / $ALFIE_TRITON_VENV; a `tritonserver` on PATH (NGC
container, /opt/tritonserver); the `.venv-triton` that `make triton-venv` creates.

nvidia-pytriton ships the server binary, the Python backend and one backend stub per
Python version; `prepare_backends` assembles a backend directory from them for the
environment's interpreter, and the server runs with that interpreter's libpython on
LD_LIBRARY_PATH and its bin/ first on PATH, so the model (triton_repository/groot_policy/1/model.py)
imports that environment's numpy. The model finds alfie_gr00t via $ALFIE_GR00T_PATH.

The ServerProcess / write_repository helpers are what the tests and bench_triton use.
Standard library only (no tritonclient needed to start, probe or stop a server).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import alfie_gr00t

PACKAGE_ROOT = Path(alfie_gr00t.__file__).resolve().parent
MODEL_NAME = "groot_policy"
VENV_ENV = "ALFIE_TRITON_VENV"
LOOPBACK = "127.0.0.1"


class TritonNotFound(RuntimeError):
    """No tritonserver binary could be located; the message says how to get one."""


@dataclass(frozen=True)
class TritonInstall:
    binary: Path
    backend_dir: Path | None  # None: the binary's own default (an NGC container's /opt/tritonserver/backends)
    env: dict


def repo_root() -> Path | None:
    """The source checkout this package was imported from, when it was (not an install)."""
    root = PACKAGE_ROOT.parent
    return root if (root / "setup.py").is_file() else None


def default_repository() -> Path:
    """The shipped model repository: the source tree's triton_repository/ or share/alfie_gr00t/triton_repository."""
    candidates = []
    if repo_root():
        candidates.append(repo_root() / "triton_repository")
    candidates.append(Path(sys.prefix) / "share" / "alfie_gr00t" / "triton_repository")
    # install/lib/pythonX.Y/site-packages/alfie_gr00t -> install/share/alfie_gr00t/triton
    if len(PACKAGE_ROOT.parents) > 3:
        candidates.append(PACKAGE_ROOT.parents[3] / "share" / "alfie_gr00t" / "triton_repository")
    for path in candidates:
        if (path / MODEL_NAME / "config.pbtxt").is_file():
            return path
    raise TritonNotFound(f"no model repository found (looked in {[str(c) for c in candidates]}); pass --model-repository")


def default_venv() -> Path | None:
    """$ALFIE_TRITON_VENV, else the checkout's .venv-triton, else ./.venv-triton; None when absent."""
    candidates = [os.environ.get(VENV_ENV, "")]
    if repo_root():
        candidates.append(str(repo_root() / ".venv-triton"))
    candidates.append(".venv-triton")
    for candidate in candidates:
        if candidate and (Path(candidate) / "bin" / "python").exists():
            return Path(candidate).resolve()
    return None


def _venv_python_facts(python: Path) -> tuple[str, str]:
    """(X.Y version, LIBDIR holding libpython) of an interpreter."""
    code = "import sys, sysconfig; print('%d.%d' % sys.version_info[:2]); print(sysconfig.get_config_var('LIBDIR'))"
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=30, check=True).stdout
    version, libdir = out.split()[:2]
    return version, libdir


def pytriton_install(venv: Path, workdir: Path) -> TritonInstall:
    """A runnable Triton from the nvidia-pytriton wheel inside `venv`; backends assembled in `workdir`."""
    found = sorted(venv.glob("lib/python3*/site-packages/pytriton/tritonserver/bin/tritonserver"))
    if not found:
        raise TritonNotFound(f"{venv} has no nvidia-pytriton (pytriton/tritonserver/bin/tritonserver): "
                             "run `make triton-venv` (pip install -r requirements-triton.txt)")
    dist = found[0].parents[1]  # .../pytriton/tritonserver
    version, libdir = _venv_python_facts(venv / "bin" / "python")
    backend_dir = prepare_backends(dist, version, workdir)
    libs = [str(dist.parents[1] / "nvidia_pytriton.libs"), libdir]
    env = {"LD_LIBRARY_PATH": ":".join(libs + [os.environ.get("LD_LIBRARY_PATH", "")]).rstrip(":"),
           "PATH": f"{venv / 'bin'}:{os.environ.get('PATH', '')}"}
    return TritonInstall(found[0], backend_dir, env)


def prepare_backends(dist: Path, python_version: str, workdir: Path) -> Path:
    """backends/python with the Python backend and the stub built for `python_version` (symlinks)."""
    stub = dist / "python_backend_stubs" / python_version / "triton_python_backend_stub"
    if not stub.is_file():
        raise TritonNotFound(f"nvidia-pytriton has no Python-backend stub for Python {python_version} ({stub})")
    target = workdir / "backends" / "python"
    target.mkdir(parents=True, exist_ok=True)
    for source in list((dist / "backends" / "python").iterdir()) + [stub]:
        if source.is_file():
            link = target / source.name
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(source)
    return workdir / "backends"


def find_triton(workdir: Path, venv: Path | None = None, binary: str | None = None) -> TritonInstall:
    """Locate a tritonserver (see the module doc for the order)."""
    if binary:
        return TritonInstall(Path(binary), None, {})
    venv = venv or (Path(os.environ[VENV_ENV]) if os.environ.get(VENV_ENV) else None)
    if venv is not None:
        return pytriton_install(Path(venv).resolve(), workdir)
    on_path = shutil.which("tritonserver")
    if on_path:
        return TritonInstall(Path(on_path), None, {})
    venv = default_venv()
    if venv is not None:
        return pytriton_install(venv, workdir)
    raise TritonNotFound("no tritonserver found: run `make triton-venv` (creates .venv-triton with nvidia-pytriton), "
                         "set ALFIE_TRITON_VENV, or install Triton (NGC container tritonserver)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def _set_param(text: str, key: str, value: str) -> str:
    pattern = re.compile(r'(key:\s*"' + re.escape(key) + r'"\s*value:\s*\{\s*string_value:\s*)"[^"]*"')
    if pattern.search(text):
        return pattern.sub(lambda m: f'{m.group(1)}"{value}"', text)
    return text + f'parameters: {{ key: "{key}" value: {{ string_value: "{value}" }} }}\n'


def edit_config(text: str, *, dynamic_batching: bool = True, max_queue_delay_us: int | None = None,
                max_batch_size: int | None = None, instances: int | None = None, name: str | None = None,
                params: dict | None = None, image_size: tuple[int, int] | None = None) -> str:
    """The config.pbtxt with the knobs the tests and the benchmark vary."""
    if name is not None:
        text = re.sub(r'^name:\s*"[^"]*"', f'name: "{name}"', text, flags=re.M)
    if not dynamic_batching:
        text = re.sub(r"^dynamic_batching\s*\{[^}]*\}\s*$", "", text, flags=re.M)
    if max_queue_delay_us is not None:
        text = re.sub(r"max_queue_delay_microseconds:\s*\d+", f"max_queue_delay_microseconds: {max_queue_delay_us}", text)
    if max_batch_size is not None:
        text = re.sub(r"^max_batch_size:\s*\d+", f"max_batch_size: {max_batch_size}", text, flags=re.M)
        sizes = [s for s in (4, 8, 16) if s <= max_batch_size] or [max_batch_size]
        text = re.sub(r"preferred_batch_size:\s*\[[^\]]*\]",
                      "preferred_batch_size: [ %s ]" % ", ".join(map(str, sizes)), text)
    if instances is not None:
        text = re.sub(r"count:\s*\d+", f"count: {instances}", text)
    if image_size is not None:  # (height, width) of every camera input
        text = re.sub(r"dims:\s*\[\s*\d+,\s*\d+,\s*3\s*\]", "dims: [ %d, %d, 3 ]" % tuple(image_size), text)
    for key, value in (params or {}).items():
        text = _set_param(text, key, str(value))
    return text


def write_repository(dest: Path, source: Path | None = None, models: dict | None = None) -> Path:
    """A model repository at `dest`: {model name: edit_config keyword args} copies of groot_policy."""
    source = source or default_repository()
    models = models if models is not None else {MODEL_NAME: {}}
    template = (source / MODEL_NAME / "config.pbtxt").read_text()
    for name, edits in models.items():
        model_dir = dest / name
        shutil.copytree(source / MODEL_NAME / "1", model_dir / "1", dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
        (model_dir / "config.pbtxt").write_text(edit_config(template, name=name, **edits))
    return dest


class ServerProcess:
    """One tritonserver process on 127.0.0.1 with its own ports; stop() it (or use `with`)."""

    def __init__(self, repository: Path, *, venv: Path | None = None, binary: str | None = None,
                 http_port: int | None = None, grpc_port: int | None = None, metrics_port: int | None = None,
                 log_path: Path | None = None, log_verbose: int = 0):
        self.repository = Path(repository)
        self.http_port = http_port or free_port()
        self.grpc_port = grpc_port or free_port()
        self.metrics_port = metrics_port or free_port()
        self._workdir = Path(tempfile.mkdtemp(prefix="alfie_triton_"))
        self.install = find_triton(self._workdir, venv, binary)
        self.log_path = Path(log_path) if log_path else self._workdir / "tritonserver.log"
        self._log_verbose = log_verbose
        self.process: subprocess.Popen | None = None

    @property
    def grpc_url(self) -> str:
        return f"{LOOPBACK}:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}"

    def command(self) -> list[str]:
        cmd = [str(self.install.binary), f"--model-repository={self.repository}",
               f"--http-address={LOOPBACK}", f"--http-port={self.http_port}",
               f"--grpc-address={LOOPBACK}", f"--grpc-port={self.grpc_port}",
               f"--metrics-address={LOOPBACK}", f"--metrics-port={self.metrics_port}",
               "--allow-gpu-metrics=false", "--strict-readiness=true", "--exit-timeout-secs=5",
               # a model that fails to load stays UNAVAILABLE (and /v2/health/ready false) instead of
               # taking the other models down with the server
               "--exit-on-error=false",
               f"--log-verbose={self._log_verbose}",
               # a shared-memory prefix of its own, so several servers on one machine never collide
               f"--backend-config=python,shm-region-prefix-name=alfie{os.getpid()}_{self.grpc_port}_"]
        if self.install.backend_dir is not None:
            cmd.append(f"--backend-directory={self.install.backend_dir}")
        return cmd

    def environment(self) -> dict:
        env = {**os.environ, **self.install.env}
        env.setdefault("ALFIE_GR00T_PATH", str(PACKAGE_ROOT.parent))
        return env

    def start(self) -> "ServerProcess":
        log = open(self.log_path, "ab")
        try:
            self.process = subprocess.Popen(self.command(), env=self.environment(), stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()
        return self

    def _get(self, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.http_url + path, timeout=timeout) as reply:  # loopback only
                return reply.status, reply.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (urllib.error.URLError, OSError):
            return 0, b""

    def ready(self) -> bool:
        return self._get("/v2/health/ready")[0] == 200

    def live(self) -> bool:
        return self._get("/v2/health/live")[0] == 200

    def model_ready(self, model: str = MODEL_NAME) -> bool:
        return self._get(f"/v2/models/{model}/ready")[0] == 200

    def wait_ready(self, timeout_s: float = 60.0, model: str | None = None) -> "ServerProcess":
        """Poll /v2/health/ready (or, given `model`, that model's readiness) until 200; RuntimeError
        with the log tail when the server exits or the time runs out."""
        deadline = time.monotonic() + timeout_s
        probe = self.ready if model is None else (lambda: self.model_ready(model))
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"tritonserver exited with {self.process.returncode}:\n{self.log_tail()}")
            if probe():
                return self
            time.sleep(0.1)
        raise RuntimeError(f"tritonserver not ready after {timeout_s:.0f} s:\n{self.log_tail()}")

    def model_stats(self, model: str = MODEL_NAME) -> dict:
        """Triton's statistics for `model` (inference_count, execution_count, batch_stats, ...)."""
        status, body = self._get(f"/v2/models/{model}/stats")
        if status != 200:
            raise RuntimeError(f"statistics for {model}: HTTP {status} {body[:200]!r}")
        return json.loads(body)["model_stats"][0]

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def kill(self) -> None:
        """SIGKILL, as a crash would (tests of the failure path)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM (Triton unloads models and exits), SIGKILL after `timeout_s`."""
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
            except ProcessLookupError:
                pass

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> "ServerProcess":
        return self.start().wait_ready()

    def __exit__(self, *exc) -> None:
        self.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="groot_triton", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-repository", type=Path, default=None, help="default: the shipped triton/")
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--metrics-port", type=int, default=8002)
    parser.add_argument("--venv", type=Path, default=None, help="environment with nvidia-pytriton")
    parser.add_argument("--tritonserver", default=None, help="path of a tritonserver binary to use instead")
    parser.add_argument("--log-verbose", type=int, default=0)
    parser.add_argument("--ready-timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    try:
        repository = (args.model_repository or default_repository()).resolve()
        server = ServerProcess(repository, venv=args.venv, binary=args.tritonserver, http_port=args.http_port,
                               grpc_port=args.grpc_port, metrics_port=args.metrics_port,
                               log_path=Path(tempfile.gettempdir()) / f"groot_triton_{args.grpc_port}.log",
                               log_verbose=args.log_verbose)
    except TritonNotFound as exc:
        print(f"groot_triton: {exc}", file=sys.stderr)
        return 2
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    print(f"groot_triton: {server.install.binary} on {repository}\n  log: {server.log_path}", flush=True)
    server.start()
    try:
        server.wait_ready(args.ready_timeout)
        print(f"ready: gRPC {server.grpc_url} (groot_server engine:=triton triton_url:={server.grpc_url}), "
              f"HTTP {server.http_url}, metrics http://{LOOPBACK}:{server.metrics_port}/metrics. Ctrl-C stops.",
              flush=True)
        while not stop and server.process.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    except RuntimeError as exc:
        print(f"groot_triton: {exc}", file=sys.stderr)
        server.cleanup()
        return 1
    code = server.process.poll()
    server.cleanup()
    if code not in (None, 0, -signal.SIGTERM):
        print(f"groot_triton: tritonserver exited with {code}; log: {server.log_path}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A real tritonserver on 127.0.0.1 from the Triton environment (`make triton-venv`); a skip that says
what is missing where there is none (a failure under ALFIE_REQUIRE_TRITON=1)."""

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from alfie_gr00t.tools import triton_dev

REPO = Path(__file__).resolve().parents[2]
REQUIRED = os.environ.get("ALFIE_REQUIRE_TRITON") == "1"


def triton_venv() -> Path:
    venv = Path(os.environ.get(triton_dev.VENV_ENV) or REPO / ".venv-triton")
    problems = []
    if not (venv / "bin" / "python").exists():
        problems.append(f"no Triton environment at {venv} (run `make triton-venv`)")
    try:
        import tritonclient.grpc  # noqa: F401
    except ImportError as exc:
        problems.append(f"tritonclient is not installed in this environment ({exc}); `make triton-venv`")
    if problems:
        message = "; ".join(problems)
        if REQUIRED:
            pytest.fail(f"ALFIE_REQUIRE_TRITON=1 but {message}")
        pytest.skip(message)
    return venv


@contextlib.contextmanager
def serving_triton(models: dict, prefix: str = "ag_triton_"):
    """A real tritonserver on 127.0.0.1 serving copies of the shipped model edited by `models`
    ({name: triton_dev.edit_config keyword args}), ready to use; stopped and removed afterwards."""
    venv = triton_venv()
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    repo = triton_dev.write_repository(workdir / "models", REPO / "triton_repository", models)
    server = triton_dev.ServerProcess(repo, venv=venv).start()
    try:
        server.wait_ready(60, model="groot_policy")
        yield server
    finally:
        server.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)

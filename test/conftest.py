"""Shared fixtures. Nothing leaves loopback: DDS stays on localhost and every ROS test
gets a context with a domain id of its own; ZeroMQ binds IPC paths or 127.0.0.1."""

import itertools
import os
import shutil
import socket
import tempfile

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from alfie_gr00t import layout
from alfie_gr00t.wire import images  # noqa: E402

_domain_ids = itertools.count(1 + (os.getpid() * 7) % 90)


# Unpickling a Tripwire records that it ran: proof that a server never unpickles attacker data.
TRIPWIRE_RAN: list[str] = []


def _tripwire(tag):
    TRIPWIRE_RAN.append(tag)
    return tag


class Tripwire:
    def __reduce__(self):
        return (_tripwire, ("server unpickled attacker data",))


def next_domain_id() -> int:
    """A fresh ROS domain id per test (1..200), so parallel runs and tests never see each other."""
    return 1 + next(_domain_ids) % 200


@pytest.fixture
def ipc_dir():
    path = tempfile.mkdtemp(prefix="ag_", dir="/tmp")  # short: Unix socket paths are limited to ~107 bytes
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def ipc_path(ipc_dir):
    return os.path.join(ipc_dir, "groot.sock")


@pytest.fixture
def free_tcp_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_frame(width=layout.IMAGE_WIDTH, height=layout.IMAGE_HEIGHT, seed=0) -> np.ndarray:
    """A deterministic RGB test pattern with structure JPEG can keep."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([(x * 255 // max(1, width - 1)), (y * 255 // max(1, height - 1)),
                    np.full_like(x, (seed * 40) % 256)], axis=-1)
    return rgb.astype(np.uint8)


@pytest.fixture
def jpeg_images():
    return {name: images.encode_jpeg(make_frame(seed=i), 90) for i, name in enumerate(layout.CAMERA_NAMES)}


@pytest.fixture
def ros_context():
    """An initialised rclpy context on its own domain id; shut down after the test."""
    import rclpy

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=next_domain_id())
    yield context
    context.try_shutdown()


def hold_chunk(state) -> np.ndarray:
    """What the `hold` mock must return (SPEC §4), written out independently of the engine: joint dims
    hold the state for every step; base dims 0-5 of step i are state * exp(-i/4). state: (D,) or (B, D)."""
    state = np.asarray(state, dtype=np.float32)
    steps = np.arange(layout.ACTION_HORIZON, dtype=np.float32)
    chunk = np.repeat(state[..., None, :], layout.ACTION_HORIZON, axis=-2).copy()
    for i in steps.astype(int):
        chunk[..., i, :6] = state[..., :6] * np.float32(np.exp(-i / 4.0))
    return chunk

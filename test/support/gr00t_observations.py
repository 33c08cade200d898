"""Isaac-GR00T observations as upstream's PolicyClient sends them, their conversion with our defaults,
and hand-built npy payloads (honest or lying headers) for the codec tests."""

from __future__ import annotations

import io
import struct

import msgpack
import numpy as np

from alfie_gr00t import layout
from alfie_gr00t.wire import gr00t as gp
from alfie_gr00t.wire.gr00t import Gr00tLimits

CAMERAS = layout.CAMERA_NAMES
GROUPS = layout.LAYOUT_GROUPS
SIZE = (layout.IMAGE_WIDTH, layout.IMAGE_HEIGHT)
STATE_KEYS = [(g.name, g.size) for g in GROUPS]


def make_observation(batch=1, frames=1, height=layout.IMAGE_HEIGHT, width=layout.IMAGE_WIDTH,
                     language=None, seed=0, state_dtype=np.float32):
    rng = np.random.default_rng(seed)
    video = {
        cam: rng.integers(0, 256, size=(batch, frames, height, width, 3), dtype=np.uint8)
        for cam in CAMERAS
    }
    state = {
        g.name: rng.standard_normal((batch, frames, g.size)).astype(state_dtype) for g in GROUPS
    }
    if language is None:
        language = [[f"pick up cube {i}"] for i in range(batch)]
    return {"video": video, "state": state, "language": {"task": language}}


def convert(observation, limits=Gr00tLimits(), image_size=SIZE):
    return gp.observation_batch(observation, camera_names=CAMERAS, groups=GROUPS, language_key="task",
                                image_size=image_size, limits=limits)


def npy_bytes(array, allow_pickle=False):
    sink = io.BytesIO()
    np.save(sink, array, allow_pickle=allow_pickle)
    return sink.getvalue()


def npy_with_header(header: str, data: bytes = b"") -> bytes:
    text = header.encode("latin-1")
    pad = 64 - (10 + len(text) + 1) % 64
    text = text + b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + data


def marker(npy: bytes) -> bytes:
    return msgpack.packb({"x": {"__ndarray_class__": True, "as_npy": npy}}, use_bin_type=True)

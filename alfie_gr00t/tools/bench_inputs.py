"""The benchmarks' inputs: four camera-like frames that JPEG-encode like a real camera's, the state,
and the observation messages built from them."""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np

from alfie_gr00t import layout
from alfie_gr00t.client.inputs import Snapshot
from alfie_gr00t.wire import images, protocol

CAMERA_WIDTH, CAMERA_HEIGHT = 640, 480
JPEG_QUALITY = 90
TASK = "find the can and pick it up"


def synthetic_frame(seed: int, width: int = CAMERA_WIDTH, height: int = CAMERA_HEIGHT) -> np.ndarray:
    """A deterministic camera-like RGB frame: gradients, texture and smoothed noise.

    Tuned so the four frames, resized to 320x280, JPEG-encode to ~84 KB at q=90 (a real camera's size);
    a flat test pattern would compress far better than a real camera image.
    """
    rng = np.random.default_rng(1000 + seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / width * 200.0, y / height * 200.0,
                     np.sin(x / 23.0 + seed) * np.cos(y / 17.0) * 60.0 + 100.0], axis=-1)
    noise = cv2.GaussianBlur(rng.normal(0.0, 45.0, (height, width, 3)).astype(np.float32), (0, 0), 1.7)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


@dataclass
class StubImage:
    """Carries the sensor_msgs/Image fields the client reads (height, width, encoding, step, data)."""

    height: int
    width: int
    encoding: str
    step: int
    data: bytes


@dataclass
class Inputs:
    camera: dict  # name -> (480, 640, 3) RGB
    model: dict  # name -> (280, 320, 3) RGB, as the client sends it
    jpegs: dict  # name -> JPEG bytes of `model`
    state: np.ndarray

    @classmethod
    def build(cls, camera_names=layout.CAMERA_NAMES) -> "Inputs":
        camera = {name: synthetic_frame(i) for i, name in enumerate(camera_names)}
        model = {name: images.resize(f, layout.IMAGE_WIDTH, layout.IMAGE_HEIGHT) for name, f in camera.items()}
        jpegs = {name: images.encode_jpeg(f, JPEG_QUALITY) for name, f in model.items()}
        state = np.linspace(-0.1, 0.1, layout.ACTION_DIM).astype(np.float32)
        return cls(camera, model, jpegs, state)

    def snapshot(self) -> Snapshot:
        frames = {name: StubImage(f.shape[0], f.shape[1], "rgb8", f.shape[1] * 3, f.tobytes())
                  for name, f in self.camera.items()}
        return Snapshot(frames, self.state.copy(), time.monotonic(), TASK)

    def jpeg_observation(self) -> bytes:
        return protocol.encode_observation(time.time(), 1, self.jpegs, self.state, TASK)

    def raw_observation(self) -> bytes:
        raw = {name: protocol.RawImage(f.shape[1], f.shape[0], f.tobytes()) for name, f in self.model.items()}
        return protocol.encode_observation(time.time(), 1, raw, self.state, TASK)

"""The only module that touches CUDA: device and pinned host buffers, one stream, copies.

It wraps pycuda (the design's choice) behind a handful of calls so that cuda-python
could replace it without touching the TensorRT backend. The CUDA *primary* context is
used -- the one TensorRT's runtime uses -- and pushed around each call, so the engine
may be built on one thread and run on another (the server's timer thread).
"""

from __future__ import annotations

import contextlib
import re

import numpy as np

from alfie_gr00t.engines.base import EngineError


def import_pycuda():
    """pycuda.driver, or an EngineError that says what to install."""
    try:
        import pycuda.driver as driver
    except ImportError as exc:
        raise EngineError(
            f"pycuda is not installed ({exc}): pip install pycuda (needs the CUDA toolkit and an "
            "NVIDIA driver), or mock_mode:=true to run without a model"
        ) from exc
    return driver


def device_index(device: str) -> int:
    """'cuda' -> 0, 'cuda:1' -> 1; anything else is not a CUDA device."""
    match = re.fullmatch(r"cuda(?::(\d+))?", device.strip())
    if not match:
        raise EngineError(f"device '{device}' is not a CUDA device: TensorRT needs device:=cuda:N")
    return int(match.group(1) or 0)


class CudaStream:
    """One CUDA stream and the async copies issued on it."""

    def __init__(self, driver):
        self._driver = driver
        self._stream = driver.Stream()

    @property
    def handle(self) -> int:
        return self._stream.handle

    def to_device(self, dst, src: np.ndarray) -> None:
        self._driver.memcpy_htod_async(dst, src, self._stream)

    def to_host(self, dst: np.ndarray, src) -> None:
        self._driver.memcpy_dtoh_async(dst, src, self._stream)

    def synchronize(self) -> None:
        self._stream.synchronize()


class CudaDevice:
    """One GPU's primary context; allocate and copy only inside `with device.active():`."""

    def __init__(self, device: str = "cuda:0"):
        self._driver = import_pycuda()
        index = device_index(device)
        try:
            self._driver.init()
            count = self._driver.Device.count()
        except Exception as exc:  # pycuda raises its own RuntimeError/LogicError types
            raise EngineError(f"CUDA is not usable ({exc}): no NVIDIA GPU or driver found; check nvidia-smi") from exc
        if index >= count:
            raise EngineError(f"device '{device}' requested but only {count} CUDA GPU(s) found")
        self.index = index
        self._device = self._driver.Device(index)
        self.name = self._device.name()
        self.capability = tuple(self._device.compute_capability())
        self._context = self._device.retain_primary_context()
        self._allocations: list = []

    @contextlib.contextmanager
    def active(self):
        """Make this GPU current on the calling thread for the duration of the block."""
        self._context.push()
        try:
            yield self
        finally:
            self._driver.Context.pop()

    def stream(self) -> CudaStream:
        return CudaStream(self._driver)

    def device_buffer(self, nbytes: int):
        """Device memory of `nbytes` (at least 1); int(buffer) is its address."""
        buffer = self._driver.mem_alloc(max(1, int(nbytes)))
        self._allocations.append(buffer)
        return buffer

    def pinned_buffer(self, count: int, dtype) -> np.ndarray:
        """A flat page-locked host array, allocated once and reused for every call."""
        return self._driver.pagelocked_empty(max(1, int(count)), dtype=np.dtype(dtype))

    def copy_to_device(self, dst, src: np.ndarray) -> None:
        """Blocking host-to-device copy (calibration only; inference uses the stream)."""
        self._driver.memcpy_htod(dst, np.ascontiguousarray(src))

    def free(self) -> None:
        """Release all device buffers this object allocated, then the context."""
        with self.active():
            for buffer in self._allocations:
                buffer.free()
        self._allocations.clear()
        self._context.detach()

    def describe(self) -> dict:
        free_b, total_b = self._memory()
        return {"gpu": self.name, "gpu_index": self.index, "gpu_memory_free_mb": free_b // 2**20,
                "gpu_memory_total_mb": total_b // 2**20}

    def _memory(self) -> tuple[int, int]:
        with self.active():
            return self._driver.mem_get_info()

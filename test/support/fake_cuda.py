"""A stand-in CUDA device (`cuda_memory.CudaDevice`'s surface): a stream that queues copies and
kernels until synchronize(), device buffers with addresses, pinned host buffers."""

import contextlib

import numpy as np

from alfie_gr00t.engines import cuda_memory


class FakeStream:
    """Queues copies and kernels; nothing happens until synchronize(), like a real stream."""

    registry = {}

    def __init__(self):
        self.queue = []
        self.handle = 1000 + len(FakeStream.registry)
        FakeStream.registry[self.handle] = self

    def to_device(self, dst, src):
        data = np.array(src, copy=True).view(np.uint8).ravel()
        self.queue.append(lambda: dst.write(data))

    def to_host(self, dst, src):
        self.queue.append(lambda: dst.view(np.uint8).ravel().__setitem__(slice(None), src.read(dst.nbytes)))

    def synchronize(self):
        while self.queue:
            self.queue.pop(0)()


class FakeBuffer:
    registry = {}

    def __init__(self, nbytes):
        self.data = np.zeros(nbytes, np.uint8)
        self.address = 0x1000 + 0x100 * len(FakeBuffer.registry)
        FakeBuffer.registry[self.address] = self

    def __int__(self):
        return self.address

    def write(self, data):
        self.data[: data.size] = data

    def read(self, nbytes):
        return self.data[:nbytes]


class FakeDevice:
    instances = []

    def __init__(self, device):
        cuda_memory.device_index(device)
        self.name, self.freed, self.active_depth = "Fake GPU", False, 0
        self.pinned = []
        FakeDevice.instances.append(self)

    @contextlib.contextmanager
    def active(self):
        self.active_depth += 1
        try:
            yield self
        finally:
            self.active_depth -= 1

    def stream(self):
        return FakeStream()

    def device_buffer(self, nbytes):
        return FakeBuffer(nbytes)

    def pinned_buffer(self, count, dtype):
        array = np.zeros(count, dtype)
        self.pinned.append(array)
        return array

    def copy_to_device(self, dst, src):
        dst.write(np.ascontiguousarray(src).view(np.uint8).ravel())

    def free(self):
        self.freed = True

    def describe(self):
        return {"gpu": self.name}
